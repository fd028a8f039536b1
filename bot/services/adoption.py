"""Posting the jobs a dead process of this bot left in the job queue.

A bot process on the job queue sends each job with a note for its successor
(bot.services.handover). When a process dies, the next process of the same shards adopts its
jobs (engine.api.queue_handover: each job taken by one process) and hands each to the poster
its note's kind was registered with by the cog that sent it: the composition cog posts
compositions, the seeds cog a seed being played.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from bot.services.handover import Note, decode_note

if TYPE_CHECKING:
    from engine.api.queue_handover import Orphan, QueueHandover

log = logging.getLogger(__name__)

# How often a bot looks for jobs a process of its shards left when it died (that process'
# jobs are free to take 10 s after it went silent: queue_keys.CLIENT_TTL_SECONDS).
ADOPT_SECONDS = 5.0

N = TypeVar("N", bound=Note)
Poster = Callable[["QueueHandover", "Orphan", Any], Coroutine[Any, Any, None]]


class Adoption:
    def __init__(self, handover: QueueHandover, *, draining: Callable[[], bool]) -> None:
        self.handover = handover
        self._draining = draining
        self._posters: dict[type[Any], Poster] = {}
        self._looking: asyncio.Task[None] | None = None
        self._posting: set[asyncio.Task[None]] = set()

    def register(
        self, kind: type[N], poster: Callable[[QueueHandover, Orphan, N], Coroutine[Any, Any, None]]
    ) -> None:
        """`poster` posts the jobs whose note is a `kind` (a cog, as it loads)."""
        self._posters[kind] = poster

    def start(self) -> None:
        """Look for orphans from now on (once the cogs that post them are loaded)."""
        if self._looking is None:
            self._looking = asyncio.create_task(self._look(), name="adopt-jobs")

    async def aclose(self) -> None:
        """Stop looking, and stop the posts under way (each tells its member so)."""
        tasks = [t for t in (self._looking, *self._posting) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _look(self) -> None:
        # A draining bot takes none: its successor will.
        while not self._draining():
            for orphan in await self.handover.adopt():
                self._post(orphan)
            await asyncio.sleep(ADOPT_SECONDS)

    def _post(self, orphan: Orphan) -> None:
        try:
            note = decode_note(orphan.note)
        except ValueError:  # msgspec's errors are ValueErrors
            log.exception("job %s left a note this bot cannot read", orphan.job)
            return
        poster = self._posters.get(type(note))
        if poster is None:
            log.error("job %s: no cog posts a %s", orphan.job, type(note).__name__)
            return
        task: asyncio.Task[None] = asyncio.create_task(
            poster(self.handover, orphan, note), name=f"adopted-{orphan.job}"
        )
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)
