"""What a composition keeps of its seed: from the seed's profile to the sampler's guidance,
and from a decoded candidate to the finished arrangement.

Planning (`guide`): the arrangement says which parts the model writes; the steering asks the
sampler for the seed's instruments, key, dynamics, texture, density and groove; the form plans
which bars come back. Finishing (`arrange_candidate`): the parts the model does not write
(drums above all) and the ones it dropped go on from the seed's own bars (a steady
accompaniment the model left out of some bars is filled there), a part the model
wrote for the keyboard is voiced onto the seed's instruments, the seed's instruments stay in
the register the seed gives them, and a monophonic part keeps one line. Pure numpy and
symusic: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from symusic import Score

from engine.api.form import phrase_bars, plan_form
from engine.generation.arrange import (
    Arrangement,
    BarGrid,
    continue_parts,
    keep_in_register,
    keep_one_line,
    plan_arrangement,
    voice_by_register,
)
from engine.generation.bars import split_bars
from engine.generation.grammar import MIXED, NONE, Grammar
from engine.generation.seed_profile import DRUMS, SeedProfile
from engine.generation.steering import KEY_STRENGTH, RowSteering
from engine.model.coverage import ProgramCoverage

# Every pitched GM program: what a model that does not record its training instruments is
# taken to write (it reads the seed's Program ids in context; drums it never learned).
ANY_PITCHED = frozenset(range(128))


def known_programs(coverage: ProgramCoverage | None) -> frozenset[int]:
    """The programs a model learned to write (DRUMS for drums), from its checkpoint's record."""
    if coverage is None:
        return ANY_PITCHED
    return frozenset(DRUMS if p == -1 else p for p in coverage.learned_programs())


@dataclass(frozen=True)
class SeedPlan:
    """The seed-dependent half of a composition's plan."""

    profile: SeedProfile
    arrangement: Arrangement
    steering: RowSteering
    form: list
    seed_bars: list[list[int] | None]


def guide(
    profile: SeedProfile,
    seed_ids: Sequence[int],
    grammar: Grammar,
    *,
    bars: int,
    form: str,
    instrument: int | None,
    follow_key: bool = True,
    known: frozenset[int] = ANY_PITCHED,
    unfinished_last_bar: bool = False,
) -> SeedPlan:
    """`unfinished_last_bar`: the continuation goes on inside the seed's last bar
    (engine.generation.prompt.Seam), which is then no bar to bring back whole."""
    arrangement = plan_arrangement(profile, known, instrument)
    written = arrangement.written
    parts = [p for p in profile.pitched if p.program in written]
    key_strength = (
        KEY_STRENGTH * profile.key_confidence if follow_key and profile.key is not None else 0.0
    )
    steering = RowSteering(
        programs=written or None,
        scale=profile.scale if key_strength > 0 else None,
        key_strength=key_strength,
        pitch_class_shares=profile.pitch_class_shares,
        part_pitch_shares=tuple(
            (program, profile.pitch_shares(program))
            for program in sorted(written)
            if program != DRUMS
        ),
        velocities=profile.velocity_range(written if parts else None),
        monophonic=len(parts) == 1 and parts[0].monophonic,
        notes_per_bar=profile.notes_per_bar(written if parts else None),
        onsets=profile.onset_profile,
        positions_per_beat=profile.positions_per_beat,
    )
    seed_bars = copyable_bars(seed_ids, grammar, written)
    if unfinished_last_bar:
        seed_bars = seed_bars[:-1]
    plan = plan_form(
        form,
        bars=bars,
        seed_bars=len(seed_bars),
        phrase=phrase_bars(profile.numerator, profile.denominator),
    )
    return SeedPlan(profile, arrangement, steering, plan, seed_bars)


def copyable_bars(
    seed_ids: Sequence[int], grammar: Grammar, written: frozenset[int]
) -> list[list[int] | None]:
    """The seed's bars as ids; None for a bar a continuation may not copy: one in another
    metre than the seed's last, without notes, or with an instrument it does not write."""
    opens_bar = grammar.opens_bar.tolist()
    metre_of = grammar.time_signature.tolist()
    program_of = grammar.program.tolist()
    bars = split_bars(list(seed_ids), opens_bar)
    metres = [next((metre_of[i] for i in bar if metre_of[i] != NONE), NONE) for bar in bars]
    final = next((m for m in reversed(metres) if m != NONE), NONE)
    out: list[list[int] | None] = []
    for bar, metre in zip(bars, metres, strict=True):
        programs = {program_of[i] for i in bar} - {NONE}
        fits = (
            metre == final
            and programs
            and MIXED not in programs
            and (not written or programs <= written)
        )
        out.append(bar if fits else None)
    return out


def arrange_candidate(
    output: Score, seed: Score | None, plan: SeedPlan, grid: BarGrid, rng: np.random.Generator
) -> None:
    """Finish a decoded candidate (in place): continued, voiced and one-line parts."""
    arrangement = plan.arrangement
    if arrangement.voiced:
        voice_by_register(output, arrangement.voiced, start=grid.seam)
    heard = _programs_after(output, grid.seam)
    written = [p for p in plan.profile.pitched if p.program in arrangement.written]
    dropped = tuple(p for p in written if p.program not in heard)
    if seed is not None and (arrangement.continued or dropped):
        continue_parts(output, seed, plan.profile, (*arrangement.continued, *dropped), grid, rng)
    kept = tuple(p for p in written if p.program in heard)
    # An accompaniment the model let fall silent in places (with one part, it is the tune,
    # which may rest).
    if seed is not None and kept and len(plan.profile.pitched) > 1:
        continue_parts(output, seed, plan.profile, kept, grid, rng, gaps_only=True)
    keep_in_register(output, written, start=grid.seam)
    keep_one_line(output, solo_programs(plan.profile), start=grid.seam)


def solo_programs(profile: SeedProfile) -> set[int]:
    """Programs played by one monophonic part of the seed (a sax line; not a chorale's four
    voices on one organ, each monophonic but sounding together)."""
    parts_of: dict[int, list] = {}
    for part in profile.pitched:
        parts_of.setdefault(part.program, []).append(part)
    return {
        program for program, parts in parts_of.items() if len(parts) == 1 and parts[0].monophonic
    }


def _programs_after(output: Score, start: int) -> set[int]:
    heard = set()
    for track in output.tracks:
        if track.note_num() and int(track.notes.numpy()["time"].max()) >= start:
            heard.add(DRUMS if track.is_drum else int(track.program))
    return heard
