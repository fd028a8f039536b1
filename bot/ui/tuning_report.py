"""The messages of /finetune and /model: what started, how a run ended, a run's status, and
the server's versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import discord

from bot.db import FinetuneRun, FinetuneStatus, ModelVersion, ModelVersionStatus
from bot.db.models import ACTIVE_FINETUNE_STATUSES
from bot.ui.tuning_figures import GATE_REASON, figure_lines, plural, short_figures
from bot.ui.versions import the_version, version_name


class RunFacts(Protocol):
    """What the messages say of a run (bot.services.tuning.job.TuningJob)."""

    @property
    def run_id(self) -> int: ...
    @property
    def parent_id(self) -> int | None: ...  # the version it tunes (None: the base model)
    @property
    def seeds(self) -> int: ...
    @property
    def winners(self) -> int: ...
    @property
    def pairs(self) -> int: ...


# Versions listed by /model info: enough to choose a rollback, short enough to read.
LISTED_VERSIONS = 5

_STATUS_COLOURS = {
    FinetuneStatus.QUEUED: discord.Colour.light_grey(),
    FinetuneStatus.RUNNING: discord.Colour.blurple(),
    FinetuneStatus.SUCCEEDED: discord.Colour.green(),
    FinetuneStatus.FAILED: discord.Colour.red(),
    FinetuneStatus.CANCELLED: discord.Colour.dark_grey(),
}
_VERSION_STATUS_TEXT = {
    ModelVersionStatus.READY: "ready",
    ModelVersionStatus.REJECTED: "rejected by the quality check",
    ModelVersionStatus.PRUNED: "checkpoint deleted",
}


def started_text(job: RunFacts, *, automatic_after: int | None = None) -> str:
    material = (
        f"{plural(job.seeds, 'seed', 'seeds')}, "
        f"{plural(job.winners, 'winning candidate', 'winning candidates')} and "
        f"{plural(job.pairs, 'preference pair', 'preference pairs')}"
    )
    why = (
        f" automatically ({automatic_after} new seeds and votes since the last run)"
        if automatic_after is not None
        else ""
    )
    return (
        f"Fine-tuning run #{job.run_id} started{why}, from {the_version(job.parent_id)}: "
        f"learning from {material}. The result will be posted here; "
        "/finetune status shows the progress."
    )


def _add_figures(embed: discord.Embed, metrics: dict, *, name: str = "Figures") -> None:
    if lines := figure_lines(metrics):
        embed.add_field(name=name, value="\n".join(lines), inline=False)


def result_embed(job: RunFacts, version: ModelVersion) -> discord.Embed:
    """The announcement of a finished run: the verdict, why, and the figures behind it."""
    accepted = version.status == ModelVersionStatus.READY
    reason = str(version.metrics.get(GATE_REASON) or "no reason given")
    if accepted:
        title = f"Fine-tuning run #{job.run_id}: {version_name(version.id)} now composes here"
        verdict = f"Accepted: {reason}."
        colour = discord.Colour.green()
    else:
        title = f"Fine-tuning run #{job.run_id}: not used"
        verdict = (
            f"Rejected: {reason}. This server keeps {the_version(job.parent_id)}; "
            f"the figures are kept as {version_name(version.id)}."
        )
        colour = discord.Colour.orange()
    embed = discord.Embed(title=title, description=verdict, colour=colour)
    _add_figures(embed, version.metrics)
    embed.set_footer(text="/model info lists the versions; /model rollback goes back one.")
    return embed


def failure_embed(job: RunFacts, error: str, *, status: FinetuneStatus) -> discord.Embed:
    verb = "was cancelled" if status == FinetuneStatus.CANCELLED else "failed"
    return discord.Embed(
        title=f"Fine-tuning run #{job.run_id} {verb}",
        description=(
            f"{error[0].upper()}{error[1:]}.\nThis server keeps "
            f"{the_version(job.parent_id)}; nothing else changed."
        ),
        colour=discord.Colour.red(),
    )


def _when(run: FinetuneRun) -> str:
    parts = [f"requested {discord.utils.format_dt(run.created_at, 'R')}"]
    if run.finished_at is not None:
        parts.append(f"finished {discord.utils.format_dt(run.finished_at, 'R')}")
    return ", ".join(parts)


def status_embed(run: FinetuneRun) -> discord.Embed:
    status = FinetuneStatus(run.status)
    state = status.value
    if status in ACTIVE_FINETUNE_STATUSES:
        phase = run.metrics.get("phase")
        state += f": {phase}, " if isinstance(phase, str) else ", "
        state += f"{run.progress:.0%}"
    who = f"<@{run.requester_id}>" if run.requester_id is not None else "automatically"
    embed = discord.Embed(
        title=f"Fine-tuning run #{run.id}",
        description=f"**{state}**\nStarted by {who}, {_when(run)}.",
        colour=_STATUS_COLOURS[status],
    )
    if run.model_version_id is not None:
        accepted = run.metrics.get("accepted") is True
        verdict = "accepted" if accepted else "rejected"
        reason = run.metrics.get(GATE_REASON)
        text = f"{version_name(run.model_version_id)}, {verdict}"
        embed.add_field(name="Result", value=f"{text}: {reason}" if reason else text, inline=False)
    if status not in ACTIVE_FINETUNE_STATUSES:
        _add_figures(embed, run.metrics)
    if run.error:
        embed.add_field(name="Error", value=run.error[:1000], inline=False)
    return embed


def _version_line(version: ModelVersion, *, serving: bool) -> str:
    status = ModelVersionStatus(version.status)
    parts = [f"**{version_name(version.id)}**", _VERSION_STATUS_TEXT[status]]
    if serving:
        parts.append("serving")
    parts.append(discord.utils.format_dt(version.created_at, "R"))
    if figures := short_figures(version.metrics):
        parts.append(figures)
    return " · ".join(parts)


def model_embed(active: ModelVersion | None, versions: Sequence[ModelVersion]) -> discord.Embed:
    """/model info: what serves the server now, its figures, and the latest versions."""
    if active is None:
        description = "This server composes with the **base model**."
    else:
        description = (
            f"This server composes with **{version_name(active.id)}**, tuned from "
            f"{the_version(active.parent_id)} {discord.utils.format_dt(active.created_at, 'R')}."
        )
    embed = discord.Embed(
        title="This server's model", description=description, colour=discord.Colour.blurple()
    )
    if active is not None:
        _add_figures(embed, active.metrics, name="Its figures")
    if versions:
        lines = [
            _version_line(v, serving=active is not None and v.id == active.id)
            for v in versions[:LISTED_VERSIONS]
        ]
        embed.add_field(name="Latest versions", value="\n".join(lines), inline=False)
    else:
        embed.add_field(
            name="No versions yet",
            value="/finetune start tunes one from this server's seeds and votes.",
            inline=False,
        )
    return embed


def rollback_text(before: ModelVersion | None, after: ModelVersion | None) -> str:
    return (
        f"Rolled back from {the_version(before.id if before else None)} to "
        f"{the_version(after.id if after else None)}: this server's next compositions use it."
    )


def cancelled_text(run_id: int, user_id: int, serving: int | None) -> str:
    return (
        f"Fine-tuning run #{run_id} was cancelled by <@{user_id}>. "
        f"This server keeps {the_version(serving)}."
    )
