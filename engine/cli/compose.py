"""`python -m engine compose [SEED.mid] --bars N --candidates K --temperature T --seed S --out DIR`.

Writes DIR/candidate-<i>.mid, DIR/candidate-<i>.ogg and DIR/pianoroll.png; with --json the
last line printed is one JSON object describing them. A bad seed, an option out of range or a
request over the engine's work limits exits 2 with one line, before the model loads, and
writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.api.instruments import INSTRUMENTS, program_of
from engine.api.limits import (
    BARS,
    CANDIDATES,
    DEFAULT_BARS,
    DEFAULT_CANDIDATES,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    TEMPERATURE,
    TEMPO_BPM,
)


def add_parser(commands) -> None:
    p = commands.add_parser("compose", help="continue a seed (or start from nothing)")
    p.add_argument("seed_file", nargs="?", type=Path, metavar="SEED.mid")
    p.add_argument("--bars", type=int, default=DEFAULT_BARS, help=BARS.text)
    p.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES, help=CANDIDATES.text)
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE, help=TEMPERATURE.text)
    p.add_argument("--top-p", type=float, default=DEFAULT_TOP_P)
    p.add_argument("--seed", type=int, default=None, help="sampling seed (same seed, same music)")
    p.add_argument(
        "--tempo", type=float, default=None, help=f"bpm, {TEMPO_BPM.text} (default: the seed's)"
    )
    p.add_argument(
        "--instrument", default=None, help=f"GM program number or one of: {', '.join(INSTRUMENTS)}"
    )
    p.add_argument("--include-seed", action="store_true", help="output the seed too")
    p.add_argument(
        "--form",
        default="return",
        choices=("return", "free", "AABA", "ABAB"),
        help="which bars come back (default: the seed's material returns)",
    )
    p.add_argument("--ignore-key", action="store_true", help="do not lean toward the seed's key")
    p.add_argument(
        "--quantise",
        action="store_true",
        help="snap a performed seed's notes to sixteenths and triplets before continuing it",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="model (default: MOTIF_CHECKPOINT, else the shipped base.pt)",
    )
    p.add_argument("--out", type=Path, default=Path("out"))
    p.add_argument("--json", action="store_true", help="print a JSON summary last")
    p.set_defaults(run=run)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    # Cheapest checks first: a bad seed or option is refused in a fraction of a second,
    # before torch is imported and the model and soundfont are loaded (seconds).
    from engine.api.errors import BadRequest, BadSeed
    from engine.api.metre import vocabulary_metres
    from engine.api.schema import ComposeRequest
    from engine.api.workload import check_request

    settings = args.settings
    try:
        program = program_of(args.instrument) if args.instrument else None
    except ValueError as exc:
        return fail(str(exc))
    seed_bytes = None
    if args.seed_file is not None:
        try:
            seed_bytes = args.seed_file.read_bytes()
        except OSError as exc:
            return fail(f"cannot read {args.seed_file}: {exc.strerror}")
    try:
        params = ComposeRequest(
            seed_midi=seed_bytes,
            bars=args.bars,
            candidates=args.candidates,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            tempo=args.tempo,
            program=program,
            include_seed=args.include_seed,
            form=args.form,
            follow_key=not args.ignore_key,
            quantise=args.quantise,
        )
        # The seed and the work it asks for are checked before torch and the model load
        # (seconds), so a refusal is quick; the plan checks again with the model's metres.
        check_request(params, settings.work, vocabulary_metres())
    except (BadSeed, BadRequest) as exc:
        return fail(str(exc))
    if seed_bytes is not None and not args.quantise and seed_looks_performed(seed_bytes):
        print(
            "note: this seed looks played by hand (its notes fall between the beats); "
            "--quantise snaps them to the grid",
            file=sys.stderr,
        )

    from engine.audio.render import Renderer
    from engine.core.composer import Composer
    from engine.model.checkpoint import BASE_CHECKPOINT
    from engine.model.device import configure_threads

    configure_threads(settings.threads)
    try:
        composer = Composer(
            args.checkpoint or settings.checkpoint or BASE_CHECKPOINT,
            device=settings.device,
            renderer=Renderer(settings.soundfont),
            limits=settings.work,
        )
    except FileNotFoundError as exc:
        return fail(str(exc))
    try:
        result = composer.compose(seed_bytes, params)
    except (BadSeed, BadRequest) as exc:
        return fail(str(exc))
    finally:
        composer.close()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for i, cand in enumerate(result.candidates, start=1):
        midi, audio = args.out / f"candidate-{i}.mid", args.out / f"candidate-{i}.ogg"
        midi.write_bytes(cand.midi)
        audio.write_bytes(cand.audio)
        summary.append(
            {
                "midi": str(midi),
                "audio": str(audio),
                "seconds": round(cand.seconds, 3),
                "notes": cand.notes,
                "tokens": cand.tokens,
                "invalid_rate": round(cand.invalid_rate, 4),
            }
        )
    pianoroll = args.out / "pianoroll.png"
    pianoroll.write_bytes(result.pianoroll)
    timings = {k: round(v, 3) for k, v in result.timings.items()}
    if args.json:
        print(
            json.dumps(
                {
                    "candidates": summary,
                    "pianoroll": str(pianoroll),
                    "timings": timings,
                    "invalid_rate": round(result.invalid_rate, 4),
                }
            )
        )
    else:
        for item in summary:
            print(
                f"{item['audio']}  {item['seconds']:.1f}s  {item['notes']} notes  "
                f"(MIDI: {item['midi']})"
            )
        print(f"{pianoroll}  piano roll")
        print(f"timings: {timings}")
    return 0


def seed_looks_performed(seed: bytes) -> bool:
    from engine.api.seed_midi import read_seed
    from engine.generation.quantise import looks_performed

    return looks_performed(read_seed(seed))
