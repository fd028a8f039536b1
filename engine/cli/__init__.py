"""Subcommands of `python -m engine`; each module adds its parser and runs it."""
