"""One cog per feature a member sees. Cogs translate Discord <-> query functions and the engine."""
