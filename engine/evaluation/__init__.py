"""Measuring music: statistics that compare generated pieces with real ones."""
