"""Jobs of a client process that died, taken over by the next process of the same owner.

    handover = QueueHandover(url, owner="shards-0-1")
    for orphan in await handover.adopt():           # jobs whose process is gone
        result = await handover.outcome(orphan, ComposeResult)  # or the job's error raised
        ...post it with orphan.note (what the dead process wrote for its successor)...

A queue client with an owner keeps, beside each job given a note, where its reply comes and
the note (engine.api.queue_keys: `note:<job>`, `notes:<owner>`), and says it lives
(`client:<client>`). Once that key has expired, the owner's next process adopts each of the
dead client's jobs (one atomic step: two processes never both take one) and reads its reply
from the dead client's reply stream, where the workers go on posting it: nobody else reads
that stream any more. A reply the dead process had already read, or a job Redis forgot, is
reported as lost (EngineUnavailable), so the member is told rather than left waiting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from redis.exceptions import RedisError

from engine.api.errors import EngineError, JobLost
from engine.api.queue_keys import ADOPT, DEFAULT_PREFIX, QueueKeys, connect
from engine.api.schema import ComposeResult, JobDone, JobFailed, RenderResult, decode_from_engine

log = logging.getLogger(__name__)

R = TypeVar("R", ComposeResult, RenderResult)

READ_BLOCK_MS = 1000  # a reply read waits this long for news, then looks at the job again
RETRY_SECONDS = 1.0  # pause while Redis is away


@dataclass(frozen=True)
class Orphan:
    job: str  # the job's global id
    reply: str  # the dead client's reply stream
    id: int  # the dead client's id for the job (in its replies)
    note: bytes  # what the dead client's caller wrote for its successor


class QueueHandover:
    def __init__(self, url: str, *, owner: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.owner = owner
        self._keys = QueueKeys(prefix)
        self._redis: Any = connect(url)
        self._adopt = self._redis.register_script(ADOPT)

    async def adopt(self) -> list[Orphan]:
        """Take over the owner's jobs whose client process is gone (none while Redis is
        away: they wait for the next call)."""
        try:
            return await self._adopt_orphans()
        except (RedisError, OSError) as exc:
            log.warning("could not look for jobs to take over (Redis: %s)", exc)
            return []

    async def _adopt_orphans(self) -> list[Orphan]:
        notes = self._keys.notes(self.owner)
        jobs = [_text(job) for job in await self._redis.smembers(notes)]
        orphans = []
        for job in jobs:
            client = job.rpartition(":")[0]
            if await self._redis.exists(self._keys.client(client)):
                continue  # its process lives and posts it
            raw = await self._adopt(keys=[notes, self._keys.note(job)], args=[job])
            if raw is None:
                continue  # another process took it, or the note expired with its job
            try:
                record = msgspec.msgpack.decode(raw)
                orphans.append(Orphan(job, record["reply"], int(record["id"]), record["note"]))
            except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
                log.error("job %s has a broken note (%s); it cannot be taken over", job, exc)
        if orphans:
            log.info("took over %d jobs of a bot process that went away", len(orphans))
        return orphans

    async def outcome(self, orphan: Orphan, expects: type[R]) -> R:
        """The job's result (an `expects`), or its error raised (JobLost when its reply
        cannot come)."""
        last = "0-0"
        while True:
            try:
                # The marker first: a reply is posted in the same step that marks it "done",
                # so a marker seen done before a read that finds nothing means none will come.
                marker = await self._redis.get(self._keys.marker(orphan.job))
                found, last = await self._read(orphan, last, block=None)
                if found is None and marker not in (None, b"done"):
                    found, last = await self._read(orphan, last, block=READ_BLOCK_MS)
                    if found is None:
                        continue
            except (RedisError, OSError) as exc:
                log.warning("waiting for job %s: Redis did not answer (%s)", orphan.job, exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if found is None:
                raise JobLost(f"the reply of job {orphan.job} is gone")
            return found_result(found, expects)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _read(
        self, orphan: Orphan, last: str, *, block: int | None
    ) -> tuple[bytes | None, str]:
        """The job's result or error read from its reply stream after `last` (removed
        there: results are MBs), and how far the stream was read."""
        while True:
            answer = await self._redis.xread({orphan.reply: last}, count=100, block=block)
            if not answer:
                return None, last
            for _stream, entries in answer:
                for entry_id, fields in entries:
                    last = _text(entry_id)
                    raw = fields.get(b"m")
                    if _answers(raw, orphan.id):
                        await self._redis.xdel(orphan.reply, entry_id)
                        return raw, last
            block = None  # read on to the end without waiting


def found_result(raw: bytes, expects: type[R]) -> R:
    try:
        message = decode_from_engine(raw)
    except msgspec.MsgspecError as exc:
        raise EngineError(f"the engine sent a broken result ({exc})") from exc
    if isinstance(message, JobFailed):
        raise message.exception()
    if isinstance(message, JobDone) and isinstance(message.result, expects):
        return message.result
    raise EngineError(f"the engine sent a broken result (a {type(message).__name__})")


def _answers(raw: object, job_id: int) -> bool:
    if not isinstance(raw, bytes):
        return False
    try:
        message = msgspec.msgpack.decode(raw)
    except msgspec.DecodeError:
        return False
    return (
        isinstance(message, dict)
        and message.get("id") == job_id
        and message.get("type") in ("result", "error")
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
