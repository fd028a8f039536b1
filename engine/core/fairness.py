"""Queues that take guilds in turn, so one server's burst cannot starve another's requests.

`FairQueue` orders waiting work; `FairLane` is a FairQueue that worker threads take from (the
engine core's prepare and render stages, and the server's whole-file renders, are lanes; the
scheduler's waiting line is a FairQueue the core thread owns). Light on purpose (no torch):
nothing here knows what a job is.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Container, Hashable, Iterator
from typing import Generic, Protocol, TypeVar


class HasGuild(Protocol):
    guild: Hashable


T = TypeVar("T", bound=HasGuild)


class FairQueue(Generic[T]):
    """FIFO within a guild, round-robin between guilds: one guild's burst cannot starve another.

    Guilds take turns in the order they (re)joined the queue; a guild whose turn came goes to
    the back if it still has jobs waiting.
    """

    def __init__(self) -> None:
        self._guilds: dict[Hashable, deque[T]] = {}  # insertion order is the turn order

    def __len__(self) -> int:
        return sum(len(q) for q in self._guilds.values())

    def push(self, item: T) -> None:
        self._guilds.setdefault(item.guild, deque()).append(item)

    def peek(self) -> T | None:
        return next(iter(self._guilds.values()))[0] if self._guilds else None

    def pop(self, skip: Container[Hashable] = ()) -> T:
        """The next item in guild turns, passing over the guilds in `skip`."""
        guild = next(g for g in self._guilds if g not in skip)
        items = self._guilds.pop(guild)
        item = items.popleft()
        if items:
            self._guilds[guild] = items  # to the back of the turn order
        return item

    def has_other_than(self, skip: Container[Hashable]) -> bool:
        return any(g not in skip for g in self._guilds)

    def remove(self, item: T) -> bool:
        items = self._guilds.get(item.guild)
        if items is None or item not in items:
            return False
        items.remove(item)
        if not items:
            del self._guilds[item.guild]
        return True

    def __iter__(self) -> Iterator[T]:
        """The order pop() would give, without popping."""
        queues = list(self._guilds.values())
        depth = max((len(q) for q in queues), default=0)
        for turn in range(depth):
            for items in queues:
                if turn < len(items):
                    yield items[turn]


class FairLane(Generic[T]):
    """A FairQueue shared by threads: any thread puts, worker threads take in guild turns.

    With `one_per_guild`, a guild's next item waits until the worker busy with its last one
    has `finished` it, so the other workers stay free for the other guilds: with two workers,
    one server's backlog never makes another server's request wait at all.
    `pending` counts items put and not yet finished (the ones being worked on too). After
    `stop`, take() returns None and put() refuses.
    """

    def __init__(self, *, one_per_guild: bool = False) -> None:
        self._queue: FairQueue[T] = FairQueue()
        self._changed = threading.Condition()
        self._one_per_guild = one_per_guild
        self._busy: dict[Hashable, int] = {}  # guild -> items being worked on
        self._pending = 0
        self._stopped = False

    @property
    def pending(self) -> int:
        return self._pending

    def put(self, item: T) -> bool:
        """Queue `item`; False (and nothing queued) once the lane is stopped."""
        with self._changed:
            if self._stopped:
                return False
            self._queue.push(item)
            self._pending += 1
            self._changed.notify_all()
        return True

    def take(self) -> T | None:
        """The next item in guild turns, waiting for one; None once the lane is stopped."""
        skip = self._busy if self._one_per_guild else ()
        with self._changed:
            while not self._queue.has_other_than(skip) and not self._stopped:
                self._changed.wait()
            if self._stopped:
                return None
            item = self._queue.pop(skip)
            self._busy[item.guild] = self._busy.get(item.guild, 0) + 1
            return item

    def finished(self, item: T) -> None:
        """A worker is done with an item it took."""
        with self._changed:
            self._pending -= 1
            self._busy[item.guild] -= 1
            if not self._busy[item.guild]:
                del self._busy[item.guild]
            self._changed.notify_all()  # that guild's next item may go now

    def stop(self) -> list[T]:
        """Wake every worker (take() returns None from now on); returns what was still queued."""
        with self._changed:
            self._stopped = True
            left = list(self._queue)
            self._queue = FairQueue()
            self._pending -= len(left)
            self._changed.notify_all()
        return left
