"""`python -m engine data build`: the offline corpus from music21's bundled scores."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.paths import default_data_dir


def add_parser(commands) -> None:
    parser = commands.add_parser("data", help="build the training corpus")
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="convert music21's corpus to MIDI (resumable)")
    build.add_argument("--data-dir", type=Path, default=default_data_dir())
    build.add_argument("--workers", type=int, default=None)
    which = build.add_mutually_exclusive_group()
    which.add_argument("--folk-only", action="store_true",
                       help="skip the polyphonic scores (seconds instead of minutes)")
    which.add_argument("--scores", nargs="+", metavar="COLLECTION",
                       help="convert only these collections of scores (e.g. bach)")
    build.set_defaults(run=run_build)


def run_build(args: argparse.Namespace) -> int:
    from engine.corpus import build_corpus

    manifest = build_corpus(args.data_dir, workers=args.workers, scores=not args.folk_only,
                            score_collections=args.scores)
    summary = {k: v for k, v in manifest.items() if k not in ("entries", "skipped")}
    summary["skipped"] = len(manifest["skipped"])
    print(json.dumps(summary, indent=1))
    return 0
