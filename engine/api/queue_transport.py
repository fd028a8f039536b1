"""The job-queue backend: the client's jobs go to Redis Streams, engine workers take them.

    engine = queue_client("redis://queue.internal:6379/0")   # an EngineClient, as local() is
    async with engine:
        result = await engine.compose(ComposeRequest(...), on_progress=show)

`python -m engine worker` processes (engine.queue.worker), on any machines, take the jobs from
the streams (engine.api.queue_keys has the layout) and post each job's progress and its reply to
this client's reply stream, which `QueueTransport` reads. To EngineClient this is one engine:
the same messages (engine.api.schema's encoded bytes) come and go, read here only for their
type and id; `ready` is made here, and a `ping` is answered here from the workers' heartbeats
(their engines' figures, summed).

What a queue adds, handled here:
- Redis away (a restart, the network): reads and writes retry; once it answers again every
  job in flight is sent again, which queues it only if Redis lost it (the submit script checks
  the job's marker). Away for longer than RECONNECT_SECONDS, the transport reports itself
  closed and EngineClient's own restarts take over (its jobs count that as one attempt).
- No worker at all: a job is failed with EngineUnavailable once no worker has been heard from
  for WORKER_TTL_SECONDS, instead of waiting for a time-out.
- A cancelled job is flagged in Redis: the worker holding it stops it, and a worker that
  claims it later drops it.
- The client's process dying (a crash, kill -9) while its jobs run: with an `owner`, each job
  the caller gave a note (EngineClient.compose(handover=...)) keeps it in Redis, and the next
  process of the same owner takes the job over (engine.api.queue_handover) once this
  client's liveness key has expired. A client that closes normally removes its notes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.exceptions import RedisError

from engine.api.client import EngineClient
from engine.api.errors import EngineUnavailable
from engine.api.queue_keys import (
    CLIENT_BEAT_SECONDS,
    CLIENT_TTL_SECONDS,
    DEFAULT_PREFIX,
    GROUP,
    JOB_TTL_SECONDS,
    KINDS,
    LIVE_WORKERS,
    SUBMIT,
    WORKER_TTL_SECONDS,
    QueueKeys,
    connect,
    ms,
    redacted,
)
from engine.api.schema import EngineStats, JobFailed, Pong, Ready, encode
from engine.api.transport import Transport, TransportClosed

log = logging.getLogger(__name__)

READ_BLOCK_MS = 1000  # a reply read waits this long for news, then reads again
RECONNECT_SECONDS = 30.0  # Redis away this long: the transport closes (EngineClient restarts it)
RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0)  # pauses between tries while Redis is away (then 1 s)
MONITOR_SECONDS = 1.0  # how often the live workers are counted while jobs are in flight
# Figures summed over the live workers' engines for a pong (engine.api.schema.EngineStats).
SUMMED = (
    "active_rows",
    "max_rows",
    "active_jobs",
    "queued_jobs",
    "rendering_jobs",
    "jobs",
    "steps",
    "training_jobs",
    "tokens",
)


@dataclass(eq=False)
class QueuedJob:
    id: int  # EngineClient's id for it
    kind: str
    body: bytes  # the engine message as the client encoded it (the worker sets its own id)
    job: str  # its global id in Redis: "<client>:<id>"


class QueueLink:
    """What one EngineClient's transports share, so a new transport (after Redis was away)
    goes on where the last one stopped: the client's id and reply stream, the position read in
    it, and the jobs sent and not yet answered."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        worker_ttl: float = WORKER_TTL_SECONDS,
        owner: str | None = None,
    ) -> None:
        self.url = url
        self.keys = QueueKeys(prefix)
        # Whose jobs these are beyond this process (a bot's shards): its successor adopts them.
        self.owner = owner
        self.notes: dict[int, bytes] = {}  # job id -> the caller's note for a successor
        self.stale_notes: set[str] = set()  # notes of answered jobs, to remove from Redis
        self.client = uuid.uuid4().hex[:16]
        self.replies = self.keys.replies(self.client)
        self.worker_ttl = worker_ttl
        self.last_reply = "0-0"
        self.jobs: dict[int, QueuedJob] = {}
        self.cancels: set[str] = set()  # jobs given up whose flag could not be set yet
        self.redis: Any = None

    def open(self) -> Any:
        if self.redis is None:
            self.redis = connect(self.url)
        return self.redis

    async def close(self) -> None:
        redis, self.redis = self.redis, None
        if redis is not None:
            await redis.aclose()


class QueueTransport(Transport):
    def __init__(self, link: QueueLink) -> None:
        self._link = link
        self._keys = link.keys
        self._inbox: asyncio.Queue[bytes | TransportClosed] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed: str | None = None
        self._last_worker_seen = time.monotonic()
        self._submit: Any = None
        self._live: Any = None

    async def open(self) -> None:
        redis = self._link.open()
        self._submit = redis.register_script(SUBMIT)
        self._live = redis.register_script(LIVE_WORKERS)
        try:
            await redis.ping()
            workers = await self._live_workers()
        except (RedisError, OSError) as exc:
            await self._link.close()
            raise TransportClosed(
                f"Redis at {redacted(self._link.url)} did not answer: {exc}"
            ) from exc
        await self._inbox.put(
            encode(Ready(0, "queue", f"{redacted(self._link.url)} ({len(workers)} workers)"))
        )
        self._spawn(self._read_replies(), "queue-replies")
        self._spawn(self._watch_workers(), "queue-workers")
        if self._link.owner is not None:
            self._spawn(self._say_alive(), "queue-client-alive")

    async def send(self, message: bytes) -> None:
        if self._closed is not None:
            raise TransportClosed(self._closed)
        fields = unpacked(message)
        kind, job_id = (
            (fields.get("type"), fields.get("id")) if isinstance(fields, dict) else (None, None)
        )
        if kind in KINDS and isinstance(job_id, int):
            job = QueuedJob(job_id, kind, message, f"{self._link.client}:{job_id}")
            self._link.jobs[job_id] = job
            try:
                await self._send_job(job)
            except (RedisError, OSError) as exc:
                # The reader sends it once Redis answers again.
                log.warning("could not queue %s job %d yet (Redis: %s)", kind, job_id, exc)
        elif kind == "cancel" and isinstance(job_id, int):
            cancelled = self._link.jobs.pop(job_id, None)
            if cancelled is not None:
                self._link.cancels.add(cancelled.job)
                self._drop_note(cancelled)
                await self._flag_cancels()
        elif kind == "ping" and isinstance(job_id, int):
            self._spawn(self._pong(job_id), f"queue-ping-{job_id}")
        else:
            log.warning("the queue transport cannot send a %r message", kind)

    async def receive(self) -> bytes:
        item = await self._inbox.get()
        if isinstance(item, TransportClosed):
            self._inbox.put_nowait(item)  # every later call says the same
            raise item
        return item

    async def close(self, timeout: float) -> None:
        # The workers are not ours to stop; the jobs in flight were drained by EngineClient,
        # which told their callers: no successor may post them now.
        self._end("the queue transport was closed")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        await self._forget_notes()
        await self._link.close()

    def hand_over(self, job_id: int, note: bytes) -> None:
        if self._link.owner is not None:
            self._link.notes[job_id] = note

    def kill(self) -> None:
        self._end("the queue transport was stopped (Redis did not answer)")

    def describe_exit(self) -> str:
        return self._closed or "still running"

    # Jobs.
    async def _send_job(self, job: QueuedJob) -> None:
        await self._submit(
            keys=[self._keys.marker(job.job), self._keys.stream(job.kind), self._keys.counters],
            args=[ms(JOB_TTL_SECONDS), job.job, self._link.replies, job.id, job.body],
        )
        note = self._link.notes.get(job.id)
        if note is not None and self._link.owner is not None:
            # What the successor needs: where the reply comes, and the caller's note. The
            # note dies with the job's marker (nobody can be told after that).
            record = {"client": self._link.client, "reply": self._link.replies, "id": job.id}
            notes = self._keys.notes(self._link.owner)
            async with self._link.redis.pipeline(transaction=True) as pipe:
                pipe.set(
                    self._keys.note(job.job),
                    msgspec.msgpack.encode({**record, "note": note}),
                    px=ms(JOB_TTL_SECONDS),
                )
                pipe.sadd(notes, job.job)
                pipe.pexpire(notes, ms(JOB_TTL_SECONDS))
                await pipe.execute()

    def _drop_note(self, job: QueuedJob) -> None:
        """The job is answered (or given up) here: no successor must post it."""
        if self._link.notes.pop(job.id, None) is not None and self._link.owner is not None:
            self._link.stale_notes.add(job.job)
            self._spawn(self._delete_stale_notes(), f"queue-note-{job.id}")

    async def _delete_stale_notes(self) -> None:
        link = self._link
        jobs = list(link.stale_notes)
        if not jobs or link.owner is None or link.redis is None:
            return
        try:
            async with link.redis.pipeline(transaction=False) as pipe:
                for job in jobs:
                    pipe.delete(self._keys.note(job))
                pipe.srem(self._keys.notes(link.owner), *jobs)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Kept for the next try (the next answer, or closing); a note left behind in
            # Redis expires with its job.
            log.warning("could not remove %d job notes (Redis: %s)", len(jobs), exc)
            return
        link.stale_notes.difference_update(jobs)

    async def _forget_notes(self) -> None:
        """Closing: this client's jobs have been told their outcome, and it is not alive."""
        link = self._link
        if link.owner is None or link.redis is None:
            return
        link.stale_notes.update(f"{link.client}:{job_id}" for job_id in link.notes)
        link.notes.clear()
        await self._delete_stale_notes()
        try:
            await link.redis.delete(self._keys.client(link.client))
        except (RedisError, OSError) as exc:
            log.debug("could not remove the client's liveness key: %s", exc)

    async def _say_alive(self) -> None:
        """Keep this client's liveness key: while it stands, no successor adopts its jobs."""
        key = self._keys.client(self._link.client)
        while True:
            try:
                await self._link.redis.set(key, 1, px=ms(CLIENT_TTL_SECONDS))
            except (RedisError, OSError) as exc:
                log.debug("could not renew the client's liveness key: %s", exc)
            await asyncio.sleep(CLIENT_BEAT_SECONDS)

    async def _flag_cancels(self) -> None:
        redis = self._link.redis
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for job in self._link.cancels:
                    pipe.set(self._keys.cancel(job), 1, px=ms(JOB_TTL_SECONDS))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning(
                "could not flag %d cancelled jobs yet (Redis: %s)", len(self._link.cancels), exc
            )
            return
        self._link.cancels.clear()

    async def _resend_all(self) -> None:
        """After Redis was away: what it lost is queued again, what it kept stays as it is."""
        for job in list(self._link.jobs.values()):
            await self._send_job(job)
        await self._flag_cancels()

    def _fail(self, job: QueuedJob, exc: EngineUnavailable) -> None:
        self._link.jobs.pop(job.id, None)
        self._drop_note(job)
        self._link.cancels.add(job.job)  # a worker that appears later must not run it
        self._inbox.put_nowait(encode(JobFailed.of(job.id, exc)))

    # Background tasks.
    async def _read_replies(self) -> None:
        redis, link = self._link.redis, self._link
        away_since: float | None = None
        tries = 0
        while True:
            try:
                if away_since is not None:
                    await self._resend_all()
                    log.info(
                        "Redis answers again after %.1f s; %d jobs in flight",
                        time.monotonic() - away_since,
                        len(link.jobs),
                    )
                    away_since, tries = None, 0
                answer = await redis.xread({link.replies: link.last_reply}, block=READ_BLOCK_MS)
            except (RedisError, OSError) as exc:
                now = time.monotonic()
                if away_since is None:
                    away_since = now
                    log.warning("lost Redis at %s (%s); reconnecting", redacted(link.url), exc)
                if now - away_since > RECONNECT_SECONDS:
                    self._end(
                        f"Redis at {redacted(link.url)} did not answer for "
                        f"{RECONNECT_SECONDS:.0f} s ({exc})"
                    )
                    return
                await asyncio.sleep(RETRY_SECONDS[min(tries, len(RETRY_SECONDS) - 1)])
                tries += 1
                continue
            for _stream, entries in answer or []:
                for entry_id, fields in entries:
                    link.last_reply = (
                        entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    )
                    self._deliver(fields.get(b"m"))
            if answer:
                # What was read is not needed again: results are MBs, keep Redis small.
                try:
                    await redis.xtrim(link.replies, minid=link.last_reply, approximate=False)
                except (RedisError, OSError) as exc:
                    log.debug("could not trim the reply stream: %s", exc)

    def _deliver(self, raw: bytes | None) -> None:
        """Hand a worker's reply on as it came (EngineClient decodes it); only its type and id
        are read here."""
        if not isinstance(raw, bytes):
            log.error("malformed reply from a worker: %r", type(raw).__name__)
            return
        try:
            message = msgspec.msgpack.decode(raw)
        except msgspec.DecodeError as exc:
            log.error("malformed reply from a worker: %s", exc)
            return
        if not isinstance(message, dict):
            log.error("malformed reply from a worker: %r", type(message).__name__)
            return
        if message.get("type") in ("result", "error"):
            job = self._link.jobs.pop(message.get("id"), None)  # type: ignore[arg-type]
            if job is None:
                return  # answered already (failed here, or cancelled)
            self._drop_note(job)
        elif message.get("id") not in self._link.jobs:
            return  # progress of a job that has ended
        self._inbox.put_nowait(raw)

    async def _watch_workers(self) -> None:
        """Fail the jobs in flight when no worker has been heard from for the workers' ttl."""
        while True:
            await asyncio.sleep(MONITOR_SECONDS)
            if not self._link.jobs:
                self._last_worker_seen = time.monotonic()
                continue
            try:
                workers = await self._live_workers()
            except (RedisError, OSError):
                # The reader handles Redis being away; the workers' absence counts only
                # from when Redis can tell (after a restart they come back within a beat).
                self._last_worker_seen = time.monotonic()
                continue
            now = time.monotonic()
            if workers:
                self._last_worker_seen = now
            elif now - self._last_worker_seen > self._link.worker_ttl:
                log.error(
                    "no engine worker has been heard from for %.0f s; failing %d jobs",
                    now - self._last_worker_seen,
                    len(self._link.jobs),
                )
                for job in list(self._link.jobs.values()):
                    self._fail(
                        job,
                        EngineUnavailable(
                            "no music engine worker is running; try again when the operator has "
                            "started one"
                        ),
                    )
                await self._flag_cancels()

    async def _live_workers(self) -> list[str]:
        names = await self._live(keys=[self._keys.workers], args=[ms(self._link.worker_ttl)])
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    async def _pong(self, ping_id: int) -> None:
        """Answer a ping with the live workers' figures; no answer while Redis is away (the
        client's watchdog then closes this transport)."""
        while True:
            try:
                stats = await self._stats()
                break
            except (RedisError, OSError):
                await asyncio.sleep(RETRY_SECONDS[-1])
        self._inbox.put_nowait(encode(Pong(ping_id, msgspec.convert(stats, EngineStats))))

    async def _stats(self) -> dict[str, Any]:
        redis = self._link.redis
        workers = await self._live_workers()
        async with redis.pipeline(transaction=False) as pipe:
            for name in workers:
                pipe.hget(self._keys.worker(name), "stats")
            pipe.xlen(self._keys.stream("compose"))
            pipe.xpending(self._keys.stream("compose"), GROUP)
            *found, entries, claimed = await pipe.execute(raise_on_error=False)
        total: dict[str, Any] = dict.fromkeys(SUMMED, 0)
        models: list[str] = []
        devices: list[str] = []
        draining = bool(workers)
        for raw in found:
            stats = unpacked(raw)  # nothing while a worker's engine starts
            if not isinstance(stats, dict):
                draining = False
                continue
            for name in SUMMED:
                total[name] += int(stats.get(name) or 0)
            models += [m for m in stats.get("models") or [] if m not in models]
            devices.append(str(stats.get("device")))
            draining = draining and bool(stats.get("draining"))
        # Compositions waiting in Redis for a worker count as queued too: the stream holds
        # those and the claimed ones (an answered job's entry is deleted).
        if isinstance(entries, int) and isinstance(claimed, dict):
            total["queued_jobs"] += max(0, entries - int(claimed.get("pending") or 0))
        return {
            **total,
            "pid": 0,
            "models": models,
            "draining": draining,
            "device": f"queue: {len(workers)} workers ({', '.join(devices) or 'none'})",
        }

    # Helpers.
    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("queue transport task %s failed", task.get_name(), exc_info=task.exception())
            self._end(f"the queue transport failed ({task.exception()!r})")

    def _end(self, reason: str) -> None:
        """Closed for good: receive() raises, and the background tasks stop (the next
        transport of the same link takes over its reply stream and its jobs)."""
        if self._closed is not None:
            return
        self._closed = reason
        self._inbox.put_nowait(TransportClosed(reason))
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()


def unpacked(raw: object) -> Any:
    """A MessagePack value (from Redis, or a message to send), or None for nothing or
    garbage."""
    if not isinstance(raw, bytes) or not raw:
        return None
    try:
        return msgspec.msgpack.decode(raw)
    except msgspec.DecodeError:
        return None


def queue_client(
    url: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    worker_ttl: float = WORKER_TTL_SECONDS,
    owner: str | None = None,
    **options: Any,
) -> EngineClient:
    """An EngineClient whose engine is the workers of the Redis queue at `url`; `owner`: whose
    jobs they are beyond this process (the next process of the same owner adopts the jobs
    given a note, engine.api.queue_handover); `options` go to EngineClient (close_timeout, ...)."""
    link = QueueLink(url, prefix=prefix, worker_ttl=worker_ttl, owner=owner)
    factory: Callable[[], Transport] = lambda: QueueTransport(link)  # noqa: E731
    return EngineClient(factory, **options)
