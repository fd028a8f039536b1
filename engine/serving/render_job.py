"""A whole MIDI file as audio (a saved seed played, a part of an exported piece), bounded.

The engine's render job. It has its own limits and words, not the seed reader's: an exported
piece of many rounds is longer and larger than a seed may be, and it is not a seed. Whatever
the file, one job makes at most `max_seconds` of audio (MOTIF_MAX_RENDER_SECONDS at
most: engine.api.limits), so the float PCM it holds stays bounded; the result says what was
cut, so the member can be told.
"""

from __future__ import annotations

from symusic import Score

from engine.api.errors import BadRequest
from engine.api.limits import MAX_RENDER_MIDI_BYTES, MAX_RENDER_NOTES
from engine.api.schema import RenderResult
from engine.audio.pianoroll import draw_pianoroll
from engine.audio.render import SAMPLE_RATE, TAIL_SECONDS, Renderer, encode_ogg


def read_midi(data: bytes) -> Score:
    """The file as a symusic Score (ticks), or BadRequest saying what is wrong with it."""
    if len(data) > MAX_RENDER_MIDI_BYTES:
        raise BadRequest(
            f"the MIDI file is {len(data) / 1e6:.1f} MB; audio is made from files "
            f"of up to {MAX_RENDER_MIDI_BYTES // 1_000_000} MB"
        )
    if len(data) < 14 or not data.startswith(b"MThd"):
        raise BadRequest("that file is not a MIDI file (it does not start with a MIDI header)")
    try:
        score = Score.from_midi(data)
    except Exception:  # symusic raises plain RuntimeErrors on broken files
        raise BadRequest("that MIDI file is broken or truncated") from None
    if score.note_num() == 0:
        raise BadRequest("that MIDI file has no notes to play")
    return score


def first_seconds(score: Score, max_seconds: float) -> tuple[Score, float, bool]:
    """The score in seconds, cut at `max_seconds` when it plays longer; with how long the
    whole score plays and whether it was cut. Notes sounding at the cut end there (their
    release still rings in the renderer's tail)."""
    timed = score.to("second")
    end = float(timed.end())
    if end <= max_seconds:
        return timed, end, False
    part = timed.clip(0.0, max_seconds, clip_end=False)
    for track in part.tracks:
        for note in track.notes:
            if note.time + note.duration > max_seconds:
                note.duration = max_seconds - note.time
    return part, end, True


def render_midi(
    renderer: Renderer,
    data: bytes,
    *,
    max_audio_bytes: int | None,
    max_seconds: float,
    pianoroll: bool = False,
) -> RenderResult:
    """Render at most `max_seconds` (the server checked them against its limit) on the
    caller's thread (the one that owns `renderer`); BadRequest when the file cannot be
    rendered, with the reason. `pianoroll`: draw the whole file too (a jam's piece so far)."""
    score = read_midi(data)
    part, end, cut = first_seconds(score, max_seconds)
    notes = part.note_num()
    if notes > MAX_RENDER_NOTES:
        raise BadRequest(
            f"the audio would play {notes:,} notes; it is made for at most "
            f"{MAX_RENDER_NOTES:,} at once"
        )
    encoded = encode_ogg(renderer.render(part), SAMPLE_RATE, max_bytes=max_audio_bytes)
    cut_at, cut_for = (max_seconds, "length") if cut else (None, None)
    if encoded.cut_from is not None:
        cut_at, cut_for = encoded.seconds, "size"
    return RenderResult(
        audio=encoded.data,
        seconds=encoded.seconds,
        full_seconds=end + TAIL_SECONDS,
        quality_lowered=encoded.quality_lowered,
        cut_at=cut_at,
        cut_for=cut_for,
        pianoroll=draw_pianoroll([score], labels=["Piece"]) if pianoroll else None,
    )
