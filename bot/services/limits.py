"""Limits on engine work: how often a member may start some, how much a server may have running.

Every command that costs the engine work (a composition from /compose, Continue or Reroll, a
seed played, a piece exported) holds a `slot` while it runs: one per-member cooldown between
starts and one per-server cap on work in flight, whatever the kind, so no command is a way
around them. In memory for one bot process: both protect the engine from bursts, and
forgetting them on a restart costs nothing. Several bot processes (MOTIF_SHARD_IDS) share
them in Redis instead (bot.services.shared_limits), with the same slots and messages.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.errors import UserFacingError
from engine.api.errors import BadRequest, BadSeed


class Work(StrEnum):
    """What a slot is for, in the words members read."""

    COMPOSITION = "composition"
    SEED_PLAY = "seed playback"
    PIECE_EXPORT = "piece export"
    JAM_ROUND = "jam round"


def describe(running: Counter[Work]) -> str:
    """'1 composition and 2 piece exports' (kinds in a stable order)."""
    parts = [f"{n} {kind}{'' if n == 1 else 's'}" for kind in Work if (n := running[kind])]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class OnCooldown(UserFacingError):
    def __init__(self, retry_after: float, last: Work = Work.COMPOSITION) -> None:
        super().__init__(
            f"You started a {last} a moment ago; you can start another in "
            f"{max(1, round(retry_after))} s."
        )
        self.retry_after = retry_after


class TooManyInFlight(UserFacingError):
    def __init__(self, cap: int, running: Counter[Work] | None = None) -> None:
        running = running if running is not None else Counter({Work.COMPOSITION: cap})
        super().__init__(
            f"This server already has {describe(running)} under way, as many as it may have at "
            "once. Wait for one to finish, then try again."
        )
        self.cap = cap


@dataclass(eq=False)
class Slot:
    kind: Work
    started: bool = False

    def start(self) -> None:
        """The engine is about to work. Until then a slot that ends (a seed refused, a file
        too large) gives the member's cooldown back; from here it counts."""
        self.started = True


def engine_refused(error: BaseException) -> bool:
    """The engine refused the request before working on it (directly, or as the cause of a
    message the cog worded for the member)."""
    return isinstance(error, BadSeed | BadRequest) or isinstance(
        error.__cause__, BadSeed | BadRequest
    )


class WorkSlots(Protocol):
    """What the cogs hold while the engine works (in memory, or shared in Redis)."""

    def slot(
        self, guild_id: int, user_id: int | None, kind: Work = Work.COMPOSITION
    ) -> AbstractAsyncContextManager[Slot]: ...

    async def aclose(self) -> None: ...


class EngineWorkLimits:
    """A per-member cooldown and a per-guild cap on engine work in flight, in this process."""

    def __init__(self, *, cooldown_seconds: float, max_inflight_per_guild: int) -> None:
        self.cooldown_seconds = cooldown_seconds
        self.max_inflight_per_guild = max_inflight_per_guild
        # Oldest start first (a member's new start moves to the end), so expired entries are
        # pruned from the front.
        self._last_start: dict[tuple[int, int], tuple[float, Work]] = {}
        self._running: dict[int, Counter[Work]] = {}

    def inflight(self, guild_id: int) -> int:
        return self._running[guild_id].total() if guild_id in self._running else 0

    @property
    def remembered_members(self) -> int:
        """Members whose last start is remembered (those still within their cooldown, and a
        few that may not have been pruned yet)."""
        return len(self._last_start)

    @asynccontextmanager
    async def slot(
        self, guild_id: int, user_id: int | None, kind: Work = Work.COMPOSITION
    ) -> AsyncIterator[Slot]:
        """Hold one of the guild's in-flight slots for `kind` of work by `user_id` (None: work
        nobody pressed for just now, a jam's next round: the server's cap only).

        Raises OnCooldown or TooManyInFlight before taking anything. The cooldown runs from
        now (so a second request while this one is being checked is refused too), but is
        given back if the slot ends before `Slot.start` or the engine refuses the request:
        a refused request costs the member nothing.
        """
        # time.monotonic is looked up at each call (not bound at import) so that a test clock
        # that replaces it is honoured.
        now = time.monotonic()
        self._prune(now)
        key = (guild_id, user_id or 0)
        previous = self._last_start.get(key) if user_id is not None else None
        if previous is not None and now - previous[0] < self.cooldown_seconds:
            raise OnCooldown(self.cooldown_seconds - (now - previous[0]), previous[1])
        running = self._running.setdefault(guild_id, Counter())
        if running.total() >= self.max_inflight_per_guild:
            raise TooManyInFlight(self.max_inflight_per_guild, Counter(running))
        if user_id is not None:
            self._last_start.pop(key, None)
            self._last_start[key] = (now, kind)
        running[kind] += 1
        slot = Slot(kind)
        try:
            yield slot
        except BaseException as error:
            if user_id is not None and (not slot.started or engine_refused(error)):
                self._give_back(key, now, previous)
            raise
        else:
            if user_id is not None and not slot.started:
                self._give_back(key, now, previous)
        finally:
            running[kind] -= 1
            if not +running:
                self._running.pop(guild_id, None)

    async def aclose(self) -> None:
        """Nothing to release: the process' memory goes with it."""

    def _give_back(
        self, key: tuple[int, int], stamped: float, previous: tuple[float, Work] | None
    ) -> None:
        if self._last_start.get(key, (None,))[0] != stamped:
            return  # a later start of the member's own stands
        if previous is None:
            del self._last_start[key]
        else:
            self._last_start[key] = previous

    def _prune(self, now: float) -> None:
        """Forget members whose cooldown is over: the map stays as small as the recent
        activity, however many members ever composed."""
        expired = []
        for key, (started, _) in self._last_start.items():
            if now - started < self.cooldown_seconds:
                break
            expired.append(key)
        for key in expired:
            del self._last_start[key]
