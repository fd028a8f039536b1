"""The work limits of bot.services.limits, shared by several bot processes through Redis.

With MOTIF_SHARD_IDS each bot process runs some of the shards, and a member's or a server's
next request may reach any of them (a restart moves shards, a button is clicked wherever the
server is served now), so the per-member cooldown and the per-server cap live in the job
queue's Redis, each check-and-take one script (atomic across processes):

    <prefix>:cooldown:<guild>:<member>   "<kind>|<stamp>", expiring with the cooldown
    <prefix>:running:<guild>             sorted set: "<kind>|<stamp>" -> lease end (ms)

A slot's lease is renewed while it is held; the slots of a process that died leave the cap
when their lease ends (LEASE_SECONDS), so a crash never locks a server out for long.
Times are Redis' own (TIME), so the processes' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from redis.exceptions import RedisError

from bot.services.limits import OnCooldown, Slot, TooManyInFlight, Work, engine_refused
from engine.api.errors import EngineUnavailable
from engine.api.queue_keys import DEFAULT_PREFIX, connect, ms

log = logging.getLogger(__name__)

# A held slot is renewed every LEASE_SECONDS / 4; a dead process' slots free within this.
LEASE_SECONDS = 60.0

# KEYS: the member's cooldown, the server's running set. ARGV: cooldown ms (0: no cooldown
# for this slot), cap, this slot's "<kind>|<stamp>", lease ms. Returns {"ok"},
# {"cooldown", last slot, ms left} or {"cap", running slots...}.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local cooldown = tonumber(ARGV[1])
if cooldown > 0 then
  local last = redis.call('GET', KEYS[1])
  if last then return {'cooldown', last, redis.call('PTTL', KEYS[1])} end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  return {'cap', unpack(redis.call('ZRANGE', KEYS[2], 0, -1))}
end
if cooldown > 0 then redis.call('SET', KEYS[1], ARGV[3], 'PX', cooldown) end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {'ok'}
"""

# KEYS: a member's cooldown. ARGV: the slot that set it. A later start of theirs stands.
GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""

# KEYS: running sets. ARGV: lease ms, then one slot per key. Slots released meanwhile stay
# released (XX).
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', key, ARGV[1])
end
"""


class QueueUnavailable(EngineUnavailable):
    def __init__(self) -> None:
        super().__init__(
            "the music engine's job queue did not answer, so nothing was started; "
            "try again in a moment"
        )


class SharedWorkLimits:
    """bot.services.limits.EngineWorkLimits' cooldown and cap, kept in Redis at `url`."""

    def __init__(
        self,
        url: str,
        *,
        cooldown_seconds: float,
        max_inflight_per_guild: int,
        prefix: str = DEFAULT_PREFIX,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.cooldown_seconds = cooldown_seconds
        self.max_inflight_per_guild = max_inflight_per_guild
        self._prefix = prefix
        self._lease = lease_seconds
        self._redis: Any = connect(url)
        self._take = self._redis.register_script(TAKE)
        self._give_back = self._redis.register_script(GIVE_BACK)
        self._renew = self._redis.register_script(RENEW)
        self._held: dict[str, str] = {}  # slot -> its running set
        self._renewer: asyncio.Task[None] | None = None

    def _cooldown_key(self, guild_id: int, user_id: int) -> str:
        return f"{self._prefix}:cooldown:{guild_id}:{user_id}"

    def _running_key(self, guild_id: int) -> str:
        return f"{self._prefix}:running:{guild_id}"

    @asynccontextmanager
    async def slot(
        self, guild_id: int, user_id: int | None, kind: Work = Work.COMPOSITION
    ) -> AsyncIterator[Slot]:
        """As EngineWorkLimits.slot, for every bot process at once."""
        stamp = f"{kind.value}|{uuid.uuid4().hex}"
        cooldown = self._cooldown_key(guild_id, user_id or 0)
        running = self._running_key(guild_id)
        cooldown_ms = (
            ms(self.cooldown_seconds) if user_id is not None and self.cooldown_seconds else 0
        )
        try:
            answer = await self._take(
                keys=[cooldown, running],
                args=[cooldown_ms, self.max_inflight_per_guild, stamp, ms(self._lease)],
            )
        except (RedisError, OSError) as exc:
            log.warning("could not check the work limits in Redis: %s", exc)
            raise QueueUnavailable() from exc
        outcome, *rest = [_text(part) for part in answer]
        if outcome == "cooldown":
            raise OnCooldown(int(rest[1]) / 1000, _kind(rest[0]))
        if outcome == "cap":
            raise TooManyInFlight(self.max_inflight_per_guild, Counter(map(_kind, rest)))
        self._held[stamp] = running
        self._keep_renewing()
        slot = Slot(kind)
        try:
            yield slot
        except BaseException as error:
            if cooldown_ms and (not slot.started or engine_refused(error)):
                await self._forget(self._give_back(keys=[cooldown], args=[stamp]))
            raise
        else:
            if cooldown_ms and not slot.started:
                await self._forget(self._give_back(keys=[cooldown], args=[stamp]))
        finally:
            del self._held[stamp]
            await self._forget(self._redis.zrem(running, stamp))

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with suppress(asyncio.CancelledError):
                await self._renewer
        await self._redis.aclose()

    async def _forget(self, call: Any) -> None:
        """Give back or release; if Redis is away, the key's expiry or the lease does it."""
        try:
            await asyncio.shield(call)
        except (RedisError, OSError) as exc:
            log.warning("could not release a work slot in Redis (its lease ends it): %s", exc)

    def _keep_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_leases(), name="work-slot-leases")

    async def _renew_leases(self) -> None:
        while self._held:
            await asyncio.sleep(self._lease / 4)
            held = dict(self._held)
            if not held:
                return
            try:
                await self._renew(keys=list(held.values()), args=[ms(self._lease), *held.keys()])
            except (RedisError, OSError) as exc:
                log.warning("could not renew %d work slots in Redis: %s", len(held), exc)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _kind(stamp: str) -> Work:
    try:
        return Work(stamp.partition("|")[0])
    except ValueError:
        return Work.COMPOSITION
