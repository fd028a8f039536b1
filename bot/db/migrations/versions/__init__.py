"""The revisions, one file each, named by date and what they do."""
