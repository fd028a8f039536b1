"""/jam: a channel's session that writes a piece together in timed rounds (see runner)."""
