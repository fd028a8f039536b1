"""How often a member may compose, and how many compositions a server may have in flight.

In memory on purpose: both limits protect the engine from bursts, and forgetting them on a
restart costs nothing. A sharded deployment keeps them per shard, which is per guild anyway.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from bot.errors import UserFacingError


class OnCooldown(UserFacingError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"You composed a moment ago; you can start another in {max(1, round(retry_after))} s."
        )
        self.retry_after = retry_after


class TooManyInFlight(UserFacingError):
    def __init__(self, cap: int) -> None:
        plural = "composition" if cap == 1 else "compositions"
        super().__init__(
            f"This server already has {cap} {plural} being written. "
            "Wait for one to be posted, then try again."
        )
        self.cap = cap


class ComposeLimits:
    """A per-member cooldown and a per-guild cap on compositions in flight."""

    def __init__(self, *, cooldown_seconds: float, max_inflight_per_guild: int) -> None:
        self.cooldown_seconds = cooldown_seconds
        self.max_inflight_per_guild = max_inflight_per_guild
        self._last_start: dict[tuple[int, int], float] = {}
        self._inflight: defaultdict[int, int] = defaultdict(int)

    def inflight(self, guild_id: int) -> int:
        return self._inflight[guild_id]

    @contextmanager
    def slot(self, guild_id: int, user_id: int) -> Iterator[None]:
        """Hold one of the guild's in-flight slots for a composition by `user_id`.

        Raises OnCooldown or TooManyInFlight before taking anything. The cooldown starts when
        a composition is accepted, so a refused attempt does not extend it.
        """
        # time.monotonic is looked up at each call (not bound at import) so that a test clock
        # that replaces it is honoured.
        now = time.monotonic()
        last = self._last_start.get((guild_id, user_id))
        if last is not None and now - last < self.cooldown_seconds:
            raise OnCooldown(self.cooldown_seconds - (now - last))
        if self._inflight[guild_id] >= self.max_inflight_per_guild:
            raise TooManyInFlight(self.max_inflight_per_guild)
        self._last_start[(guild_id, user_id)] = now
        self._inflight[guild_id] += 1
        try:
            yield
        finally:
            self._inflight[guild_id] -= 1
            if not self._inflight[guild_id]:
                del self._inflight[guild_id]
