"""One composition's music, stage by stage: seed -> plan; rows -> MIDI, OGG, piano roll.

Functions of what they need (a tokenizer, a grammar, a renderer), with no thread or queue of
their own: the engine core (engine.core.engine_core) runs them for the CLI and the server alike,
and decodes between them.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace

import numpy as np
from symusic import Score, Tempo, TextMeta, TimeSignature

from engine.api.config import WorkLimits
from engine.api.form import plan_form
from engine.api.schema import DRUMS, CandidateResult, ComposeRequest, ComposeResult
from engine.api.workload import Workload, check_workload
from engine.audio.pianoroll import draw_pianoroll
from engine.audio.render import SAMPLE_RATE, EncodedAudio, Renderer, encode_ogg
from engine.generation.arrange import BarGrid
from engine.generation.grammar import Grammar
from engine.generation.keep_seed import (
    ANY_PITCHED,
    SeedPlan,
    arrange_candidate,
    guide,
)
from engine.generation.prompt import Prompt, bars_length_ticks, prompt_from_seed
from engine.generation.sample import Guidance, Row, SamplingOptions
from engine.generation.seed_tokens import SeedTokens
from engine.model.tokenizer import MidiTokenizer

log = logging.getLogger(__name__)

ENCODER_THREADS = min(4, os.cpu_count() or 1)
# Rendered clips waiting for their encoder, at most: rendering the next clip overlaps encoding
# the last, and the PCM held at once (~0.4 MB per second of audio) stays two clips' worth
# however many candidates a composition has.
ENCODE_AHEAD = 2
END_MARKER = "End"  # a MIDI marker on the last bar line: where the piece ends


@dataclass
class Plan:
    params: ComposeRequest
    prompt: Prompt
    options: SamplingOptions
    timings: dict[str, float] = field(default_factory=dict)
    seed: SeedPlan | None = None  # what the continuation keeps of its seed
    seed_material: bytes | None = None  # the seed as clean MIDI (continued parts come from it)
    guidance: Guidance | None = None

    @functools.cached_property
    def seed_score(self) -> Score | None:
        return None if self.seed_material is None else Score.from_midi(self.seed_material)


def plan_composition(
    tokenizer: MidiTokenizer,
    grammar: Grammar,
    seed_midi: bytes | None,
    params: ComposeRequest,
    limits: WorkLimits | None = None,
    *,
    known: frozenset[int] = ANY_PITCHED,
) -> Plan:
    """Read and tokenize the seed here, then plan; BadSeed/BadRequest (before any decoding)
    when the seed is unfit or the request would cost more than `limits` allow."""
    started = time.perf_counter()
    limits = limits or WorkLimits()
    seed = (
        None
        if seed_midi is None
        else SeedTokens.of(
            tokenizer, seed_midi, max_notes=limits.max_seed_notes, quantise=params.quantise
        )
    )
    return plan_from_seed(tokenizer, grammar, seed, params, limits, started=started, known=known)


def plan_from_seed(
    tokenizer: MidiTokenizer,
    grammar: Grammar,
    seed: SeedTokens | None,
    params: ComposeRequest,
    limits: WorkLimits,
    *,
    started: float,
    known: frozenset[int] = ANY_PITCHED,
) -> Plan:
    """The plan of a seed tokenized already (`started`: when its reading began; `known`: the
    programs the model learned to write); BadRequest, before any decoding, when the request
    would cost more than `limits` allow."""
    facts = seed.facts if seed is not None else None
    check_workload(Workload.of(params, facts, grammar.time_signatures), limits)
    prompt = prompt_from_seed(tokenizer, grammar, seed, tempo=params.tempo)
    options = replace(
        SamplingOptions.of(params, prompt.time_signature),
        metre_cycle=prompt.metre_cycle,
        cycle_at=prompt.cycle_at,
        extra_bars=prompt.extra_bars,
    )
    plan = Plan(params, prompt, options)
    if seed is not None and seed.profile is not None:
        # Bars of a cycle of metres (7/4 as 4/4, 3/4) may not be copied across it.
        mixed_cycle = len(set(prompt.metre_cycle)) > 1
        plan.seed = guide(
            seed.profile,
            seed.copyable_ids,
            grammar,
            bars=options.grammar_bars,
            form="free" if mixed_cycle else params.form,
            instrument=params.program,
            follow_key=params.follow_key,
            known=known,
            unfinished_last_bar=prompt.seam is not None,
        )
        plan.seed_material = seed.material
        plan.guidance = Guidance(plan.seed.steering, plan.seed.form, plan.seed.seed_bars)
    elif seed is None:  # without a seed, the first phrase is the theme that returns
        plan.guidance = Guidance(form=plan_form(params.form, bars=params.bars, seed_bars=0))
    plan.timings["tokenize"] = time.perf_counter() - started
    return plan


def to_score(tokenizer: MidiTokenizer, plan: Plan, tokens: list[int], *, index: int = 0) -> Score:
    """Decode candidate `index`; the whole piece is at one tempo (the seed's, or the chosen
    one), arranged like its seed (engine.generation.keep_seed).

    The piece ends on its last bar line, whatever its last notes do: notes still sounding
    there are cut, and an end marker there makes the MIDI file (and so the rendered clip,
    which lasts to the score's end plus the release tail) span every bar, quiet ones too.
    """
    prompt = plan.prompt
    if plan.params.include_seed:
        prefix, shift = prompt.seed_ids, 0
    elif prompt.seam is not None:
        # MidiTok places positions only after a bar line: decode after the seed's last bar,
        # then drop its notes and start where the seed stopped (no silence to open the clip).
        prefix, shift = prompt.seam.last_bar, prompt.seam.at
    else:
        prefix, shift = [], 0
    score, end = _decode(tokenizer, [*prefix, *tokens])
    if shift:
        for track in score.tracks:
            track.notes = track.notes.filter(lambda note: note.time >= shift)
        score = score.shift_time(-shift)
        end -= shift
    seam = prompt.seed_ticks if plan.params.include_seed else 0
    start = _first_whole_bar(tokenizer, prefix, tokens, prompt) - shift
    if prompt.seed_metre or (start != seam and not plan.params.include_seed):
        _restate_metre(score, plan, seam, start)
    score.tempos = tempo_map(plan, score.ticks_per_quarter)
    if plan.seed is not None:
        # `lead`: the part of a seed bar the continuation finishes before its first whole bar.
        grid = BarGrid(
            start, (end - start) // max(1, plan.params.bars), plan.params.bars, lead=start - seam
        )
        if grid.bar_ticks > 0:
            rng = np.random.default_rng([plan.params.seed or 0, index])
            arrange_candidate(score, plan.seed_score, plan.seed, grid, rng)
    for track in score.tracks:
        for note in track.notes:
            if note.time + note.duration > end:
                note.duration = max(1, end - note.time)
    score.markers.append(TextMeta(end, END_MARKER))
    return score


def _decode(tokenizer: MidiTokenizer, ids: list[int]) -> tuple[Score, int]:
    """The score of `ids` and the tick of its last bar line."""
    return tokenizer.decode(ids), bars_length_ticks(tokenizer, ids)


def _first_whole_bar(
    tokenizer: MidiTokenizer, prefix: list[int], tokens: list[int], prompt: Prompt
) -> int:
    """Tick (in the decoded prefix + tokens) of the continuation's first whole bar: after the
    rest of the seed's bar it goes on in, and the bars that finish a seed bar of a metre the
    vocabulary lacks."""
    opens = [i for i, t in enumerate(tokens) if tokenizer.base_tokens(t)[:1] == ["Bar_None"]]
    if prompt.seam is None and prompt.extra_bars == 0 or len(opens) <= prompt.extra_bars:
        return bars_length_ticks(tokenizer, prefix) if prefix else 0
    return bars_length_ticks(tokenizer, [*prefix, *tokens[: opens[prompt.extra_bars]]])


def _restate_metre(score: Score, plan: Plan, seam: int, start: int) -> None:
    """The output's time signatures in the seed's own metre (a 7/4 seed's bars were written
    as 4/4 + 3/4), its bars from `start` on. A clip that begins before its first whole bar (a
    continuation on its own that finishes the seed's bar) opens with a pickup bar of that
    length, in sixteenths, so the MIDI file's bar lines stay on the music's."""
    quarter = score.ticks_per_quarter
    decoded = list(score.time_signatures)
    metre = plan.prompt.seed_metre or (
        f"{decoded[-1].numerator}/{decoded[-1].denominator}" if decoded else "4/4"
    )
    numerator, denominator = (int(x) for x in metre.split("/"))
    seed = plan.seed_score if plan.params.include_seed else None
    if seed is not None and plan.prompt.seed_metre:
        scale = quarter / seed.ticks_per_quarter
        signatures = [
            TimeSignature(round(ts.time * scale), ts.numerator, ts.denominator)
            for ts in seed.time_signatures
        ]
    elif start == seam:
        signatures = [ts for ts in decoded if ts.time < seam]
    else:
        pickup = (start - seam) * 4 // quarter  # sixteenths
        signatures = [TimeSignature(seam, pickup, 16)]
    score.time_signatures = [*signatures, TimeSignature(start, numerator, denominator)]


def tempo_map(plan: Plan, ticks_per_quarter: int) -> list[Tempo]:
    """The output's tempos (ticks at the tokenizer's resolution): one for a continuation;
    with the seed included, the seed's own tempo changes, then the continuation's tempo from
    where it starts."""
    seed = plan.seed_score if plan.params.include_seed else None
    if seed is None or len(seed.tempos) < 2:
        return [Tempo(0, plan.prompt.tempo)]
    scale = ticks_per_quarter / seed.ticks_per_quarter
    start = plan.prompt.seed_ticks
    changes = [
        Tempo(int(t.time * scale), float(t.qpm)) for t in seed.tempos if t.time * scale < start
    ]
    return [*changes, Tempo(start, plan.prompt.tempo)]


def seed_seconds(tokenizer: MidiTokenizer, plan: Plan) -> float | None:
    """Where the seed ends in the output, when the output includes it."""
    if not (plan.params.include_seed and plan.prompt.seed_ids):
        return None
    quarter = tokenizer.remi.time_division
    tempos = tempo_map(plan, quarter)
    seconds = 0.0
    for tempo, following in zip(tempos, [*tempos[1:], None], strict=True):
        until = plan.prompt.seed_ticks if following is None else following.time
        seconds += (
            max(0, min(until, plan.prompt.seed_ticks) - tempo.time) / quarter * 60.0 / (tempo.qpm)
        )
    return seconds


def render_composition(
    plan: Plan,
    rows: list[Row],
    scores: list[Score],
    seed_seconds: float | None,
    *,
    renderer: Renderer,
    encoders: Executor,
    max_audio_bytes: int | None = None,
) -> ComposeResult:
    """Render, encode and draw the decoded candidates (on the thread that owns `renderer`)."""
    started = time.perf_counter()
    # The synth renders one clip at a time while earlier clips encode on other cores
    # (libsndfile releases the GIL), so encoding mostly hides behind rendering.
    # With the seed included, its side and the continuation's are brought to one loudness apart.
    encoding: list[Future[EncodedAudio]] = []
    for i, score in enumerate(scores):
        if i >= ENCODE_AHEAD:
            encoding[i - ENCODE_AHEAD].result()  # its PCM is freed once encoded
        pcm = renderer.render(score, seam_seconds=seed_seconds)
        encoding.append(encoders.submit(encode_ogg, pcm, SAMPLE_RATE, max_bytes=max_audio_bytes))
    candidates = []
    for row, score, job in zip(rows, scores, encoding, strict=True):
        audio = job.result()
        bars = plan.options.bars_of(row.bars)  # in the seed's metre
        if bars < plan.params.bars:  # a bug: the grammar leaves every bar a way to close
            log.warning(
                "a candidate stopped after %d of %d bars (%s)",
                bars,
                plan.params.bars,
                row.stop_reason,
            )
        candidates.append(
            CandidateResult(
                midi=score.dumps_midi(),
                audio=audio.data,
                seconds=audio.seconds,
                notes=score.note_num(),
                tokens=len(row.tokens),
                invalid_rate=row.invalid_mass / max(1, row.steps),
                bars=bars,
                audio_note=audio.note,
                audio_quality_lowered=audio.quality_lowered,
                audio_cut_from=audio.cut_from,
                programs=programs_heard(score),
            )
        )
    plan.timings["render"] = time.perf_counter() - started
    started = time.perf_counter()
    png = draw_pianoroll(scores, seed=plan.seed_score, seed_seconds=seed_seconds)
    plan.timings["pianoroll"] = time.perf_counter() - started
    return ComposeResult(
        candidates, png, seed_seconds, dict(plan.timings), tempo=float(plan.prompt.tempo)
    )


def programs_heard(score: Score) -> list[int]:
    """The GM programs of the score's tracks with notes (DRUMS for a drum kit), in order."""
    heard = [
        DRUMS if track.is_drum else int(track.program) for track in score.tracks if len(track.notes)
    ]
    return list(dict.fromkeys(heard))
