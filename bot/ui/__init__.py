"""What members see: the composition's buttons, embeds, message texts, progress messages.

The ui imports neither services nor cogs (docs/architecture.md): what it shows arrives as
arguments, described by a Protocol where it is one of the services' objects.
"""
