"""The newest of a stream of values, handed on at most once per interval by one task.

Engine progress arrives faster than Discord edits or database writes should happen, and from
the engine client's task, which must never wait for them: `put` only records the value.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class Throttled(Generic[T]):
    """`async with Throttled(write, interval=..., name=...) as latest: latest.put(v)`, or a
    subclass that passes its own `write`.

    Leaving the context stops the writing task (even mid-write), so a late write can never
    land after whatever the caller does next (the final message, the run's outcome).
    """

    def __init__(
        self, write: Callable[[T], Awaitable[None]], *, interval: float, name: str
    ) -> None:
        self._write = write
        self._interval = interval
        self._name = name
        self._latest: T | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def put(self, value: T) -> None:
        self._latest = value
        self._changed.set()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=self._name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._write(self._latest)  # type: ignore[arg-type]  # set before the event
            await asyncio.sleep(self._interval)
