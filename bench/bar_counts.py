"""Every candidate reaches exactly the bars asked, and its clip lasts them.

    .venv/bin/python -m bench.bar_counts [--quick]

Compositions from the bundled seeds, seeds like members upload (bench/member_seeds.py: band
loop with drums, 6/8, 5/4, 3/4, dense performed piano, sax, a 320-bar song) and no seed, at
temperatures from 0.5 to 1.5 and 1, 4, 16 and 64 bars, and with the other options members
pick (an instrument; a tempo with the seed at the clip's start). They decode as the engine does
(planned by the Composer, continuously batched in one DecodeBatch) and every candidate is
rendered with FluidSynth as it would be posted (not OGG-encoded: encoding keeps the length).
Bars and clip lengths are counted from the output, not taken from the engine's own
bookkeeping: the bars a candidate opened, and the PCM's length beside the bars asked x the
seconds of a bar in its metre and tempo, plus the release tail.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from bench import member_seeds
from bench.markdown import percent, table
from bench.section import Headline, Report, Section, main
from engine.api.errors import BadRequest
from engine.audio.loudness import integrated_loudness
from engine.audio.render import FLUID_BLOCK, SAMPLE_RATE, TAIL_SECONDS
from engine.core.composer import Composer, ComposeRequest, Plan, seed_seconds, to_score
from engine.generation.grammar import BAR_TOKEN_CAP
from engine.generation.sample import DecodeBatch, Row
from engine.model.device import configure_threads

TEMPERATURES = (0.5, 0.75, 1.0, 1.25, 1.5)
QUICK_TEMPERATURES = (0.5, 1.0, 1.5)
# Per seed and temperature: (bars, candidates, compositions). Short pieces are cheap, so they
# get more candidates; one 64-bar candidate costs as much as sixteen of 4 bars.
MIX = ((1, 4, 2), (4, 4, 2), (16, 4, 1), (64, 1, 1))
QUICK_MIX = ((1, 2, 1), (4, 2, 1), (16, 1, 1))
# Per seed, at temperature 1, compositions of 4 x 4 bars with the members' other options.
OPTIONS: dict[str, dict[str, object]] = {
    "instrument (flute)": {"program": 73},
    "tempo 90 bpm, clip starts with the seed": {"tempo": 90.0, "include_seed": True},
}
MAX_ROWS = 64  # rows decoding at once, as the engine's default cap
NO_SEED = "no seed"
DEFAULTS = "defaults"


@dataclass(eq=False)  # one per composition, told apart by identity
class Case:
    seed_name: str
    options: str
    plan: Plan
    rows: list[Row] = field(default_factory=list)


@dataclass
class Outcome:
    seed_name: str
    options: str
    bars_asked: int
    bars_written: int
    stop_reason: str
    due_seconds: float  # bars asked x bar seconds + tail
    clip_seconds: float
    silent: bool
    token_errors: int
    bar_ids: list[int]  # ids in each bar written

    @property
    def exact(self) -> bool:
        """All the bars asked, the last one finished (sampling reached the next bar line)."""
        return self.bars_written == self.bars_asked and self.stop_reason == "bars"

    @property
    def fits(self) -> bool:
        return abs(self.clip_seconds - self.due_seconds) * SAMPLE_RATE <= FLUID_BLOCK


def seeds() -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {
        name: member_seeds.midi_bytes(score) for name, score in member_seeds.bundled().items()
    }
    out.update({name: member_seeds.midi_bytes(make()) for name, make in member_seeds.SEEDS.items()})
    out[NO_SEED] = None
    return out


def plan_cases(composer: Composer, quick: bool) -> tuple[list[Case], list[str]]:
    """The cases, and the requests the engine's work limits refuse (as "seed, options": a
    320-bar seed included in its clip lasts longer than a clip may)."""
    cases: list[Case] = []
    refused: list[str] = []

    def add(name: str, label: str, seed: bytes | None, params: ComposeRequest) -> None:
        try:
            cases.append(Case(name, label, composer.plan(seed, params)))
        except BadRequest:
            refused.append(f"{name}, {label}")

    for name, seed in seeds().items():
        for temperature in QUICK_TEMPERATURES if quick else TEMPERATURES:
            for bars, candidates, compositions in QUICK_MIX if quick else MIX:
                for _ in range(compositions):
                    add(
                        name,
                        DEFAULTS,
                        seed,
                        ComposeRequest(
                            bars=bars,
                            candidates=candidates,
                            temperature=temperature,
                            seed=len(cases),
                        ),
                    )
        for label, options in OPTIONS.items():
            add(name, label, seed, ComposeRequest(bars=4, candidates=4, seed=len(cases), **options))
    return cases, refused


@torch.no_grad()
def decode(composer: Composer, cases: list[Case], done: Callable[[Case], None]) -> int:
    """Decode every case with continuous batching, calling `done` with each case as soon as
    its last row finishes; returns the decode steps taken."""
    batch = DecodeBatch(composer.model, composer.grammar)
    waiting, steps = list(cases), 0
    while waiting or len(batch):
        while waiting and len(batch) + waiting[0].plan.params.candidates <= MAX_ROWS:
            case = waiting.pop(0)
            generator = torch.Generator()
            generator.manual_seed(case.plan.params.seed or 0)
            case.rows = [
                Row(
                    request=case,
                    generator=generator,
                    options=case.plan.options,
                    guidance=case.plan.guidance,
                )
                for _ in range(case.plan.params.candidates)
            ]
            batch.add(case.plan.prompt.ids, case.rows, first_onset=case.plan.prompt.first_onset)
        for case in dict.fromkeys(row.request for row in batch.step()):
            assert isinstance(case, Case)
            if all(r.done for r in case.rows):
                done(case)
        steps += 1
    return steps


def bar_seconds(composer: Composer, plan: Plan, row: Row) -> float:
    """Seconds of one bar in the metre the row wrote (its first time signature) and tempo."""
    metre = next(
        (
            t.split("_")[1]
            for t in composer.tokenizer.to_base(row.tokens[:2])
            if t.startswith("TimeSig")
        ),
        "4/4",
    )
    numerator, denominator = (int(x) for x in metre.split("/"))
    return numerator * 4 / denominator * 60.0 / plan.prompt.tempo


def measure(composer: Composer, case: Case) -> list[Outcome]:
    tok, opens = composer.tokenizer, composer.grammar.opens_bar
    # A clip that starts with the seed lasts the seed's bars first.
    seed_part = seed_seconds(tok, case.plan) or 0.0
    outcomes = []
    for row in case.rows:
        opened = [i for i, t in enumerate(row.tokens) if opens[t]]
        pcm = composer.renderer.render(to_score(tok, case.plan, row.tokens))
        outcomes.append(
            Outcome(
                seed_name=case.seed_name,
                options=case.options,
                bars_asked=case.plan.params.bars,
                bars_written=len(opened),
                stop_reason=row.stop_reason,
                due_seconds=seed_part
                + case.plan.params.bars * bar_seconds(composer, case.plan, row)
                + TAIL_SECONDS,
                clip_seconds=len(pcm) / SAMPLE_RATE,
                silent=integrated_loudness(pcm, SAMPLE_RATE) == float("-inf"),
                token_errors=tok.remi.tokens_errors(tok.to_base(row.tokens)),
                bar_ids=[
                    b - a for a, b in zip(opened, [*opened[1:], len(row.tokens)], strict=True)
                ],
            )
        )
    return outcomes


def share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({percent(part / max(1, whole))})"


def seed_density(composer: Composer, cases: list[Case]) -> dict[str, float]:
    """Ids per bar of each seed as the model reads it (0 without a seed)."""
    out = {}
    for case in cases:
        ids = case.plan.prompt.seed_ids
        bars = sum(bool(composer.grammar.opens_bar[i]) for i in ids)
        out[case.seed_name] = len(ids) / max(1, bars)
    return out


def by_seed_table(outcomes: list[Outcome], density: dict[str, float]) -> str:
    rows = []
    for name in dict.fromkeys(o.seed_name for o in outcomes):
        mine = [o for o in outcomes if o.seed_name == name]
        bars = [n for o in mine for n in o.bar_ids]
        rows.append(
            [
                name,
                len(mine),
                percent(sum(o.exact for o in mine) / len(mine)),
                percent(sum(o.fits for o in mine) / len(mine)),
                f"{density[name]:.0f}" if density[name] else "-",
                f"{statistics.mean(bars):.0f}" if bars else "-",
                percent(sum(n >= BAR_TOKEN_CAP for n in bars) / max(1, len(bars))),
            ]
        )
    return table(
        [
            "seed",
            "candidates",
            "exactly the bars asked",
            "clip = bars + tail",
            "seed: ids per bar",
            "candidates: ids per bar",
            f"bars closed by the {BAR_TOKEN_CAP}-id cap",
        ],
        rows,
    )


def by_options_table(outcomes: list[Outcome]) -> str:
    rows = []
    for options in dict.fromkeys(o.options for o in outcomes):
        mine = [o for o in outcomes if o.options == options]
        rows.append(
            [
                options,
                len(mine),
                percent(sum(o.exact for o in mine) / len(mine)),
                percent(sum(o.fits for o in mine) / len(mine)),
            ]
        )
    return table(["options", "candidates", "exactly the bars asked", "clip = bars + tail"], rows)


def by_bars_table(outcomes: list[Outcome]) -> str:
    rows = []
    for bars in sorted({o.bars_asked for o in outcomes}):
        mine = [o for o in outcomes if o.bars_asked == bars]
        rows.append(
            [
                bars,
                len(mine),
                percent(sum(o.exact for o in mine) / len(mine)),
                f"{statistics.median(o.due_seconds for o in mine):.2f} s",
                f"{statistics.median(o.clip_seconds for o in mine):.2f} s",
                f"{max(abs(o.clip_seconds - o.due_seconds) for o in mine) * 1e3:.1f} ms",
            ]
        )
    return table(
        [
            "bars asked",
            "candidates",
            "exactly the bars asked",
            "due (median)",
            "clip (median)",
            "largest clip - due",
        ],
        rows,
    )


def run(quick: bool) -> Report:
    threads = configure_threads()
    composer = Composer()
    # Rendering runs on a second thread while decoding goes on, as in the engine.
    renders = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
    try:
        started = time.perf_counter()
        cases, refused = plan_cases(composer, quick)
        planned = time.perf_counter()
        density = seed_density(composer, cases)
        jobs: list[Future[list[Outcome]]] = []
        steps = decode(
            composer, cases, lambda case: jobs.append(renders.submit(measure, composer, case))
        )
        decoded = time.perf_counter()
        outcomes = [o for job in jobs for o in job.result()]
        rendered = time.perf_counter()
    finally:
        renders.shutdown()
        composer.close()
    n = len(outcomes)
    exact = sum(o.exact for o in outcomes)
    fits = sum(o.fits for o in outcomes)
    valid = sum(o.token_errors == 0 for o in outcomes)
    silent = sum(o.silent for o in outcomes)
    reasons = Counter(o.stop_reason for o in outcomes)
    short = [o for o in outcomes if not o.exact]
    tokens = sum(len(r.tokens) for case in cases for r in case.rows)
    worst = max(abs(o.clip_seconds - o.due_seconds) for o in outcomes)
    seeds_count = len({o.seed_name for o in outcomes})
    temperatures = QUICK_TEMPERATURES if quick else TEMPERATURES
    mix = "; ".join(
        f"{bars} bar{'s' if bars > 1 else ''}: {count} x {candidates}"
        for bars, candidates, count in (QUICK_MIX if quick else MIX)
    )
    summary = table(
        ["", "measured", "goal"],
        [
            ["candidates with exactly the bars asked", share(exact, n), "100%"],
            [
                "clips lasting bars asked x bar seconds + the tail (within one "
                f"{FLUID_BLOCK}-frame block)",
                share(fits, n),
                "100%",
            ],
            [
                "largest gap between a clip and its due length",
                f"{worst * 1e3:.1f} ms",
                f"under {FLUID_BLOCK / SAMPLE_RATE * 1e3:.1f} ms",
            ],
            [
                "stop reasons",
                ", ".join(f"{k}: {v:,}" for k, v in reasons.most_common()),
                "bars only",
            ],
            ["valid REMI (MidiTok finds no token error)", share(valid, n), "100%"],
            ["silent clips", f"{silent:,}", "none"],
        ],
    )
    markdown = "\n\n".join(
        [
            f"{n:,} candidates in {len(cases)} compositions: {seeds_count} seeds (the bundled "
            f"examples, seeds like members upload from bench/member_seeds.py, and no seed) x "
            f"temperatures {', '.join(f'{t:g}' for t in temperatures)} x compositions of "
            f"({mix} candidates), and per seed 4 x 4 bars with each of: "
            f"{'; '.join(OPTIONS)}. Shipped model, {threads} torch thread(s) decoding, at most "
            f"{MAX_ROWS} rows at once; FluidSynth renders on a second thread meanwhile."
            + (
                f" Refused by the work limits before any decoding: {'; '.join(refused)}."
                if refused
                else ""
            ),
            summary,
            by_seed_table(outcomes, density),
            by_bars_table(outcomes),
            by_options_table(outcomes),
            f"A bar crowded with {BAR_TOKEN_CAP} ids takes only the note under way, then closes. "
            f"Short candidates: {len(short)}"
            + (
                " ("
                + ", ".join(f"{o.seed_name} {o.bars_written}/{o.bars_asked}" for o in short[:8])
                + ")"
                if short
                else ""
            )
            + ".",
            f"Time: planning {planned - started:.0f} s; decoding {tokens:,} tokens in {steps:,} "
            f"steps {decoded - planned:.0f} s ({tokens / (decoded - planned):,.0f} tokens/s); "
            f"rendering {sum(o.clip_seconds for o in outcomes) / 60:.0f} minutes of audio "
            f"finished {rendered - decoded:.0f} s after the last decode step.",
        ]
    )
    return Report(
        markdown,
        [
            Headline("candidates with exactly the bars asked", share(exact, n), "goal: 100%"),
            Headline(
                "clips lasting their bars + tail",
                share(fits, n),
                f"goal: 100% (within {FLUID_BLOCK} frames)",
            ),
        ],
    )


SECTION = Section(
    "Bar counts: every candidate reaches the bars asked, its clip lasts them",
    ".venv/bin/python -m bench.bar_counts",
    run,
)

if __name__ == "__main__":
    main(SECTION)
