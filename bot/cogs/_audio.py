"""What an audio file gave up (quality, length) to fit a limit, in members' words."""

from __future__ import annotations

from bot.engine_port import MAX_RENDER_SECONDS, RenderResult


def upload_limit_text(upload_limit: int) -> str:
    """The limit as members read it: "this server's 8 MB upload limit"."""
    return f"this server's {upload_limit / 1024 / 1024:.0f} MB upload limit"


def clock(seconds: float) -> str:
    """12:05 for 725 s."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def cut_text(rendered: RenderResult, upload_limit: int) -> str | None:
    """Why the audio stops before the music does, or None when it plays all of it."""
    if rendered.cut_at is None:
        return None
    whole = clock(rendered.full_seconds)
    played = f"the audio plays its first {clock(rendered.cut_at)} of {whole}"
    if rendered.cut_for == "size":
        return f"{played}, to fit {upload_limit_text(upload_limit)}"
    return f"{played}: audio is made {MAX_RENDER_SECONDS / 60:.0f} minutes at a time"
