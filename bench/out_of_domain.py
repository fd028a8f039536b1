"""Out of domain: continuations of seeds like members upload, not music21's folk and chorales.

    .venv/bin/python -m bench.out_of_domain [--quick]

Every seed (bench/ood_seeds.py) is composed through the engine's public offline API,
`Composer.compose`, as a member's request would be: 16 continuations of 16 bars (4 compositions
of 4 candidates; --quick: 1), and one composition with `include_seed` for the seam. Each
continuation is measured against its seed (bench/ood_measure.py) beside the real next 16 bars
and two baselines that need no model (bench/seed_baselines.py). Whatever the engine changes in
planning, sampling, arranging or rendering shows here.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from symusic import Score

from bench.machine import cpu_seconds, load_average
from bench.markdown import percent, table
from bench.miditok_songs import SDIST_URL
from bench.ood_measure import (
    DENSITY_TOLERANCE,
    LEVEL_UNIT,
    Figures,
    SeedFacts,
    clip_loudness,
    continuation_seconds,
    measure,
    read_audio,
    seed_seconds,
)
from bench.ood_seeds import BARS, SEED_BARS, OodSeed, control_seeds, upload_seeds
from bench.section import Headline, Report, Section, main
from bench.seed_baselines import random_in_scale, repeat_seed
from engine.api.errors import BadRequest, BadSeed
from engine.audio.render import TAIL_SECONDS
from engine.core.composer import Composer, ComposeRequest
from engine.model.device import configure_threads

CANDIDATES = 4
COMPOSITIONS, QUICK_COMPOSITIONS = 4, 1  # of CANDIDATES each, per seed
SEAM_CANDIDATES, QUICK_SEAM_CANDIDATES = 2, 1
# The goals (issue 13): what real continuations of real music do.
REAL_REPEATED, REAL_REUSED = 0.14, 0.19
IN_SCALE_GOAL = 0.9
SPREAD_GOAL_LU, SEAM_GOAL_LU = 1.0, 3.0


@dataclass
class SeedRun:
    facts: SeedFacts
    model: list[Figures] = field(default_factory=list)
    real: list[Figures] = field(default_factory=list)  # one, when the seed has a reference
    repeat: list[Figures] = field(default_factory=list)
    random: list[Figures] = field(default_factory=list)
    spreads: list[float] = field(default_factory=list)  # loudness spread of each composition, LU
    lengths: list[float] = field(default_factory=list)  # clip seconds - due seconds
    seam_jumps: list[float] = field(default_factory=list)  # continuation minus seed side
    seam_offsets: list[float] = field(default_factory=list)  # seam minus seed length, s
    seconds: float = 0.0
    refused: str | None = None

    @property
    def seed(self) -> OodSeed:
        return self.facts.seed


def compose_seed(composer: Composer, run: SeedRun, compositions: int, seam_candidates: int) -> None:
    facts, due = run.facts, continuation_seconds(run.facts) + TAIL_SECONDS
    for i in range(compositions):
        composition = composer.compose(
            facts.seed.midi, ComposeRequest(bars=BARS, candidates=CANDIDATES, seed=i)
        )
        levels = []
        for candidate in composition.candidates:
            run.model.append(measure(facts, Score.from_midi(candidate.midi)))
            run.lengths.append(candidate.seconds - due)
            levels.append(clip_loudness(*read_audio(candidate.audio)))
        run.spreads.append(max(levels) - min(levels))
    seam = composer.compose(
        facts.seed.midi,
        ComposeRequest(bars=BARS, candidates=seam_candidates, seed=compositions, include_seed=True),
    )
    if seam.seed_seconds is None:  # the engine left the seed out: no seam to measure
        return
    for candidate in seam.candidates:
        pcm, rate = read_audio(candidate.audio)
        cut = round(seam.seed_seconds * rate)
        run.seam_jumps.append(clip_loudness(pcm[cut:], rate) - clip_loudness(pcm[:cut], rate))
    run.seam_offsets.append(seam.seed_seconds - seed_seconds(facts))


def run_seed(composer: Composer, seed: OodSeed, compositions: int, seam_candidates: int) -> SeedRun:
    started = time.perf_counter()
    run = SeedRun(SeedFacts.of(seed))
    score = run.facts.score
    if seed.reference is not None:
        run.real.append(measure(run.facts, seed.reference))
    run.repeat.append(measure(run.facts, repeat_seed(score, seed.bars, BARS)))
    rng = random.Random(0)
    run.random = [
        measure(run.facts, random_in_scale(score, seed.bars, BARS, run.facts.key, rng))
        for _ in range(compositions * CANDIDATES)
    ]
    try:
        compose_seed(composer, run, compositions, seam_candidates)
    except (BadSeed, BadRequest) as exc:
        run.refused = str(exc)
    run.seconds = time.perf_counter() - started
    return run


# Aggregation: a mean over each seed's continuations, then over the seeds, so that every
# seed weighs the same; notes per bar as medians.


def seed_value(values: Sequence[float | bool | None], median: bool = False) -> float | None:
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    return statistics.median(kept) if median else statistics.fmean(kept)


def group_value(
    runs: list[SeedRun],
    pick: Callable[[SeedRun], list],
    key: str | None = None,
    median: bool = False,
) -> float | None:
    per_seed = [
        seed_value([f[key] for f in pick(r)] if key else pick(r), median)
        for r in runs
        if not r.refused
    ]
    return seed_value(per_seed, median)


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return {
        "%": percent(value, 0),
        "x": f"{value:.2f}x",
        "d": f"{value:.2f}",
        "db": f"{value:.1f}",
    }[kind]


# (figure, label, format, median, goal, measured on references and baselines too)
ROWS = [
    ("full_bars", f"continuations that write all {BARS} bars", "%", False, "100%", False),
    ("drums_kept", "drums kept: bars with drum hits (seeds with drums)", "%", False, "100%", True),
    ("instruments_kept", "seed's instruments kept", "%", False, "100%", True),
    (
        "only_seed_instruments",
        "continuations with only the seed's instruments",
        "%",
        False,
        "100%",
        True,
    ),
    ("in_scale", "notes in the seed's scale", "%", False, f">= {percent(IN_SCALE_GOAL, 0)}", True),
    ("key", "key kept (Krumhansl-Schmuckler)", "%", False, ">= the real continuations'", True),
    (
        "key_signature",
        "key signature kept (the key or its relative)",
        "%",
        False,
        ">= the real continuations'",
        True,
    ),
    (
        "density",
        "notes per bar / the seed's (median)",
        "x",
        True,
        f"within {DENSITY_TOLERANCE}x",
        True,
    ),
    (
        "density_within",
        f"continuations within {DENSITY_TOLERANCE}x of the seed's density",
        "%",
        False,
        "100%",
        True,
    ),
    (
        "pitched_density",
        "pitched notes per bar / the seed's (median; drums left out)",
        "x",
        True,
        f"within {DENSITY_TOLERANCE}x",
        True,
    ),
    (
        "rhythm",
        "rhythm-profile distance to the seed (0-1)",
        "d",
        False,
        "near the real continuations'",
        True,
    ),
    (
        "repeated",
        "bars repeating an earlier bar",
        "%",
        False,
        f"near {percent(REAL_REPEATED, 0)}",
        True,
    ),
    ("reused", "bars reusing a seed bar", "%", False, f"near {percent(REAL_REUSED, 0)}", True),
    ("loud", "notes at velocity >= 120", "%", False, "near the seeds'", True),
]


def summary_table(uploads: list[SeedRun], controls: list[SeedRun]) -> str:
    def cells(key: str, kind: str, median: bool, others: bool) -> list[str]:
        def value(runs: list[SeedRun], pick: Callable[[SeedRun], list]) -> str:
            return fmt(group_value(runs, pick, key, median), kind)

        model = [value(uploads, lambda r: r.model), value(controls, lambda r: r.model)]
        if not others:
            return [model[0], "-", "-", "-", model[1], "-"]
        return [
            model[0],
            value(uploads, lambda r: r.real),
            value(uploads, lambda r: r.repeat),
            value(uploads, lambda r: r.random),
            model[1],
            value(controls, lambda r: r.real),
        ]

    rows = []
    for key, label, kind, median, goal, others in ROWS:
        row = cells(key, kind, median, others)
        if key == "loud":
            seeds = [
                group_value(runs, lambda r: [r.facts.loud_share]) for runs in (uploads, controls)
            ]
            goal = f"near the seeds' ({fmt(seeds[0], '%')} / {fmt(seeds[1], '%')})"
        rows.append([label, *row, goal])
    for label, pick, kind, goal in (
        (
            "clips within a beat of their due length",
            lambda r: [abs(d) <= 60 / r.facts.tempo for d in r.lengths],
            "%",
            "100%",
        ),
        (
            f"loudness spread across the clips of a composition ({LEVEL_UNIT})",
            lambda r: r.spreads,
            "db",
            f"<= {SPREAD_GOAL_LU:.0f} LU",
        ),
        (
            f"seam jump with include_seed: continuation side vs seed side, absolute ({LEVEL_UNIT})",
            lambda r: [abs(j) for j in r.seam_jumps],
            "db",
            f"<= {SEAM_GOAL_LU:.0f} LU",
        ),
        (
            "seam position with include_seed: off the seed's length by (s)",
            lambda r: [abs(o) for o in r.seam_offsets],
            "d",
            "0",
        ),
    ):
        rows.append(
            [
                label,
                fmt(group_value(uploads, pick), kind),
                "-",
                "-",
                "-",
                fmt(group_value(controls, pick), kind),
                "-",
                goal,
            ]
        )
    return table(
        [
            "",
            "uploads: model",
            f"uploads: real next {BARS} bars",
            "uploads: repeat the seed",
            "uploads: random notes in scale",
            "controls: model",
            "controls: real",
            "goal",
        ],
        rows,
    )


def distance_rows(groups: dict[str, list[SeedRun]]) -> tuple[str, dict[str, tuple]]:
    """Pitch-class distance to the real continuation: model against both baselines."""
    rows, results = [], {}
    for name, runs in groups.items():
        runs = [r for r in runs if r.real and not r.refused]
        if not runs:
            continue
        values = [
            group_value(runs, pick, "pitch_class_distance")
            for pick in (lambda r: r.model, lambda r: r.repeat, lambda r: r.random)
        ]
        model, repeat, rand = values
        beats = model is not None and model < min(repeat, rand)
        results[name] = (model, repeat, rand, beats)
        rows.append(
            [
                f"{name} ({len(runs)} seeds)",
                fmt(model, "d"),
                fmt(repeat, "d"),
                fmt(rand, "d"),
                "**yes**" if beats else "**no**",
            ]
        )
    return table(
        [
            "seeds with a real continuation",
            "model",
            "repeat the seed",
            "random notes in scale",
            "model beats both",
        ],
        rows,
    ), results


def model_of(run: SeedRun) -> list[Figures]:
    return run.model


def real_of(run: SeedRun) -> list[Figures]:
    return run.real


def cell(
    run: SeedRun,
    key: str,
    kind: str,
    pick: Callable[[SeedRun], list] = model_of,
    median: bool = False,
) -> str:
    return fmt(group_value([run], pick, key, median), kind)


def seeds_table(runs: list[SeedRun]) -> str:
    return table(
        ["seed", "from", "seed is", "key found"],
        [[r.seed.name, r.seed.source, r.seed.describe(), str(r.facts.key or "-")] for r in runs],
        align="llll",
    )


def seed_tables(runs: list[SeedRun]) -> tuple[str, str]:
    kept, form = [], []
    for r in runs:
        name = f"{r.seed.name}{' (control)' if r.seed.control else ''}"
        if r.refused:
            kept.append([name, f"refused: {r.refused}", *["-"] * 7])
            form.append([name, *["-"] * 7])
            continue
        kept.append(
            [
                name,
                cell(r, "full_bars", "%"),
                cell(r, "instruments_kept", "%"),
                cell(r, "only_seed_instruments", "%"),
                cell(r, "drums_kept", "%"),
                cell(r, "in_scale", "%"),
                cell(r, "key", "%"),
                cell(r, "density", "x", median=True),
                f"{cell(r, 'rhythm', 'd')} / {cell(r, 'rhythm', 'd', real_of)}",
            ]
        )
        form.append(
            [
                name,
                f"{cell(r, 'repeated', '%')} / {cell(r, 'reused', '%')}",
                f"{cell(r, 'repeated', '%', real_of)} / {cell(r, 'reused', '%', real_of)}",
                f"{cell(r, 'loud', '%')} / {fmt(r.facts.loud_share, '%')}",
                fmt(seed_value(r.spreads), "db"),
                fmt(seed_value([abs(j) for j in r.seam_jumps]), "db"),
                " / ".join(
                    cell(r, "pitch_class_distance", "d", pick)
                    for pick in (model_of, lambda r: r.repeat, lambda r: r.random)
                ),
                f"{r.seconds:.0f} s",
            ]
        )
    kept_md = table(
        [
            "seed",
            f"{BARS} bars",
            "instruments kept",
            "only seed's",
            "drums kept",
            "in scale",
            "key kept",
            "density",
            "rhythm distance: model / real",
        ],
        kept,
    )
    form_md = table(
        [
            "seed",
            "repeated / reused bars: model",
            "real",
            "velocity >= 120: model / seed",
            f"spread, {LEVEL_UNIT}",
            f"seam jump, {LEVEL_UNIT}",
            "pitch-class distance: model / repeat / random",
            "took",
        ],
        form,
    )
    return kept_md, form_md


def run(quick: bool) -> Report:
    configure_threads()  # decoding, as the engine does: one thread
    compositions = QUICK_COMPOSITIONS if quick else COMPOSITIONS
    seam_candidates = QUICK_SEAM_CANDIDATES if quick else SEAM_CANDIDATES
    uploads, songs_missing = upload_seeds()
    controls = control_seeds()
    cpu_started = cpu_seconds()
    composer = Composer()
    try:
        upload_runs = [run_seed(composer, s, compositions, seam_candidates) for s in uploads]
        control_runs = [run_seed(composer, s, compositions, seam_candidates) for s in controls]
    finally:
        composer.close()
    everything = upload_runs + control_runs
    songs = [r for r in upload_runs if r.real]
    distance_md, distances = distance_rows(
        {"uploads (MidiTok songs)": songs, "controls": control_runs, "all": songs + control_runs}
    )
    kept_md, form_md = seed_tables(everything)
    refused = [r for r in everything if r.refused]
    took, cpu = sum(r.seconds for r in everything), cpu_seconds() - cpu_started
    missing = (
        f"\n\n**The MidiTok songs were not measured**: {songs_missing}" if songs_missing else ""
    )
    markdown = "\n\n".join(
        [
            f"{len(uploads)} uploads like members' and {len(controls)} held-out controls. Each "
            f"seed: {compositions * CANDIDATES} continuations of {BARS} bars ({compositions} "
            f"`Composer.compose` calls of {CANDIDATES} candidates, sampling seeds 0-"
            f"{compositions - 1}, temperature 1.0, top-p 0.95) and {seam_candidates} more with "
            f"`include_seed` for the seam; {took:.0f} s in all ({cpu:.0f} s of CPU, load "
            f"average {load_average()} at the end). Songs: the test MIDI files of "
            f"MidiTok 3.1.0's source distribution ({SDIST_URL}, downloaded once into the data "
            f"dir, never committed), each cut to an {SEED_BARS}-bar seed from the stated bar and "
            f"the real next {BARS} bars; our own seeds: the bundled `engine/examples/*.mid` "
            f"(no real continuation); controls: the opening {SEED_BARS} bars of the first "
            f"held-out chorale and folk tune of bench.quality's corpus and their next {BARS} bars."
            + missing,
            "Baselines, with no model: **repeat the seed** (looped to 16 bars) and **random "
            f"notes in scale** ({compositions * CANDIDATES} per seed: the looped seed with each "
            "pitched note replaced by a random pitch of the seed's key's scale within its "
            "track's range, so the seed's density, rhythm, instruments and velocities).",
            "Definitions (engine/evaluation/musical_stats.py): instruments are GM programs, "
            "drums one more; "
            "the key is Krumhansl-Schmuckler's on the pitched notes, its scale the key "
            "signature's diatonic set; density counts every note, drums included, per bar; the "
            "rhythm profile is where notes start in the bar on a grid of twelfths of a beat, two "
            "profiles compared by total variation (0 same, 1 disjoint); a bar repeats an earlier "
            "one (or reuses a seed bar) when 80% of the (onset, pitch) pairs of each match; the "
            "loudness of a clip is its integrated loudness (ITU-R BS.1770-4, "
            "engine/audio/loudness.py's "
            "meter, LUFS; a silent clip reads -70), its spread the loudest minus the quietest "
            f"clip of one composition in {LEVEL_UNIT}, the seam jump the continuation side's "
            "loudness minus the seed side's. Figures are means over each seed's continuations, "
            "then over seeds (notes per bar: medians, as one silent or runaway continuation would "
            "swamp a mean).",
            summary_table(upload_runs, control_runs),
            "Pitch-class distance to the real continuation (L1 between the pitch-class "
            "histograms, 0 = same mix of pitch classes, 2 = disjoint); the model must come "
            "closer than both baselines:",
            distance_md,
            "The seeds (songs cut at the stated bar; GM programs as in the MIDI file, 0-based):",
            seeds_table(everything),
            "Per seed: what the continuations keep.",
            kept_md,
            "Per seed: form, dynamics, loudness, distance to the real continuation.",
            form_md,
            *([f"Refused seeds: {', '.join(r.seed.name for r in refused)}."] if refused else []),
        ]
    )
    return Report(markdown, headlines(upload_runs, control_runs, distances, songs_missing))


def headlines(
    uploads: list[SeedRun],
    controls: list[SeedRun],
    distances: dict[str, tuple],
    songs_missing: str | None,
) -> list[Headline]:
    def model(key: str, median: bool = False) -> float | None:
        return group_value(uploads, lambda r: r.model, key, median)

    real_key = group_value([r for r in uploads if r.real], lambda r: r.real, "key")
    lines = [
        Headline(
            "uploads: seed's instruments kept / continuations with only the seed's",
            f"{fmt(model('instruments_kept'), '%')} / {fmt(model('only_seed_instruments'), '%')}",
            "goal: 100% / 100%",
        ),
        Headline(
            "uploads with drums: bars with drum hits", fmt(model("drums_kept"), "%"), "goal: 100%"
        ),
        Headline(
            "uploads: notes in the seed's scale / key kept",
            f"{fmt(model('in_scale'), '%')} / {fmt(model('key'), '%')}",
            f"goal: >= 90% / >= real continuations' ({fmt(real_key, '%')})",
        ),
        Headline(
            "uploads: notes per bar / the seed's, all / drums left out (median)",
            f"{fmt(model('density', median=True), 'x')} / "
            f"{fmt(model('pitched_density', median=True), 'x')}",
            f"goal: within {DENSITY_TOLERANCE}x",
        ),
        Headline(
            "uploads: repeated / reused bars",
            f"{fmt(model('repeated'), '%')} / {fmt(model('reused'), '%')}",
            f"goal: near {percent(REAL_REPEATED, 0)} / {percent(REAL_REUSED, 0)}",
        ),
        Headline(
            f"uploads: loudness spread / seam jump ({LEVEL_UNIT})",
            f"{fmt(group_value(uploads, lambda r: r.spreads), 'db')} / "
            f"{fmt(group_value(uploads, lambda r: [abs(j) for j in r.seam_jumps]), 'db')}",
            f"goal: <= {SPREAD_GOAL_LU:.0f} LU / <= {SEAM_GOAL_LU:.0f} LU",
        ),
    ]
    if "all" in distances:
        m, rep, rand, beats = distances["all"]
        lines.append(
            Headline(
                "pitch-class distance to the real continuation: model vs "
                "repeat the seed / random in scale",
                f"{fmt(m, 'd')} vs {fmt(rep, 'd')} / {fmt(rand, 'd')}",
                f"goal: model below both ({'met' if beats else 'not met'})",
            )
        )
    if songs_missing:
        lines.append(Headline("out-of-domain songs", "not measured (offline)", "see section"))
    return lines


SECTION = Section(
    "Out of domain: seeds like members upload", ".venv/bin/python -m bench.out_of_domain", run
)

if __name__ == "__main__":
    main(SECTION)
