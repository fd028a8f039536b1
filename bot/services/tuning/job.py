"""What one fine-tuning run asks of the engine, and the call itself with its progress."""

from __future__ import annotations

from dataclasses import dataclass

from bot.db import FinetuneExport, FinetuneStatus, update_finetune_run
from bot.services.engine_port import FinetuneRequest, FinetuneResult, VotedPair
from bot.services.tuning.host import TuningHost
from bot.services.tuning.progress import RunProgress


@dataclass(frozen=True, slots=True)
class TuningJob:
    guild_id: int
    run_id: int
    channel_id: int | None  # where the outcome is announced
    parent_id: int | None  # the version it tunes (None: the base model)
    request: FinetuneRequest
    seeds: int
    winners: int

    @property
    def pairs(self) -> int:
        return len(self.request.pairs)

    @classmethod
    def from_export(
        cls,
        export: FinetuneExport,
        *,
        run_id: int,
        channel_id: int | None,
        parent_id: int | None,
        start_from: str | None,
        steps: int | None,
    ) -> TuningJob:
        """The server's seeds and winners are the pieces it learns from; its votes (winner
        against each other candidate) the preferences."""
        request = FinetuneRequest(
            guild_id=export.guild_id,
            pieces=[s.midi for s in export.seeds] + [w.midi for w in export.winners],
            pairs=[VotedPair(chosen=p.chosen_midi, rejected=p.rejected_midi) for p in export.pairs],
            start_from=start_from,
            steps=steps,
        )
        return cls(
            guild_id=export.guild_id,
            run_id=run_id,
            channel_id=channel_id,
            parent_id=parent_id,
            request=request,
            seeds=len(export.seeds),
            winners=len(export.winners),
        )


async def tune(host: TuningHost, job: TuningJob) -> FinetuneResult:
    """Mark the run running and have the engine tune (minutes), recording its progress.
    Raises the engine's errors; cancelling the task stops the engine's run."""
    async with host.sessions() as session:
        await update_finetune_run(
            session, guild_id=job.guild_id, run_id=job.run_id, status=FinetuneStatus.RUNNING
        )
    async with RunProgress(host.sessions, guild_id=job.guild_id, run_id=job.run_id) as progress:
        return await host.engine.finetune(job.request, on_progress=progress.update)
