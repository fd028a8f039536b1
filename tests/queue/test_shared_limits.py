"""The work limits shared by bot processes (bot.services.shared_limits) on a real
redis-server: two instances stand for two bot processes (two shards)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from bot.services.limits import OnCooldown, TooManyInFlight, Work
from bot.services.shared_limits import QueueUnavailable, SharedWorkLimits
from engine.api.errors import BadSeed
from tests.queue.processes import free_port

pytestmark = pytest.mark.redis

MakeLimits = Callable[..., SharedWorkLimits]


@pytest_asyncio.fixture(loop_scope="function")
async def make_limits(redis_url: str, prefix: str) -> AsyncIterator[MakeLimits]:
    made: list[SharedWorkLimits] = []

    def make(cooldown: float = 10, cap: int = 2, **options: object) -> SharedWorkLimits:
        limits = SharedWorkLimits(
            options.pop("url", redis_url),  # type: ignore[arg-type]
            cooldown_seconds=cooldown,
            max_inflight_per_guild=cap,
            prefix=prefix,
            **options,  # type: ignore[arg-type]
        )
        made.append(limits)
        return limits

    yield make
    for limits in made:
        await limits.aclose()


async def test_a_members_cooldown_holds_across_processes(make_limits: MakeLimits) -> None:
    shard_0, shard_1 = make_limits(), make_limits()
    async with shard_0.slot(1, 7, Work.COMPOSITION) as slot:
        slot.start()
    with pytest.raises(OnCooldown, match="You started a composition a moment ago") as refused:
        async with shard_1.slot(1, 7, Work.SEED_PLAY):
            pass
    assert 8 < refused.value.retry_after <= 10
    # Another member, or the same member in another server, is not held back.
    async with shard_1.slot(1, 8) as slot, shard_1.slot(2, 7) as other:
        slot.start()
        other.start()


async def test_a_servers_cap_holds_across_processes_and_frees_on_release(
    make_limits: MakeLimits,
) -> None:
    shard_0, shard_1 = make_limits(cooldown=0), make_limits(cooldown=0)
    async with shard_0.slot(1, 1, Work.COMPOSITION), shard_1.slot(1, 2, Work.PIECE_EXPORT):
        with pytest.raises(TooManyInFlight, match="1 composition and 1 piece export under way"):
            async with shard_1.slot(1, 3):
                pass
        async with shard_0.slot(2, 3):  # another server has its own cap
            pass
    async with shard_1.slot(1, 3), shard_0.slot(1, 4):  # both slots were released
        pass


async def test_a_refusal_gives_the_cooldown_back(make_limits: MakeLimits) -> None:
    shard_0, shard_1 = make_limits(), make_limits()
    async with shard_0.slot(1, 7):
        pass  # never started (a seed refused before the engine was asked)
    with pytest.raises(BadSeed):
        async with shard_0.slot(1, 7) as slot:
            slot.start()
            raise BadSeed("not a MIDI file")
    async with shard_1.slot(1, 7) as slot:  # the member owes nothing for either
        slot.start()
    with pytest.raises(OnCooldown):
        async with shard_0.slot(1, 7):
            pass


async def test_a_dead_processes_slots_leave_the_cap_when_their_lease_ends(
    make_limits: MakeLimits,
) -> None:
    other = make_limits(cooldown=0, cap=1)
    # A live process renews its slot past the lease while it holds it.
    live = make_limits(cooldown=0, cap=1, lease_seconds=0.4)
    async with live.slot(1, 1):
        await asyncio.sleep(1.0)
        with pytest.raises(TooManyInFlight):
            async with other.slot(1, 2):
                pass
    # A process that dies holding a slot neither releases nor renews it.
    dying = make_limits(cooldown=0, cap=1, lease_seconds=0.4)
    await dying.slot(1, 3).__aenter__()
    assert dying._renewer is not None
    dying._renewer.cancel()
    with pytest.raises(TooManyInFlight):
        async with other.slot(1, 2):
            pass
    await asyncio.sleep(0.6)
    async with other.slot(1, 2):  # the dead slot's lease ended
        pass


async def test_redis_away_refuses_clearly(make_limits: MakeLimits) -> None:
    limits = make_limits(url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(QueueUnavailable, match="job queue did not answer"):
        async with limits.slot(1, 7):
            pass
