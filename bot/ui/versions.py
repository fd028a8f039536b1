"""One name per model version, the same in compositions, /model and announcements."""

from __future__ import annotations

BASE_MODEL = "base model"


def version_name(version_id: int | None) -> str:
    """ "v12" for a server's version, "base model" for the shared one (None)."""
    return BASE_MODEL if version_id is None else f"v{version_id}"


def the_version(version_id: int | None) -> str:
    """The name inside a sentence: "v12", or "the base model"."""
    return f"the {BASE_MODEL}" if version_id is None else version_name(version_id)
