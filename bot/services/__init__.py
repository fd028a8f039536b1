"""What the bot does, apart from Discord's screens: engine access, the work limits, seed files,
composing and recording, piece assembly, the fine-tune runner.

Services import no cog and never the bot class: they take what they need (sessions, the
engine, settings) or a Protocol of it. They may use bot.ui's texts (docs/architecture.md).
"""
