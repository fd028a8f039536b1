"""What an audio file gave up (quality, length) to fit a limit, in members' words."""

from __future__ import annotations

from engine.api.schema import RenderResult


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
    # Cut for length: at the most one render job makes (what the engine was asked for).
    return f"{played}: audio is made {minutes(rendered.cut_at)} at a time"


def minutes(seconds: float) -> str:
    """5 minutes, 1 minute, 2.5 minutes, 45 seconds."""
    if seconds < 60:
        return f"{seconds:.0f} seconds"
    count = f"{seconds / 60:.1f}".removesuffix(".0")
    return f"{count} minute{'' if count == '1' else 's'}"
