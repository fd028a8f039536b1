"""How much work a composition asks for, refused before any is done (light: no torch).

A tiny seed can ask for a lot: at 20 bpm in 4/2, 64 bars last 26 minutes per clip. The
tempo, the metre, the bars, the candidates and the seed (when the clips include it) fix the
length of every clip before a token is sampled, and the decode loop's cap fixes the most ids
it may write, so the whole cost is known from the request and the seed alone. Anything over
the engine's WorkLimits is a BadRequest that says what to ask for instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from engine.api.config import WorkLimits
from engine.api.errors import BadRequest
from engine.api.limits import DEFAULT_TEMPO_BPM, MAX_TOKENS_PER_BAR
from engine.api.metre import bar_parts, quarters_per_bar
from engine.api.schema import ComposeRequest
from engine.api.seed_midi import SeedFacts, read_seed


@dataclass(frozen=True)
class Workload:
    bars: int
    candidates: int
    tempo: float  # bpm of the output
    metre: str  # of the new bars; when not `metre_known`, the widest the model may choose
    metre_known: bool
    seed_quarters: float = 0.0  # of seed played before the continuation (include_seed)

    @classmethod
    def of(cls, params: ComposeRequest, seed: SeedFacts | None, metres: Sequence[str]) -> Workload:
        """The work `params` ask for on `seed`, where `metres` are those the model knows."""
        metre = seed.time_signature if seed is not None else None
        parts = bar_parts(metre) if metre is not None and _usable(metre) else None
        # A metre the vocabulary lacks is written as bars it holds
        # (engine.api.seed_midi.split_metres).
        known = metre in metres or (parts is not None and set(parts) <= set(metres))
        if not known:  # the model chooses one: count the widest
            metre = max(metres, key=quarters_per_bar)
        assert metre is not None
        tempo = params.tempo or (seed.tempo if seed is not None else None)
        seed_quarters = seed.quarters if params.include_seed and seed is not None else 0.0
        return cls(
            bars=params.bars,
            candidates=params.candidates,
            tempo=tempo or DEFAULT_TEMPO_BPM,
            metre=metre,
            metre_known=known,
            seed_quarters=seed_quarters,
        )

    def clip_seconds(self, bars: int | None = None) -> float:
        bars = self.bars if bars is None else bars
        return (self.seed_quarters + bars * quarters_per_bar(self.metre)) * 60.0 / self.tempo

    def composition_seconds(self, bars: int | None = None) -> float:
        return self.candidates * self.clip_seconds(bars)

    def tokens(self, bars: int | None = None) -> int:
        """The most ids the decode loop may write for the whole composition."""
        return self.candidates * (self.bars if bars is None else bars) * MAX_TOKENS_PER_BAR

    def fits(self, limits: WorkLimits, bars: int | None = None) -> bool:
        return (
            self.clip_seconds(bars) <= limits.max_clip_seconds
            and self.composition_seconds(bars) <= limits.max_composition_seconds
            and self.tokens(bars) <= limits.max_composition_tokens
        )


def check_workload(work: Workload, limits: WorkLimits) -> None:
    """BadRequest, saying what to change, when `work` is over any of `limits`."""
    if work.fits(limits):
        return
    bars = f"{work.bars} bars of {'' if work.metre_known else 'up to '}{work.metre}"
    with_seed = " with the seed before them" if work.seed_quarters else ""
    if work.clip_seconds() > limits.max_clip_seconds:
        problem = (
            f"at {_bpm(work.tempo)} bpm, {bars} would last "
            f"{_duration(work.clip_seconds())}{with_seed}; a clip may last at most "
            f"{_duration(limits.max_clip_seconds)}"
        )
    elif work.composition_seconds() > limits.max_composition_seconds:
        problem = (
            f"at {_bpm(work.tempo)} bpm, {work.candidates} candidates of {bars} would "
            f"last {_duration(work.composition_seconds())} together{with_seed}; a "
            f"composition may last at most {_duration(limits.max_composition_seconds)}"
        )
    else:
        problem = (
            f"{work.candidates} candidates of {work.bars} bars may take up to "
            f"{work.tokens():,} tokens to write; this engine writes at most "
            f"{limits.max_composition_tokens:,} per composition"
        )
    raise BadRequest(f"{problem}: {_advice(work, limits)}")


def check_request(request: ComposeRequest, limits: WorkLimits, metres: Sequence[str]) -> None:
    """BadSeed or BadRequest when the seed or the work asked for is over a limit; reads the
    seed (symusic only: no tokenizer, no model), for a check before anything loads."""
    seed = (
        None
        if request.seed_midi is None
        else SeedFacts.of(read_seed(request.seed_midi, max_notes=limits.max_seed_notes))
    )
    check_workload(Workload.of(request, seed, metres), limits)


def _advice(work: Workload, limits: WorkLimits) -> str:
    """What to ask for instead: fewer bars if any count fits, else what stands in the way."""
    most = max((b for b in range(1, work.bars) if work.fits(limits, b)), default=0)
    if most:
        advice = f"ask for at most {most} bars"
        if work.candidates > 1 and replace(work, candidates=1).fits(limits, most + 1):
            advice += " (more with fewer candidates)"
        return advice
    if work.seed_quarters and replace(work, seed_quarters=0.0).fits(limits, 1):
        return "leave out include_seed"
    if work.candidates > 1 and replace(work, candidates=1).fits(limits, 1):
        return "ask for fewer candidates"
    return "ask for a faster tempo"


def _bpm(tempo: float) -> str:
    return f"{round(tempo, 1):g}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    minutes = seconds / 60
    if minutes >= 10:
        return f"{minutes:.0f} minutes"
    return f"{minutes:.1f}".rstrip("0").rstrip(".") + " minutes"


def _usable(metre: str) -> bool:
    """False for a broken file's metre (3/0)."""
    return all(x.isdigit() and int(x) > 0 for x in metre.split("/"))
