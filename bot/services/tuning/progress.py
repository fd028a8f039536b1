"""A run's progress, written to its row for /finetune status, at most every few seconds."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import update_finetune_run
from bot.db.errors import FinetuneRunFinished
from bot.services.engine_port import FinetuneProgress, ProgressEvent
from bot.ui.throttled import Throttled

log = logging.getLogger(__name__)

# A run takes minutes and /finetune status is read by hand: a write every few seconds is live
# enough, and spares the database (SQLite has one writer) a stream of tiny transactions.
WRITE_INTERVAL_SECONDS = 5.0


class RunProgress(Throttled[FinetuneProgress]):
    """`update` records the engine's newest FinetuneProgress event (cheap: the engine client never
    waits); one task writes it. Leaving the context stops that task, so a late progress
    write can never land after the run's outcome."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, guild_id: int, run_id: int
    ) -> None:
        super().__init__(
            self._write, interval=WRITE_INTERVAL_SECONDS, name=f"motif-finetune-{run_id}-progress"
        )
        self._sessions = sessions
        self._guild_id = guild_id
        self._run_id = run_id

    def update(self, event: ProgressEvent) -> None:
        if isinstance(event, FinetuneProgress):
            self.put(event)

    async def _write(self, event: FinetuneProgress) -> None:
        try:
            async with self._sessions() as session:
                await update_finetune_run(
                    session,
                    guild_id=self._guild_id,
                    run_id=self._run_id,
                    progress=min(1.0, max(0.0, event.percent / 100)),
                    metrics={"phase": event.phase},
                )
        except FinetuneRunFinished:
            pass  # the outcome is written; the progress is history
        except Exception:  # noqa: BLE001 - progress is informative; the run goes on
            log.warning("could not record the progress of run #%s", self._run_id, exc_info=True)
