"""The scaled deployment, all real on loopback: two `python -m bot` processes as shards 0 and
1 of 2 (MOTIF_SHARD_COUNT, MOTIF_SHARD_IDS), two `python -m engine worker` processes, one
redis-server and one PostgreSQL database; Discord is the stand-in, with one guild per shard.

One scenario, in order (the processes start once: they are what costs time):
- a /compose in each shard's guild is posted by that shard's process;
- a member's cooldown, taken on shard 0, holds when their next /compose reaches shard 1;
- a vote button posted by shard 0 is handled when the click reaches shard 1;
- shard 0's process killed (-9) while its composition and a /seed play run on the workers:
  the process that replaces it posts both;
- a worker killed (-9) mid-composition: the other takes the job over, posted once;
- Redis restarted without its data: bots and worker reconnect, and the next one is posted.
Models on every worker (a version fetched from Redis) are tests/queue/test_shared_models.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis

from bot.db import add_seed
from bot.db.session import create_engine, create_sessionmaker
from tests.db.conftest import create_postgres_database, drop_postgres_database, postgres_server_url
from tests.process.bot_process import BotProcess
from tests.process.discord_standin import (
    EPHEMERAL,
    MEMBER_ID,
    OTHER_MEMBER_USER,
    DiscordStandIn,
    Request,
    guild_of_shard,
)
from tests.queue.processes import RedisServer, WorkerProcess, holders

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

TINY = {"bars": 2, "candidates": 1}
COMPOSE_SECONDS = 180.0  # seconds alone; the whole suite may share the two cores
COOLDOWN = "600"  # long enough to hold for the whole test
OWNER_0 = "shards-0-of-2"  # bot.services.handover.handover_owner for MOTIF_SHARD_IDS=0


THIRD_MEMBER = {**OTHER_MEMBER_USER, "id": str(MEMBER_ID + 2), "username": "carol"}
EXAMPLES = Path(__file__).resolve().parents[2] / "engine" / "examples"


async def save_seed(database_url: str, guild_id: int, name: str, midi: bytes) -> None:
    """A seed in the server's library, as /seed add leaves it."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await add_seed(session, guild_id=guild_id, name=name, uploader_id=MEMBER_ID, midi=midi)
    finally:
        await engine.dispose()


@pytest.fixture
def database_url() -> Iterator[str]:
    server = postgres_server_url()  # skips, saying so, without MOTIF_TEST_POSTGRES_URL
    url = create_postgres_database(server, "motif_shards")
    try:
        yield url
    finally:
        drop_postgres_database(server, url)


@pytest_asyncio.fixture(loop_scope="function")
async def workers(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[list[WorkerProcess]]:
    started = [WorkerProcess(redis_server.url, "motif", f"w{i}", tmp_path) for i in (1, 2)]
    try:
        for worker in started:
            await asyncio.to_thread(worker.wait_serving)
        yield started
    finally:
        for worker in started:
            if worker.process.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)  # in case the test stopped it
            await asyncio.to_thread(worker.stop)


def shard_env(shard: int, queue: RedisServer, database_url: str) -> dict[str, str]:
    return {
        "MOTIF_SHARD_COUNT": "2",
        "MOTIF_SHARD_IDS": str(shard),
        "MOTIF_QUEUE_URL": queue.url,
        "DATABASE_URL": database_url,
        "MOTIF_COMPOSE_COOLDOWN_SECONDS": COOLDOWN,
    }


def posted(discord_: DiscordStandIn, token: str) -> Request | None:
    """The edit of the interaction's original response that posted the candidates."""
    return next((r for r in discord_.original_edits(token) if r.files), None)


def custom_ids(post: Request) -> list[str]:
    return [c["custom_id"] for row in post.json["components"] for c in row["components"]]


@pytest.mark.timeout(900)
async def test_two_shards_two_workers_share_limits_buttons_and_a_restart(
    tmp_path: Path, redis_server: RedisServer, database_url: str, workers: list[WorkerProcess]
) -> None:
    guild_0, guild_1 = guild_of_shard(0, 2), guild_of_shard(1, 2)
    async with (
        DiscordStandIn(shard_count=2) as discord_,
        BotProcess(
            tmp_path / "bot0", discord_, **shard_env(0, redis_server, database_url)
        ) as bot_0,
        BotProcess(
            tmp_path / "bot1", discord_, **shard_env(1, redis_server, database_url)
        ) as bot_1,
    ):
        # Both migrate the same empty database at once (one waits for the other).
        await asyncio.gather(bot_0.wait_ready(), bot_1.wait_ready())
        assert sorted(discord_.identified) == [0, 1]

        # A composition in each shard's guild, each posted by its own shard's process.
        first = discord_.slash_command("compose", in_guild=guild_0, **TINY)
        second = discord_.slash_command("compose", in_guild=guild_1, **TINY)
        post_0 = await discord_.wait_for(lambda: posted(discord_, first), COMPOSE_SECONDS)
        post_1 = await discord_.wait_for(lambda: posted(discord_, second), COMPOSE_SECONDS)
        assert sorted(post_0.files) == sorted(post_1.files) == ["candidate-1.ogg", "pianoroll.png"]
        await bot_0.wait_metric("motif_compositions_posted_total", 1)
        await bot_1.wait_metric("motif_compositions_posted_total", 1)

        # The member's cooldown, taken on shard 0, holds on shard 1.
        again = discord_.slash_command("compose", in_guild=guild_0, via_shard=1, **TINY)
        refusal = (await discord_.wait_for(lambda: discord_.callbacks(again)))[0]
        assert refusal["type"] == 4 and refusal["data"]["flags"] & EPHEMERAL
        assert "You started a composition a moment ago" in refusal["data"]["content"]
        assert not discord_.original_edits(again)

        # A vote button of shard 0's post, clicked where shard 1 receives it.
        vote = next(i for i in custom_ids(post_0) if re.fullmatch(r"motif:vote:\d+:\d+", i))
        click = discord_.button(vote, in_guild=guild_0, via_shard=1)
        answer = (await discord_.wait_for(lambda: discord_.callbacks(click)))[0]
        assert answer["type"] == 7  # the message's buttons updated with the new tally
        labels = [c["label"] for row in answer["data"]["components"] for c in row["components"]]
        assert "Vote 1 · 1" in labels

        # Shard 0's process dies while its composition and a seed being played wait for a
        # worker; its successor posts both. The workers are paused so the jobs cannot finish
        # before the kill.
        await save_seed(database_url, guild_0, "riff", (EXAMPLES / "motif.mid").read_bytes())
        for worker in workers:
            os.kill(worker.pid, signal.SIGSTOP)
        inspect = redis.Redis.from_url(redis_server.url)
        try:
            third = discord_.slash_command(
                "compose", in_guild=guild_0, member=OTHER_MEMBER_USER, bars=4, candidates=2
            )
            play = discord_.slash_command(
                "seed", in_guild=guild_0, member=THIRD_MEMBER, **{"play": {"name": "riff"}}
            )
            async with asyncio.timeout(60):
                while len(inspect.smembers(f"motif:notes:{OWNER_0}")) < 2:
                    await asyncio.sleep(0.02)
            assert bot_0.process is not None
            bot_0.process.kill()
            await bot_0.process.wait()
        finally:
            for worker in workers:
                os.kill(worker.pid, signal.SIGCONT)
        async with BotProcess(
            tmp_path / "bot0-again", discord_, **shard_env(0, redis_server, database_url)
        ) as successor:
            await successor.wait_ready()
            post = await discord_.wait_for(lambda: posted(discord_, third), COMPOSE_SECONDS)
            assert sorted(post.files) == ["candidate-1.ogg", "candidate-2.ogg", "pianoroll.png"]
            assert any(re.fullmatch(r"motif:vote:\d+:\d+", i) for i in custom_ids(post))
            played = await discord_.wait_for(
                lambda: [r for r in discord_.followups(play) if r.files], COMPOSE_SECONDS
            )
            assert [sorted(r.files) for r in played] == [["riff.mid", "riff.ogg"]]
            # Recorded and logged just after the post.
            async with asyncio.timeout(30):
                while not any("went away" in e.get("message", "") for e in successor.log):
                    await asyncio.sleep(0.05)
            # Taken over once: nothing is left for another process to take.
            assert not inspect.smembers(f"motif:notes:{OWNER_0}")
            assert not [k for k in inspect.scan_iter("motif:note:*")]

            # A worker killed (-9) while it writes shard 1's composition: the other worker
            # takes the job over, and it is posted once.
            fourth = discord_.slash_command(
                "compose", in_guild=guild_1, member=OTHER_MEMBER_USER, bars=16, candidates=2
            )
            async with asyncio.timeout(COMPOSE_SECONDS):
                while not (held := holders(inspect, "motif")):
                    await asyncio.sleep(0.01)
            [victim] = [w for w in workers if w.name in held]
            [survivor] = [w for w in workers if w is not victim]
            victim.kill()
            post = await discord_.wait_for(lambda: posted(discord_, fourth), COMPOSE_SECONDS)
            assert sorted(post.files) == ["candidate-1.ogg", "candidate-2.ogg", "pianoroll.png"]
            await bot_1.wait_metric("motif_compositions_posted_total", 2)
            assert len([r for r in discord_.original_edits(fourth) if r.files]) == 1
            assert b"duplicates" not in inspect.hgetall("motif:counters")
            assert "took over compose job" in survivor.log_text()

            # Redis restarts without its data: both bots and the last worker reconnect by
            # themselves, and the next composition is posted (the cooldowns went with the
            # data, so the first member may compose again).
            redis_server.stop()
            await asyncio.sleep(1.0)
            redis_server.start()
            fifth = discord_.slash_command("compose", in_guild=guild_0, **TINY)
            post = await discord_.wait_for(lambda: posted(discord_, fifth), COMPOSE_SECONDS)
            assert sorted(post.files) == ["candidate-1.ogg", "pianoroll.png"]
        inspect.close()
        # The other shard never took shard 0's job.
        assert not any("went away" in entry.get("message", "") for entry in bot_1.log)
