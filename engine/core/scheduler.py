"""Which compositions decode now: guild-fair admission under a cap on rows. The policy only.

Continuous batching: a composition asks for rows (one per candidate); it starts when they fit
under `max_rows` beside the rows decoding already, and its rows join the running batch at the
next step. A row leaves the step it finishes, and the rows it frees go to the next waiting
composition at once. Waiting compositions take guilds in turn (FairQueue), so one server's
burst cannot starve another's; a composition larger than the cap still runs, alone.

Nothing here knows torch, a model or a row's tokens: the engine core (engine.core.engine_core)
carries out what this decides, on its one thread, so none of it needs a lock.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, Protocol, TypeVar

from engine.core.fairness import FairQueue


class Schedulable(Protocol):
    guild: Hashable


J = TypeVar("J", bound=Schedulable)


class Scheduler(Generic[J]):
    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._waiting: FairQueue[J] = FairQueue()
        self._asked: dict[J, int] = {}  # rows each waiting job asks for
        self._running: dict[J, int] = {}  # rows each running job still decodes
        self.active_rows = 0
        self._reordered = False  # the waiting line changed since `positions` last looked

    def __len__(self) -> int:
        """Jobs waiting or running."""
        return len(self._asked) + len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._asked)

    @property
    def running(self) -> list[J]:
        return list(self._running)

    def add(self, job: J, rows: int) -> None:
        """`job` waits for `rows` rows, behind its guild's earlier jobs."""
        self._waiting.push(job)
        self._asked[job] = rows
        self._reordered = True

    def schedule(self) -> list[J]:
        """The jobs that start now, in guild turns: as many as fit under the cap (or the next
        one alone, when nothing runs). Their rows count as running from now on."""
        started = []
        while (job := self._waiting.peek()) is not None and (
            self.active_rows + self._asked[job] <= self.max_rows or not self._running
        ):
            self._waiting.pop()
            rows = self._running[job] = self._asked.pop(job)
            self.active_rows += rows
            self._reordered = True
            started.append(job)
        return started

    def row_finished(self, job: J) -> bool:
        """One of `job`'s rows finished; True when that was its last (the job leaves)."""
        self._running[job] -= 1
        self.active_rows -= 1
        if self._running[job]:
            return False
        del self._running[job]
        return True

    def remove(self, job: J) -> bool:
        """Take `job` out, waiting or running (cancelled, or failed); False if it is in
        neither (being prepared or rendered)."""
        if job in self._asked:
            self._waiting.remove(job)
            del self._asked[job]
            self._reordered = True
            return True
        if job in self._running:
            self.active_rows -= self._running.pop(job)
            return True
        return False

    def positions(self) -> Iterator[tuple[J, int]]:
        """Every waiting job with its place in line (1: the next to start), when the line
        changed since the last call; nothing otherwise."""
        if self._reordered:
            self._reordered = False
            for position, job in enumerate(self._waiting, start=1):
                yield job, position

    def clear(self) -> list[J]:
        """Everything, waiting and running, taken out (the engine is stopping)."""
        jobs = [*self._waiting, *self._running]
        self._waiting = FairQueue()
        self._asked.clear()
        self._running.clear()
        self.active_rows = 0
        return jobs
