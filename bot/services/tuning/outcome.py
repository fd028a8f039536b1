"""How a run ends: its result recorded (a new version, serving if the gate let it), or why
it failed; then said in the channel the run was started from."""

from __future__ import annotations

import logging

import discord

from bot.db import (
    FinetuneStatus,
    ModelVersion,
    record_finetune_result,
    update_finetune_run,
)
from bot.db.errors import FinetuneRunFinished
from bot.services.engine_port import FinetuneResult
from bot.services.tuning.host import TuningHost
from bot.services.tuning.job import TuningJob
from bot.ui.tuning_figures import GATE_REASON
from engine.api.errors import BadRequest, EngineError, EngineUnavailable

log = logging.getLogger(__name__)

ENGINE_DOWN = "the music engine was not available (it is restarting or down); try again later"
UNEXPECTED = "something went wrong on our side; it has been logged"


async def record_result(host: TuningHost, job: TuningJob, result: FinetuneResult) -> ModelVersion:
    """The run's new version becomes one of the server's (serving at once if accepted);
    the versions the engine pruned are marked so; the run succeeds. One transaction:
    FinetuneRunFinished (and nothing recorded) if the run was ended meanwhile."""
    metrics = {**result.metrics, "accepted": result.accepted, GATE_REASON: result.reason}
    guild_id = job.guild_id
    async with host.sessions() as session:
        version, pruned = await record_finetune_result(
            session,
            guild_id=guild_id,
            run_id=job.run_id,
            engine_id=result.model,
            parent_id=job.parent_id,
            metrics=metrics,
            accepted=result.accepted,
            pruned=result.pruned,
        )
    log.info(
        "guild %s: run #%s %s v%s (%d older checkpoints pruned)",
        guild_id,
        job.run_id,
        "accepted" if result.accepted else "rejected",
        version.id,
        pruned,
    )
    return version


def failure_reason(error: BaseException) -> str:
    """What to tell the admins about an error that ended a run (bugs are logged here)."""
    if isinstance(error, BadRequest):
        return f"the engine could not use this server's data: {error}"
    if isinstance(error, EngineUnavailable):
        return ENGINE_DOWN
    if isinstance(error, EngineError):
        return f"the music engine failed: {error}"
    log.error("fine-tuning run failed unexpectedly", exc_info=error)
    return UNEXPECTED


async def record_end(
    host: TuningHost, job: TuningJob, *, status: FinetuneStatus, error: str
) -> bool:
    """Finish the run as failed or cancelled with `error`; False if it had finished already."""
    try:
        async with host.sessions() as session:
            await update_finetune_run(
                session, guild_id=job.guild_id, run_id=job.run_id, status=status, error=error
            )
    except FinetuneRunFinished:
        return False
    return True


async def announce(host: TuningHost, job: TuningJob, embed: discord.Embed) -> None:
    """Post in the run's channel; a channel that is gone or closed to the bot is logged."""
    if job.channel_id is None:
        return
    channel = host.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
    try:
        await channel.send(embed=embed)
    except discord.HTTPException:
        log.warning(
            "could not announce run #%s in channel %s", job.run_id, job.channel_id, exc_info=True
        )
