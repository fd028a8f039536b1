"""An engine worker of the Redis job queue: takes jobs from the streams, runs them on the engine
process it owns (engine.queue.engine_child), posts their progress and replies to each client.

Any number of workers, on any machines, share the streams through one consumer group
(layout: engine.api.queue_keys). A worker claims:
- compositions while its engine has free decode rows (a job holds its candidates' rows from
  its claim until it starts rendering), so continuous batching holds across the queue: a
  worker with a half-empty batch takes the next job at once, a full one leaves it to others;
- whole-file renders, RENDER_SLOTS at a time; fine-tunes, FINETUNE_SLOTS at a time, from their
  own stream, so minutes of training never hold a composition back.

Faults:
- A worker that dies (kill -9, a lost machine) stops refreshing its claims; after
  `claim_idle` seconds another worker takes them (XAUTOCLAIM) and runs them from the start.
  A reply is posted with the acknowledgement in one script that checks the job's marker, so a
  job is answered once, even when a stalled worker wakes up and finishes it too.
- A worker whose engine dies restarts the engine; the jobs it held go idle and are taken
  again like a dead worker's (their delivery counted). A job delivered MAX_DELIVERIES times
  whose engines died each time is dead-lettered (`<prefix>:dead`) and its client told.
- Redis away: every loop retries; replies wait in memory until Redis answers, and a lost
  consumer group is created again.

Models: a job that names a server's fine-tuned version waits until this worker has it on its
disk (fetched from Redis on first use, engine.queue.shared_models); a fine-tune's new version
is published to Redis before its reply, and the versions the retention rule drops leave Redis.
- SIGTERM/SIGINT drains: no new claims, compositions and renders in flight finish and are
  posted, fine-tunes are failed as the embedded engine fails them on a stop, then the worker
  leaves the live set and exits 0. A second signal stops at once (the claims go to others).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.exceptions import RedisError, ResponseError

from engine.api.errors import BadRequest, EngineError, EngineUnavailable
from engine.api.limits import DEFAULT_CANDIDATES
from engine.api.queue_keys import (
    DEAD_MAXLEN,
    DEFAULT_CLAIM_IDLE_SECONDS,
    DEFAULT_PREFIX,
    FINISH,
    GROUP,
    HEARTBEAT,
    HEARTBEAT_SECONDS,
    JOB_TTL_SECONDS,
    KINDS,
    MAX_DELIVERIES,
    REPLY_MAXLEN,
    REPLY_TTL_SECONDS,
    TOUCH,
    WORKER_TTL_SECONDS,
    QueueKeys,
    connect,
    ms,
    redacted,
)
from engine.api.schema import EngineRestarting, JobFailed, JobProgress, encode
from engine.api.transport import TransportClosed
from engine.queue.engine_child import EngineChild, EngineStartFailed
from engine.queue.shared_models import SharedModels
from engine.serving.model_store import ModelStore, guild_of

log = logging.getLogger(__name__)

RENDER_SLOTS = 2  # whole-file renders held at once: one renders, one waits its turn
FINETUNE_SLOTS = 1
BLOCK_MS = 1000  # a claim read waits this long for a new job, then looks again
RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0)  # pauses between tries while Redis is away
ENGINE_RESTART_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # then the worker gives up and exits 1
HANG_SECONDS = 30.0  # an engine that answers no ping this long while it holds jobs is killed
PROGRESS_TIMEOUT = 1.0  # progress is cosmetic: dropped rather than hold the engine's replies
DRAIN_POLL_SECONDS = 0.1
FINISH_GRACE_SECONDS = 10.0  # at a stop, replies still being posted get this long
EXIT_REDIS = 2
EXIT_ENGINE = 1


@dataclass(eq=False)
class Claim:
    """A job this worker took: where it came from, whom to answer, what it holds."""

    kind: str
    stream: str
    entry: str  # the stream entry
    job: str  # the job's global id
    reply: str  # the client's reply stream
    client_id: int  # the client's id for the job (replies carry it)
    engine_id: int = 0  # the id the engine knows it by (0: never sent)
    rows: int = 0  # decode rows held until it renders
    generation: int = 0  # which engine process it was sent to
    start_from: str | None = None  # a fine-tune's start (kept whatever the retention rule)


def decoded(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def rows_of(kind: str, message: dict[str, Any], max_rows: int) -> int:
    """The decode rows a compose job will hold: one per candidate."""
    if kind != "compose":
        return 0
    request = message.get("request")
    candidates = request.get("candidates") if isinstance(request, dict) else None
    if not isinstance(candidates, int) or isinstance(candidates, bool):
        candidates = DEFAULT_CANDIDATES
    return max(1, min(candidates, max_rows))


class QueueWorker:
    def __init__(
        self,
        url: str,
        engine_argv: list[str],
        engine_env: dict[str, str],
        *,
        models: ModelStore,
        name: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        claim_idle: float = DEFAULT_CLAIM_IDLE_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
        worker_ttl: float = WORKER_TTL_SECONDS,
    ) -> None:
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self._url = url
        self._keys = QueueKeys(prefix)
        self._claim_idle = claim_idle
        self._heartbeat = heartbeat
        self._worker_ttl = worker_ttl
        self._engine = EngineChild(engine_argv, engine_env, on_message=self._on_engine_message)
        self._redis: Any = None
        self._local_models = models  # this machine's copies, under its engine's data dir
        self._models: SharedModels | None = None
        self._finish_script: Any = None
        self._touch_script: Any = None
        self._heartbeat_script: Any = None
        self._claims: dict[int, Claim] = {}  # by engine id
        self._ids = itertools.count(1)
        self._held_rows = 0
        self._max_rows = 0
        self._up = False  # the engine serves
        self._state = "starting"
        self._stats: dict[str, Any] = {}
        self._last_pong = time.monotonic()
        self._room = asyncio.Event()  # set when a claim may have become possible
        self._draining = False
        self._stopped = asyncio.Event()
        self._exit_code = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finishing: set[asyncio.Task[Any]] = set()
        self._redis_away: float | None = None

    # The process.
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, self._on_signal, stop_signal)
        self._redis = connect(self._url)
        self._finish_script = self._redis.register_script(FINISH)
        self._touch_script = self._redis.register_script(TOUCH)
        self._heartbeat_script = self._redis.register_script(HEARTBEAT)
        self._models = SharedModels(self._redis, self._keys, self._local_models)
        try:
            await self._redis.ping()
            await self._ensure_groups()
        except (RedisError, OSError) as exc:
            log.error("cannot reach Redis at %s: %s", redacted(self._url), exc)
            await self._redis.aclose()
            return EXIT_REDIS
        log.info(
            "worker %s on %s (claims idle %.0f s are taken over)",
            self.name,
            redacted(self._url),
            self._claim_idle,
        )
        self._spawn(self._heartbeats(), "heartbeats")
        self._spawn(self._keep_engine(), "engine")
        self._spawn(self._watch_engine(), "engine-watch")
        for kind in KINDS:
            self._spawn(self._claim_new(kind), f"claim-{kind}")
        self._spawn(self._reclaim(), "reclaim")
        self._spawn(self._touch(), "touch")
        try:
            await self._stopped.wait()
        finally:
            await self._shut_down()
        return self._exit_code

    def _on_signal(self, stop_signal: signal.Signals) -> None:
        if self._draining:
            log.warning(
                "%s again: stopping now; the jobs held go to other workers", stop_signal.name
            )
            self._stopped.set()
            return
        self._draining = True
        self._state = "draining"
        self._room.set()  # the claim loops see the drain and end
        log.info(
            "%s: taking no new jobs, finishing %d in flight", stop_signal.name, len(self._claims)
        )
        self._spawn(self._drain(), "drain")

    async def _drain(self) -> None:
        for claim in [c for c in self._claims.values() if c.kind == "finetune"]:
            # Minutes of training cannot finish in a stop's grace (the embedded engine fails
            # them too): the member starts it again.
            await self._stop_in_engine(claim)
            self._post(
                claim,
                encode(
                    JobFailed.of(
                        claim.client_id,
                        EngineUnavailable(
                            "the music engine stopped during this fine-tune; start it again later"
                        ),
                    )
                ),
            )
        while self._claims or self._finishing:
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        log.info("drained; stopping")
        self._stopped.set()

    async def _shut_down(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        await self._engine.close()
        if self._finishing:  # replies already made: give them a moment to reach Redis
            await asyncio.wait(list(self._finishing), timeout=FINISH_GRACE_SECONDS)
        if self._claims:
            log.warning(
                "stopped holding %d jobs: other workers take them over in %.0f s",
                len(self._claims),
                self._claim_idle,
            )
        try:
            await self._redis.zrem(self._keys.workers, self.name)
            await self._redis.delete(self._keys.worker(self.name))
        except (RedisError, OSError) as exc:
            log.warning(
                "could not leave the live workers (Redis: %s); they forget this one in %.0f s",
                exc,
                self._worker_ttl,
            )
        await self._redis.aclose()

    def _fatal(self, code: int) -> None:
        self._exit_code = code
        self._stopped.set()

    # The engine.
    async def _keep_engine(self) -> None:
        failures = 0
        while not self._draining:
            try:
                stats = await self._engine.start()
            except EngineStartFailed as exc:
                if failures == len(ENGINE_RESTART_DELAYS):
                    log.error("the engine could not start (%s); giving up", exc)
                    self._fatal(EXIT_ENGINE)
                    return
                log.error(
                    "the engine could not start (%s); trying again in %.1f s",
                    exc,
                    ENGINE_RESTART_DELAYS[failures],
                )
                await asyncio.sleep(ENGINE_RESTART_DELAYS[failures])
                failures += 1
                continue
            failures = 0
            self._stats, self._last_pong = stats, time.monotonic()
            self._max_rows = int(stats.get("max_rows") or 1)
            self._up, self._state = True, ("draining" if self._draining else "serving")
            self._room.set()
            reason = await self._engine.wait_ended()
            self._up = False
            self._lose_claims(self._engine.generation)
            if self._draining:
                # Its jobs were let go (others take them); the drain ends once the replies
                # already made are posted.
                log.warning("the engine stopped while draining (%s)", reason)
                return
            log.error("the engine went away (%s); starting another", reason)
            self._state = "starting"

    def _lose_claims(self, generation: int) -> None:
        """The engine that ran these jobs died: let them go. Not acknowledged, they go idle
        and are taken again after claim_idle (here or elsewhere), their delivery counted."""
        lost = [c for c in self._claims.values() if c.generation <= generation]
        for claim in lost:
            self._drop(claim)
            self._post(
                claim, encode(JobProgress(claim.client_id, EngineRestarting())), progress=True
            )
        if lost:
            log.warning(
                "%d jobs were lost with the engine; they run again in %.0f s",
                len(lost),
                self._claim_idle,
            )

    async def _watch_engine(self) -> None:
        """Keep the engine's figures fresh for the heartbeat; kill an engine that hangs."""
        while True:
            await asyncio.sleep(self._heartbeat)
            if not self._up:
                continue
            try:
                self._stats = await self._engine.ping(HANG_SECONDS / 3)
                self._last_pong = time.monotonic()
            except (TimeoutError, TransportClosed):
                silent = time.monotonic() - self._last_pong
                if self._claims and silent > HANG_SECONDS:
                    log.error("the engine answered no ping for %.0f s; killing it", silent)
                    self._engine.kill()

    async def _on_engine_message(self, message: dict[str, Any]) -> None:
        kind, engine_id = message.get("type"), message.get("id")
        claim = self._claims.get(engine_id) if isinstance(engine_id, int) else None
        if claim is None:
            if kind == "error" and engine_id is None:
                log.error(
                    "the engine reported: %s: %s", message.get("kind"), message.get("message")
                )
            return  # a job this worker let go of
        if kind == "progress":
            event = message.get("event")
            if isinstance(event, dict) and event.get("stage") == "rendering":
                self._free_rows(claim)  # decoded: its rows are free for the next job
            await self._post_progress(claim, event)
        elif kind == "result" and claim.kind == "finetune":
            # Held (and touched) while the new version goes to Redis: minutes of training
            # must not be run again by another worker meanwhile.
            self._spawn(self._share_finetune(claim, message), f"share-{claim.job}")
        elif kind in ("result", "error"):
            self._drop(claim)
            self._post(claim, msgspec.msgpack.encode({**message, "id": claim.client_id}))
        else:
            log.warning("unknown message from the engine: %r", kind)

    async def _stop_in_engine(self, claim: Claim) -> None:
        self._drop(claim)
        with contextlib.suppress(TransportClosed):  # or gone with its engine
            await self._engine.send({"type": "cancel", "id": claim.engine_id})

    # Models.
    async def _models_ready(self, claim: Claim, message: dict[str, Any]) -> bool:
        """Fetch the server's version the job names (a composition's model, a fine-tune's
        start) to this disk; False, with the job answered, when it cannot be had."""
        request = message.get("request")
        if not isinstance(request, dict) or self._models is None:
            return True
        model = request.get("model") if claim.kind == "compose" else request.get("start_from")
        if claim.kind not in ("compose", "finetune") or not isinstance(model, str):
            return True
        if claim.kind == "finetune":
            claim.start_from = model
        guild_id = request.get("guild_id")
        for tries in itertools.count():
            try:
                await self._models.ensure_local(
                    model, guild_id=guild_id if isinstance(guild_id, int) else None
                )
                return True
            except BadRequest as exc:
                failure: Exception = exc
            except (RedisError, OSError) as exc:
                if tries + 1 < len(RETRY_SECONDS):
                    await asyncio.sleep(RETRY_SECONDS[tries])
                    continue
                log.error("could not fetch model %s for job %s: %s", model, claim.job, exc)
                failure = EngineError(
                    "the music engine could not fetch this server's model; try again later"
                )
            self._drop(claim)
            self._post(claim, encode(JobFailed.of(claim.client_id, failure)))
            return False
        raise AssertionError("unreachable")

    async def _share_finetune(self, claim: Claim, message: dict[str, Any]) -> None:
        """Publish a fine-tune's new version, apply the retention rule to the server's shared
        versions, and answer with what it pruned there (the engine's own list was of this
        disk, a cache). Retried while Redis is away, like every reply."""
        assert self._models is not None
        result = dict(message.get("result") or {})
        model = result.get("model")
        packed: bytes
        for tries in itertools.count():
            try:
                if not isinstance(model, str):
                    raise TypeError(f"a fine-tune result names no model (received {model!r})")
                guild_id = guild_of(model)
                if result.get("accepted"):
                    await self._models.publish(model, accepted=True)
                else:
                    # Never served, so never shared; its figures are in the result.
                    self._local_models.remove([model])
                protect = {model, *([claim.start_from] if claim.start_from else [])}
                result["pruned"] = await self._models.retain(guild_id, protect)
                packed = msgspec.msgpack.encode(
                    {**message, "id": claim.client_id, "result": result}
                )
            except (RedisError, ConnectionError, TimeoutError) as exc:
                if tries == 0:
                    log.warning("could not share model %s yet (%s); retrying", model, exc)
                await asyncio.sleep(RETRY_SECONDS[min(tries, len(RETRY_SECONDS) - 1)])
                continue
            except (TypeError, ValueError, OSError) as exc:  # its file is gone: not retried
                log.error("fine-tune job %s: %s", claim.job, exc)
                packed = encode(
                    JobFailed.of(claim.client_id, EngineError("the fine-tune's model was lost"))
                )
            break
        self._drop(claim)
        self._post(claim, packed)

    # Claiming.
    def _has_room(self, kind: str) -> bool:
        if not self._up or self._draining:
            return False
        held = [c for c in self._claims.values() if c.kind == kind]
        if kind == "compose":
            return self._held_rows < self._max_rows
        return len(held) < (RENDER_SLOTS if kind == "render" else FINETUNE_SLOTS)

    async def _wait_for_room(self, kind: str) -> bool:
        """Wait until a job of `kind` may be claimed; False once draining."""
        while not self._has_room(kind):
            if self._draining:
                return False
            self._room.clear()
            await self._room.wait()
        return True

    async def _claim_new(self, kind: str) -> None:
        stream = self._keys.stream(kind)
        while await self._wait_for_room(kind):
            answer = await self._redis_call(
                self._redis.xreadgroup(GROUP, self.name, {stream: ">"}, count=1, block=BLOCK_MS)
            )
            for _stream, entries in answer or []:
                for entry_id, fields in entries:
                    await self._take(kind, decoded(entry_id), fields, deliveries=1)

    async def _reclaim(self) -> None:
        """Take over the jobs of workers that stopped refreshing their claims."""
        while not self._draining:
            await asyncio.sleep(self._claim_idle / 2)
            for kind in KINDS:
                stream = self._keys.stream(kind)
                while self._has_room(kind):
                    answer = await self._redis_call(
                        self._redis.xautoclaim(
                            stream, GROUP, self.name, ms(self._claim_idle), "0-0", count=1
                        )
                    )
                    claimed = answer[1] if answer else []
                    if not claimed:
                        break
                    if not claimed[0] or not claimed[0][1]:
                        continue  # deleted from the stream meanwhile
                    entry_id, fields = claimed[0]
                    entry = decoded(entry_id)
                    if any(c.entry == entry for c in self._claims.values()):
                        continue  # its own, refreshed too late (Redis was away): it runs here
                    pending = await self._redis_call(
                        self._redis.xpending_range(stream, GROUP, min=entry, max=entry, count=1)
                    )
                    deliveries = int(pending[0]["times_delivered"]) if pending else 1
                    log.warning(
                        "took over %s job %s (delivery %d)",
                        kind,
                        decoded(fields.get(b"job")),
                        deliveries,
                    )
                    if deliveries > MAX_DELIVERIES:
                        await self._dead_letter(kind, entry, fields, deliveries)
                    else:
                        await self._take(kind, entry, fields, deliveries)

    async def _take(self, kind: str, entry: str, fields: dict[bytes, Any], deliveries: int) -> None:
        try:
            claim = Claim(
                kind,
                self._keys.stream(kind),
                entry,
                decoded(fields[b"job"]),
                decoded(fields[b"reply"]),
                int(fields[b"id"]),
            )
            message = msgspec.msgpack.decode(fields[b"body"])
            if not isinstance(message, dict):
                raise TypeError(f"a job must be a map (received {type(message).__name__})")
        except (KeyError, TypeError, ValueError, msgspec.DecodeError) as exc:
            log.error("dropping malformed %s entry %s: %s", kind, entry, exc)
            await self._redis_call(self._redis.xack(self._keys.stream(kind), GROUP, entry))
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._keys.marker(claim.job))
            pipe.exists(self._keys.cancel(claim.job))
            marker, cancelled = await self._redis_call(pipe.execute()) or (None, 0)
        if marker == b"done" or cancelled:
            self._finish_later(claim, None, "cancelled" if cancelled else "duplicates")
            return
        claim.engine_id = next(self._ids)
        claim.rows = rows_of(kind, message, self._max_rows)
        claim.generation = self._engine.generation
        self._claims[claim.engine_id] = claim
        self._held_rows += claim.rows
        if deliveries > 1:  # the member saw it stop: say it starts again
            self._post(
                claim, encode(JobProgress(claim.client_id, EngineRestarting())), progress=True
            )
        if not await self._models_ready(claim, message):
            return
        try:
            await self._engine.send({**message, "id": claim.engine_id})
        except TransportClosed:
            # The engine died under it: let it go like the others it held.
            self._drop(claim)

    async def _dead_letter(
        self, kind: str, entry: str, fields: dict[bytes, Any], deliveries: int
    ) -> None:
        job = decoded(fields.get(b"job"))
        log.error(
            "%s job %s was delivered %d times and its engine died each time; dead-lettered in %s",
            kind,
            job,
            deliveries - 1,
            self._keys.dead,
        )
        await self._redis_call(
            self._redis.xadd(
                self._keys.dead,
                {
                    "job": job,
                    "kind": kind,
                    "entry": entry,
                    "deliveries": deliveries - 1,
                    "worker": self.name,
                    "body": fields.get(b"body", b""),
                },
                maxlen=DEAD_MAXLEN,
                approximate=True,
            )
        )
        try:
            claim = Claim(
                kind,
                self._keys.stream(kind),
                entry,
                job,
                decoded(fields[b"reply"]),
                int(fields[b"id"]),
            )
        except (KeyError, ValueError):
            await self._redis_call(self._redis.xack(self._keys.stream(kind), GROUP, entry))
            return
        message = JobFailed.of(
            claim.client_id,
            EngineUnavailable(
                "the music engine crashed twice while working on this, so it was set aside; "
                "try again later"
            ),
        )
        self._finish_later(claim, encode(message), "dead")

    async def _touch(self) -> None:
        """Refresh this worker's claims, so nobody takes a running job; stop the jobs that
        were taken over (this worker stalled) or that their client gave up."""
        while True:
            await asyncio.sleep(self._claim_idle / 4)
            claims = list(self._claims.values())
            if not claims:
                continue
            for kind in KINDS:
                mine = {c.entry: c for c in claims if c.kind == kind}
                if not mine:
                    continue
                answer = await self._redis_call(
                    self._touch_script(
                        keys=[self._keys.stream(kind)], args=[GROUP, self.name, *mine]
                    )
                )
                lost, gone = answer if answer else ([], [])
                for entry in lost:
                    claim = mine[decoded(entry)]
                    log.warning(
                        "job %s was taken over by another worker; stopping it here", claim.job
                    )
                    await self._stop_in_engine(claim)
            await self._stop_cancelled(claims)

    async def _stop_cancelled(self, claims: list[Claim]) -> None:
        keys = [self._keys.cancel(c.job) for c in claims]
        keys += [self._keys.marker(c.job) for c in claims]
        values = await self._redis_call(self._redis.mget(keys))
        if not values:
            return
        cancelled, markers = values[: len(claims)], values[len(claims) :]
        for claim, flag, marker in zip(claims, cancelled, markers, strict=True):
            if claim.engine_id not in self._claims:
                continue
            if flag or marker == b"done":
                # Given up by its client, or answered by another worker (that took it over
                # while this one stalled): the engine stops it, nobody is told.
                await self._stop_in_engine(claim)
                self._finish_later(claim, None, "cancelled" if flag else "duplicates")

    def _drop(self, claim: Claim) -> None:
        if self._claims.pop(claim.engine_id, None) is not None:
            self._free_rows(claim)
            self._room.set()

    def _free_rows(self, claim: Claim) -> None:
        self._held_rows -= claim.rows
        claim.rows = 0
        self._room.set()

    # Replies.
    def _post(self, claim: Claim, packed: bytes, *, progress: bool = False) -> None:
        """Post an encoded message (engine.api.schema, with the client's job id)."""
        if progress:
            self._spawn(self._post_progress_packed(claim, packed), f"progress-{claim.job}")
        else:
            self._finish_later(claim, packed, "posted")

    async def _post_progress(self, claim: Claim, event: Any) -> None:
        packed = msgspec.msgpack.encode({"type": "progress", "id": claim.client_id, "event": event})
        await self._post_progress_packed(claim, packed)

    async def _post_progress_packed(self, claim: Claim, packed: bytes) -> None:
        if self._redis_away is not None:
            return  # cosmetic: the reply is what must get through
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(claim.reply, {"m": packed}, maxlen=REPLY_MAXLEN, approximate=True)
                pipe.pexpire(claim.reply, ms(REPLY_TTL_SECONDS))
                await asyncio.wait_for(pipe.execute(), PROGRESS_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("progress of job %s dropped: %s", claim.job, exc)

    def _finish_later(self, claim: Claim, packed: bytes | None, counter: str) -> None:
        task = asyncio.create_task(self._finish(claim, packed, counter), name=f"finish-{claim.job}")
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(self, claim: Claim, packed: bytes | None, counter: str) -> None:
        """Post the reply and acknowledge the entry, once: retried until Redis takes it."""
        for tries in itertools.count():
            try:
                posted = await self._finish_script(
                    keys=[
                        self._keys.marker(claim.job),
                        claim.reply,
                        claim.stream,
                        self._keys.counters,
                    ],
                    args=[
                        GROUP,
                        claim.entry,
                        packed or b"",
                        ms(JOB_TTL_SECONDS),
                        ms(REPLY_TTL_SECONDS),
                        REPLY_MAXLEN,
                        counter,
                    ],
                )
            except (RedisError, OSError) as exc:
                if tries == 0:
                    log.warning("could not post job %s yet (Redis: %s); retrying", claim.job, exc)
                await asyncio.sleep(RETRY_SECONDS[min(tries, len(RETRY_SECONDS) - 1)])
                continue
            if not posted:
                log.info(
                    "job %s was answered already (by another delivery of it); dropped this reply",
                    claim.job,
                )
            elif packed is not None:
                log.debug("job %s answered", claim.job)
            return

    # Heartbeats and Redis.
    async def _heartbeats(self) -> None:
        """Say this worker is alive, with its engine's figures, for clients to read."""
        while True:
            stats = self._stats if self._up else {}
            fields: dict[str, Any] = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "state": self._state,
                "engine_pid": self._engine.pid or 0,
                "claims": len(self._claims),
                "stats": msgspec.msgpack.encode(stats) if stats else b"",
            }
            args: list[Any] = [self.name, ms(self._worker_ttl * 3)]
            for key, value in fields.items():
                args += [key, value]
            await self._redis_call(
                self._heartbeat_script(
                    keys=[self._keys.workers, self._keys.worker(self.name)], args=args
                )
            )
            await asyncio.sleep(self._heartbeat)

    async def _ensure_groups(self) -> None:
        for kind in KINDS:
            try:
                # From the stream's start: jobs queued while Redis had lost the group count.
                await self._redis.xgroup_create(
                    self._keys.stream(kind), GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _redis_call(self, call: Awaitable[Any]) -> Any:
        """The call's answer, or None when Redis is away (after a pause, so loops retry
        calmly); a lost consumer group is created again."""
        try:
            answer = await call
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning(
                "Redis lost the consumer groups (restarted without its data?); creating them again"
            )
            await self._redis_call(self._ensure_groups())
            return None
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            if self._redis_away is None:
                self._redis_away = now
                log.warning("lost Redis at %s (%s); retrying", redacted(self._url), exc)
            away = now - self._redis_away
            await asyncio.sleep(RETRY_SECONDS[-1] if away > 5 else RETRY_SECONDS[0])
            return None
        if self._redis_away is not None:
            log.info("Redis answers again after %.1f s", time.monotonic() - self._redis_away)
            self._redis_away = None
        return answer

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A bug here: stop rather than run on half-working; the jobs go to others.
            log.error("worker task %s failed; stopping", task.get_name(), exc_info=exc)
            self._fatal(EXIT_ENGINE)
