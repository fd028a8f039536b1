"""`python -m engine data build | stats`: the offline corpus from music21's bundled scores
and any folders of MIDI files (engine/data/midi_folder.py), with augmented copies of every
piece (engine/data/augment.py), and what it holds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(commands) -> None:
    # light: no music21 until a build runs
    from engine.data.corpus import AUGMENTED_COPIES
    from engine.data.midi_folder import DEFAULT_LICENCE

    parser = commands.add_parser("data", help="build the training corpus")
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser(
        "build", help="convert music21's corpus and MIDI folders to the corpus (resumable)"
    )
    build.add_argument(
        "--data-dir", type=Path, default=None, help="default: MOTIF_DATA_DIR, else ./data"
    )
    build.add_argument("--workers", type=int, default=None, help="default: one per core")
    build.add_argument(
        "--midi",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of MIDI files (.mid, .midi, .kar, searched recursively) to take in; "
        "repeat for several",
    )
    build.add_argument(
        "--licence",
        action="append",
        default=[],
        metavar="TEXT",
        help="the licence of the n-th --midi folder, recorded in the manifest "
        f'(default "{DEFAULT_LICENCE}")',
    )
    build.add_argument(
        "--no-music21",
        action="store_true",
        help="only the --midi folders, without music21's corpus",
    )
    build.add_argument(
        "--copies",
        type=int,
        default=AUGMENTED_COPIES,
        help="augmented copies of every piece (re-voiced, re-keyed, "
        f"re-dynamised; default {AUGMENTED_COPIES}; 0: none)",
    )
    which = build.add_mutually_exclusive_group()
    which.add_argument(
        "--folk-only",
        action="store_true",
        help="skip the polyphonic scores (seconds instead of minutes)",
    )
    which.add_argument(
        "--scores",
        nargs="+",
        metavar="COLLECTION",
        help="convert only these collections of scores (e.g. bach)",
    )
    build.set_defaults(run=run_build)
    stats = sub.add_parser("stats", help="instrument families, velocities and keys of a split")
    stats.add_argument(
        "--data-dir", type=Path, default=None, help="default: MOTIF_DATA_DIR, else ./data"
    )
    stats.add_argument("--split", choices=("train", "valid"), default="train")
    stats.add_argument(
        "--augmented",
        action="store_true",
        help="the augmented copies instead of the pieces as converted",
    )
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=run_stats)


def run_build(args: argparse.Namespace) -> int:
    from engine.data.corpus import build_corpus
    from engine.data.midi_folder import reasons_table

    if args.copies < 0:
        print(f"error: --copies must be 0 or more (received {args.copies})", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers must be 1 or more (received {args.workers})", file=sys.stderr)
        return 2
    try:
        manifest = build_corpus(
            args.data_dir or args.settings.data_dir,
            workers=args.workers,
            scores=not args.folk_only,
            score_collections=args.scores,
            copies=args.copies,
            midi_dirs=args.midi,
            licences=args.licence,
            music21=not args.no_music21,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the files judged so far are in the journal; run the same command "
            "again to go on",
            file=sys.stderr,
        )
        return 130
    summary = {k: v for k, v in manifest.items() if k not in ("entries", "skipped", "augmented")}
    summary["skipped"] = len(manifest["skipped"])
    if "augmented" in manifest:
        summary["augmented"] = {k: v for k, v in manifest["augmented"].items() if k != "entries"}
    print(json.dumps(summary, indent=1))
    for source in manifest["sources"]:
        print(f"\n{source['name']}: kept {source['kept']:,} of {source['files']:,} files")
        if source["dropped"]:
            print(reasons_table(source["dropped"], source["files"]))
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from engine.data.corpus import augmented_paths, split_paths
    from engine.data.corpus_stats import measure_files, render_stats

    args.data_dir = args.data_dir or args.settings.data_dir
    try:
        paths = (augmented_paths if args.augmented else split_paths)(args.data_dir, args.split)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not paths:
        print(
            f"error: no {'augmented ' if args.augmented else ''}{args.split} pieces in "
            f"{args.data_dir} (run `python -m engine data build`)",
            file=sys.stderr,
        )
        return 2
    stats = measure_files(paths)
    print(json.dumps(stats, indent=1) if args.json else render_stats(stats))
    return 0
