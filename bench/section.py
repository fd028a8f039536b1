"""A benchmark section: a title, the command that runs it alone, and a function that measures
and returns its markdown with a few headline figures. bench/__main__.py runs a list of them
into BENCHMARKS.md; `python -m bench.<module> [--quick]` runs one and prints its markdown.

Light on purpose (no torch): the SimCord subprocess imports bench modules too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Headline:
    """One line of the summary table: a figure beside its baseline or goal."""

    what: str
    measured: str
    versus: str


@dataclass
class Report:
    markdown: str
    headlines: list[Headline] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    title: str
    command: str  # how to run this section alone (shown in BENCHMARKS.md)
    run: Callable[[bool], Report]  # quick -> report; quick takes fewer samples


def main(section: Section) -> None:
    parser = argparse.ArgumentParser(description=section.title)
    parser.add_argument("--quick", action="store_true", help="fewer samples (development)")
    args = parser.parse_args()
    report = section.run(args.quick)
    print(report.markdown)
    for h in report.headlines:
        print(f"- {h.what}: {h.measured} ({h.versus})")
