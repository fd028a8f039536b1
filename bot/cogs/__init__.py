"""One cog module per feature a member sees, loaded by name (bot.app.EXTENSIONS), imported by
nothing. Cogs translate Discord <-> services, queries and the ui."""
