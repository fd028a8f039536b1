"""Reading a seed a member uploaded: every way it can be wrong gets one friendly sentence."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

# The tick-based classes the `symusic.Score` factory makes: symusic types their members, not
# the factory's products.
from symusic.core import ScoreSecond, ScoreTick, TimeSignatureTick, TimeSignatureTickList

from engine.api.errors import BadSeed
from engine.api.limits import MAX_SEED_BYTES, MAX_SEED_NOTES, MAX_SEED_SECONDS, TEMPO_BPM
from engine.api.metre import bar_parts, quarters_per_bar, vocabulary_metres

TEMPO_LIMITS_BPM = (TEMPO_BPM.low, TEMPO_BPM.high)


def read_seed(data: bytes, *, max_notes: int = MAX_SEED_NOTES) -> ScoreTick:
    """The seed as a symusic Score (ticks), or BadSeed saying what is wrong with it.
    `max_notes`: an operator's lower note limit (MOTIF_MAX_SEED_NOTES)."""
    if len(data) > MAX_SEED_BYTES:
        limit_mb = MAX_SEED_BYTES / 1_000_000
        raise BadSeed(
            f"the seed is {_beyond(len(data) / 1_000_000, limit_mb)} MB; seeds must "
            f"be at most {limit_mb:g} MB"
        )
    if len(data) < 14 or not data.startswith(b"MThd"):
        raise BadSeed("that file is not a MIDI file (it does not start with a MIDI header)")
    if data[12] & 0x80:
        raise BadSeed(
            "that MIDI file counts time in SMPTE frames, which Motif cannot read; "
            "export it with ticks per beat (the usual setting)"
        )
    if data[12:14] == b"\0\0":
        raise BadSeed(
            "that MIDI file is broken (its header says a beat lasts 0 ticks); "
            "try exporting it again"
        )
    try:
        score = ScoreTick.from_midi(data)
    except Exception:  # symusic raises plain RuntimeErrors on broken files
        raise BadSeed("that MIDI file is broken or truncated; try exporting it again") from None
    notes = score.note_num()
    if notes == 0:
        raise BadSeed("that MIDI file has no notes to continue")
    most = min(max_notes, MAX_SEED_NOTES)
    if notes > most:
        raise BadSeed(f"the seed has {notes:,} notes; seeds may have at most {most:,}")
    low, high = TEMPO_LIMITS_BPM
    for tempo in score.tempos:
        bpm = float(tempo.qpm)
        if not math.isfinite(bpm):
            raise BadSeed(
                "that MIDI file is broken (a tempo event says a beat lasts 0 "
                "microseconds); try exporting it again"
            )
        if bpm < low or bpm > high:
            raise BadSeed(
                f"the seed's tempo is {_beyond(bpm, low if bpm < low else high)} bpm; "
                f"a seed's tempo must be within {low:g} and {high:g} bpm"
            )
    seconds = seed_seconds(score)
    if seconds > MAX_SEED_SECONDS:
        limit_minutes = MAX_SEED_SECONDS / 60
        raise BadSeed(
            f"the seed lasts {_beyond(seconds / 60, limit_minutes)} minutes; seeds may "
            f"last at most {limit_minutes:g} minutes"
        )
    return without_cut_slivers(score)


# A note that starts this close before the seed's final bar line and ends by it (or about
# there) is the next bar's note, played a hair early and cut off where the loop was cut.
SLIVER_QUARTERS = 1 / 16  # half the tokenizer's finest step: what rounding puts on the line


def without_cut_slivers(score: ScoreTick) -> ScoreTick:
    """The score without the slivers a loop's cut left at its end (see SLIVER_QUARTERS): a
    2 ms note rounded onto the grid would open a bar of its own, so every continuation would
    start a bar late, and its clip would run a bar long. The score itself when it has none."""
    notes = [(n.time, n.end) for t in score.tracks for n in t.notes]
    end = max(stop for _, stop in notes)
    sliver = score.ticks_per_quarter * SLIVER_QUARTERS
    line = _bar_line_near(score, end, sliver)
    if line is None:
        return score
    tail = [stop for start, stop in notes if start >= line - sliver]
    if not tail or len(tail) == len(notes) or max(tail) > line + sliver:
        return score  # the music does go on past the line: a real note, not a cut
    out = score.copy()
    for track in out.tracks:
        track.notes.filter(lambda n: n.time < line - sliver, inplace=True)
    return out


def _bar_line_near(score: ScoreTick, tick: int, within: float) -> int | None:
    """The bar line within `within` ticks of `tick`, by the metre in force there (4/4 when
    the score has none), or None."""
    start, numerator, denominator = 0, 4, 4
    for ts in sorted(score.time_signatures, key=lambda ts: ts.time):
        if ts.time <= tick + within:
            start, numerator, denominator = ts.time, ts.numerator, ts.denominator
    if numerator <= 0 or denominator <= 0:  # a broken file's metre
        return None
    bar = score.ticks_per_quarter * 4 * numerator / denominator
    line = start + round((tick - start) / bar) * bar
    return round(line) if abs(line - tick) <= within else None


def _beyond(value: float, limit: float) -> str:
    """`value` as precisely as it takes to show it is not `limit`: 19.6 (not 20, beside a
    limit of 20), or "just under 20" when a tenth is not enough."""
    for digits in (0, 1):
        if round(value, digits) != limit:
            return f"{value:,.{digits}f}"
    return f"just {'under' if value < limit else 'over'} {limit:,g}"


def seed_seconds(score: ScoreTick) -> float:
    """How long the seed plays, to its last note's end."""
    return cast(ScoreSecond, score.to("second")).end()  # symusic types `to` as object


def seed_tempo(score: ScoreTick) -> float | None:
    """The tempo in force at the seed's end (where the continuation starts)."""
    return float(score.tempos[-1].qpm) if len(score.tempos) else None


def seed_time_signature(score: ScoreTick) -> str | None:
    if not len(score.time_signatures):
        return None
    ts = score.time_signatures[-1]
    return f"{ts.numerator}/{ts.denominator}"


@dataclass(frozen=True)
class SeedFacts:
    """What the work of continuing a seed depends on (engine.api.workload), and the tempo and
    metre the continuation starts from; known without tokenizing."""

    tempo: float | None  # in force at the seed's end
    time_signature: str | None  # "3/4", or None when the seed has none
    quarters: float = 0.0  # its bars, whole bars of its last metre: what include_seed plays

    @classmethod
    def of(cls, score: ScoreTick) -> SeedFacts:
        metre = seed_time_signature(score)
        # A broken file's metre may be 3/0 (its denominator's power of two overflowed).
        usable = metre is not None and all(int(x) > 0 for x in metre.split("/"))
        bar = quarters_per_bar(metre if metre is not None and usable else "4/4")
        quarters = math.ceil(score.end() / score.ticks_per_quarter / bar) * bar
        return cls(seed_tempo(score), metre, float(quarters))


def split_metres(score: ScoreTick) -> ScoreTick:
    """The score with each bar of a metre the vocabulary lacks restated as bars it holds
    (engine.api.metre.bar_parts: a 7/4 bar as 4/4 then 3/4). MidiTok would drop such a metre and
    count 4/4 bars across it, so a 7/4 seed's bar lines would drift through its music. The
    score itself is returned when it needs no change."""
    held = set(vocabulary_metres())
    signatures = sorted(score.time_signatures, key=lambda ts: ts.time)
    if all(f"{ts.numerator}/{ts.denominator}" in held for ts in signatures):
        return score
    tpq = score.ticks_per_quarter
    end = score.end()
    restated: list[TimeSignatureTick] = []
    for i, ts in enumerate(signatures):
        metre = f"{ts.numerator}/{ts.denominator}"
        parts = bar_parts(metre) if ts.numerator > 0 and ts.denominator > 0 else None
        if parts is None or parts == [metre]:
            restated.append(TimeSignatureTick(ts.time, ts.numerator, ts.denominator))
            continue
        until = signatures[i + 1].time if i + 1 < len(signatures) else max(end, ts.time + 1)
        tick = ts.time
        part = 0
        while tick < until:  # no metre after the music: it would add an empty bar
            numerator, denominator = (int(x) for x in parts[part].split("/"))
            restated.append(TimeSignatureTick(tick, numerator, denominator))
            tick += tpq * 4 * numerator // denominator
            part = (part + 1) % len(parts)
    out = score.copy()
    out.time_signatures = TimeSignatureTickList(restated)
    return out
