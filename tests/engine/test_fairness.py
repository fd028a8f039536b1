"""Fairness between servers at every stage of the engine: the queues, then the real engine
server driven stage by stage while one guild floods it and another composes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench.fairness import slow_seed  # the benchmark's flood: seeds at the note limit
from engine.api.config import EngineSettings
from engine.api.transport import SocketChannel
from engine.core.fairness import FairLane, FairQueue
from engine.serving.server import Server
from tests.engine.test_server import CHECKPOINT


@dataclass(eq=False)
class Item:
    guild: int | None
    name: str


def test_fair_queue_takes_guilds_in_turn():
    q: FairQueue[Item] = FairQueue()
    for guild, name in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1"), (3, "c1"), (3, "c2")]:
        q.push(Item(guild, name))
    assert [i.name for i in q] == ["a1", "b1", "c1", "a2", "c2", "a3"]
    assert q.pop().name == "a1"
    q.push(Item(2, "b2"))  # guild 2 is already waiting: its new job queues behind its turn
    q.push(Item(4, "d1"))  # a new guild waits for one turn of the others, not their backlog
    assert [i.name for i in q] == ["b1", "c1", "a2", "d1", "b2", "c2", "a3"]
    assert [q.pop().name for _ in range(len(q))] == ["b1", "c1", "a2", "d1", "b2", "c2", "a3"]
    assert q.peek() is None and len(q) == 0


def test_fair_queue_remove_and_no_guild():
    q: FairQueue[Item] = FairQueue()
    items = [Item(None, "x1"), Item(5, "e1"), Item(None, "x2")]
    for item in items:
        q.push(item)
    assert q.remove(items[1]) and not q.remove(items[1])
    assert [i.name for i in q] == ["x1", "x2"]  # requests without a guild share one turn


def test_one_per_guild_keeps_a_worker_free_for_the_other_guilds():
    lane: FairLane[Item] = FairLane(one_per_guild=True)
    for guild, name in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1")]:
        lane.put(Item(guild, name))
    a1 = lane.take()
    assert a1 is not None and a1.name == "a1"
    b1 = lane.take()  # guild 1 is busy with a1: the second worker gets guild 2's item
    assert b1 is not None and b1.name == "b1"
    lane.finished(b1)
    lane.finished(a1)  # now guild 1's next item may go
    a2 = lane.take()
    assert a2 is not None and a2.name == "a2" and lane.pending == 2  # a2, and a3 waiting
    assert [item.name for item in lane.stop()] == ["a3"]


def test_fair_lane_serves_threads_in_guild_turns_and_stops():
    lane: FairLane[Item] = FairLane()
    for guild, name in [(1, "a1"), (1, "a2"), (2, "b1")]:
        assert lane.put(Item(guild, name))
    taken: list[str] = []

    def worker() -> None:
        while (item := lane.take()) is not None:
            taken.append(item.name)
            lane.finished(item)
            if len(taken) == 3:
                return

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=30)
    assert taken == ["a1", "b1", "a2"] and lane.pending == 0
    assert lane.put(Item(3, "c1")) and lane.pending == 1
    assert [i.name for i in lane.stop()] == ["c1"] and lane.pending == 0
    assert lane.take() is None and not lane.put(Item(3, "c2"))


# The engine server, driven stage by stage on the test's thread (its worker threads are never
# started), so the order in which each stage takes the jobs is exact, not a race.

FLOOD, VICTIM, BYSTANDER = 1, 2, 3


class Replies:
    """The client's end of the channel, read on a thread so the server never blocks sending."""

    def __init__(self, channel: SocketChannel) -> None:
        self._channel = channel
        self._changed = threading.Condition()
        self.messages: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while (message := self._channel.receive()) is not None:
            with self._changed:
                self.messages.append(msgspec.msgpack.decode(message))
                self._changed.notify_all()

    def finished(self, count: int, timeout: float = 120.0) -> list[int]:
        """Ids of the first `count` results or errors, in the order they came."""

        def ended() -> list[int]:
            return [m["id"] for m in self.messages if m["type"] in ("result", "error")]

        with self._changed:
            assert self._changed.wait_for(lambda: len(ended()) >= count, timeout), self.messages
            return ended()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, Replies]]:
    ours, theirs = socket.socketpair()
    settings = EngineSettings(
        data_dir=tmp_path, device="cpu", max_rows=64, render_threads=1, model_cache_mb=1024
    )
    engine = Server(SocketChannel(theirs), settings, checkpoint=CHECKPOINT)
    replies = Replies(SocketChannel(ours))
    yield engine, replies
    engine._core.close()
    engine._files.close()
    for renderer in engine._renderers:
        renderer.close()
    for reader in engine._seeds:
        reader.close()
    theirs.close()
    ours.close()


def test_every_stage_takes_guilds_in_turn_under_a_flood(server, examples):
    engine, replies = server
    seed = (examples / "motif.mid").read_bytes()
    heavy = slow_seed()
    # The flooding guild sends three slow seeds to compose and four seed plays; then the
    # victim composes and a third guild plays a seed.
    messages = [
        {
            "type": "compose",
            "id": i,
            "request": {
                "seed_midi": heavy,
                "bars": 1,
                "candidates": 1,
                "seed": i,
                "guild_id": FLOOD,
            },
        }
        for i in (1, 2, 3)
    ]
    messages += [
        {"type": "render", "id": i, "request": {"midi": seed, "guild_id": FLOOD}}
        for i in (11, 12, 13, 14)
    ]
    messages += [
        {
            "type": "compose",
            "id": 20,
            "request": {
                "seed_midi": seed,
                "bars": 2,
                "candidates": 1,
                "seed": 20,
                "guild_id": VICTIM,
            },
        },
        {"type": "render", "id": 30, "request": {"midi": seed, "guild_id": BYSTANDER}},
    ]
    for message in messages:
        engine._handle(msgspec.msgpack.encode(message))

    # Preparing (the seed read): the victim's seed is read right after the flood's first,
    # not its last.
    planned: list[int] = []
    for _ in range(4):
        assert engine._core.prepare_next(engine._seeds[0])
        planned += [
            job_id
            for job_id, job in engine._jobs.items()
            if getattr(job, "plan", None) is not None and job_id not in planned
        ]
    assert planned == [1, 20, 2, 3]

    # Decoding (the scheduler's own fair queue), then composition renders: the victim's
    # composition waits for at most one of the flood's, and never for a whole-file render.
    while engine._core.decoded.pending + engine._files.pending < 4 + 5:
        engine._core.step()
    for _ in range(4):
        assert engine._core.render_next(engine._renderers[0])
    compositions = replies.finished(4)
    assert sorted(compositions) == [1, 2, 3, 20]
    assert compositions.index(20) <= 1, compositions

    # Whole files in their own lane, guilds in turn: the bystander's play comes second.
    for _ in range(5):
        assert engine._files.render_next(0)
    assert replies.finished(9)[4:] == [11, 30, 12, 13, 14]
    results = {m["id"]: m for m in replies.messages if m["type"] in ("result", "error")}
    assert all(m["type"] == "result" for m in results.values()), results
    assert engine._core.decoded.pending == engine._files.pending == 0 and not engine._jobs
