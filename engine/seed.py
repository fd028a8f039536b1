"""Reading a seed a member uploaded: every way it can be wrong gets one friendly sentence."""

from __future__ import annotations

from symusic import Score

from engine.errors import BadSeed

MAX_SEED_BYTES = 1_000_000
MAX_SEED_NOTES = 20_000
MAX_SEED_SECONDS = 30 * 60
TEMPO_LIMITS_BPM = (20.0, 400.0)  # beyond these no musician would call it a tempo


def read_seed(data: bytes) -> Score:
    """The seed as a symusic Score (ticks), or BadSeed saying what is wrong with it."""
    if len(data) > MAX_SEED_BYTES:
        raise BadSeed(f"the seed is {len(data) / 1e6:.1f} MB; seeds must be under "
                      f"{MAX_SEED_BYTES // 1_000_000} MB")
    if len(data) < 14 or not data.startswith(b"MThd"):
        raise BadSeed("that file is not a MIDI file (it does not start with a MIDI header)")
    try:
        score = Score.from_midi(data)
    except Exception:  # symusic raises plain RuntimeErrors on broken files
        raise BadSeed("that MIDI file is broken or truncated; try exporting it again") from None
    notes = score.note_num()
    if notes == 0:
        raise BadSeed("that MIDI file has no notes to continue")
    if notes > MAX_SEED_NOTES:
        raise BadSeed(f"the seed has {notes:,} notes; seeds may have at most "
                      f"{MAX_SEED_NOTES:,}")
    for tempo in score.tempos:
        if not TEMPO_LIMITS_BPM[0] <= tempo.qpm <= TEMPO_LIMITS_BPM[1]:
            raise BadSeed(f"the seed's tempo of {tempo.qpm:.0f} bpm is outside "
                          f"{TEMPO_LIMITS_BPM[0]:.0f}-{TEMPO_LIMITS_BPM[1]:.0f} bpm")
    seconds = score.to("second").end()
    if seconds > MAX_SEED_SECONDS:
        raise BadSeed(f"the seed lasts {seconds / 60:.0f} minutes; seeds may last at most "
                      f"{MAX_SEED_SECONDS // 60} minutes")
    return score


def seed_tempo(score: Score) -> float | None:
    """The tempo in force at the seed's end (where the continuation starts)."""
    return float(score.tempos[-1].qpm) if len(score.tempos) else None


def seed_time_signature(score: Score) -> str | None:
    if not len(score.time_signatures):
        return None
    ts = score.time_signatures[-1]
    return f"{ts.numerator}/{ts.denominator}"
