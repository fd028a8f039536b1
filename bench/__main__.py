"""`python -m bench [--quick] [--only MODULE ...] [--out PATH]`: run the sections, write
BENCHMARKS.md.

Each section is a module of bench/ with a SECTION (bench/section.py). One that raises is
written as "failed: <reason>" and the others still run. The file is rewritten after every
section, so a long run shows how far it got.
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from dataclasses import dataclass

from bench.machine import REPO_ROOT, load_average, machine_lines
from bench.markdown import code, table
from bench.section import Report

# In the order they run and appear. To add one: a module with SECTION, listed here.
SECTIONS = [
    "bench.nll",
    "bench.quality",
    "bench.programs",
    "bench.decode_speed",
    "bench.render_speed",
    "bench.audio_levers",
    "bench.compose_e2e",
    "bench.fairness",
    "bench.job_queue",
    "bench.work_limits",
    "bench.finetune",
    "bench.out_of_domain",
    "bench.bar_counts",
    "bench.loudness",
    "bench.training",
]
OUTPUT = REPO_ROOT / "BENCHMARKS.md"


@dataclass
class Outcome:
    title: str
    command: str
    seconds: float
    report: Report | None = None
    error: str | None = None


def run_section(module: str, quick: bool) -> Outcome:
    started = time.perf_counter()
    title, command = module, f".venv/bin/python -m {module}"
    try:
        section = importlib.import_module(module).SECTION
        title, command = section.title, section.command
        report = section.run(quick)
        return Outcome(title, command, time.perf_counter() - started, report=report)
    except Exception as exc:  # a failed section is reported in the file; the rest still run
        traceback.print_exc()
        reason = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ").replace("|", "/")[:600]
        return Outcome(title, command, time.perf_counter() - started, error=reason)


def render(outcomes: list[Outcome], header: list[str], quick: bool, running: bool) -> str:
    total = sum(o.seconds for o in outcomes)
    status = (
        "running: not every section has run yet"
        if running
        else (
            f"all {len(outcomes)} sections took {total / 60:.1f} minutes; load average at the "
            f"end {load_average()}"
        )
    )
    parts = [
        "# Benchmarks",
        "Written by `make bench` (`.venv/bin/python -m bench"
        f"{' --quick' if quick else ''}`): every figure below was measured by that run, beside "
        "a baseline measured in the same run or a goal. Benchmarks are not tests: nothing fails "
        "on speed. Each section names the command that runs it alone."
        + (" **Quick run: fewer samples than a full one.**" if quick else ""),
        "\n".join([*header, f"- Run: {status}"]),
        "## Summary",
        table(
            ["what", "measured", "baseline or goal"],
            [
                [h.what, h.measured, h.versus]
                for o in outcomes
                if o.report
                for h in o.report.headlines
            ]
            + [[o.title, f"failed: {o.error}", ""] for o in outcomes if o.error],
        ),
    ]
    for number, o in enumerate(outcomes, start=1):
        parts += [
            f"## {number}. {o.title}",
            code(o.command),
            f"Took {o.seconds:.0f} s.",
            o.report.markdown if o.report else f"**failed: {o.error}**",
        ]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples (development)")
    parser.add_argument(
        "--only", nargs="+", metavar="MODULE", choices=SECTIONS, help="run only these sections"
    )
    parser.add_argument("--out", default=str(OUTPUT), help="where to write (BENCHMARKS.md)")
    args = parser.parse_args()
    header = machine_lines()
    outcomes: list[Outcome] = []
    for module in args.only or SECTIONS:
        print(f"bench: {module} ...", flush=True)
        outcomes.append(run_section(module, args.quick))
        print(
            f"bench: {module} {'failed' if outcomes[-1].error else 'done'} in "
            f"{outcomes[-1].seconds:.0f} s",
            flush=True,
        )
        with open(args.out, "w") as out:
            out.write(render(outcomes, header, args.quick, running=True))
    with open(args.out, "w") as out:
        out.write(render(outcomes, header, args.quick, running=False))
    print(f"bench: wrote {args.out}")


if __name__ == "__main__":
    main()
