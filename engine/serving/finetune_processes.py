"""Fine-tunes inside the engine: each a child process (`python -m engine finetune`) at lower
CPU priority, so compositions keep flowing while a server's model trains.

One run per server at a time. The child speaks the engine's own wire on its stdout
(engine.api.schema, in frames, as the job: `--wire-job`): its progress events go on to the
client, its result or error is the job's once it has exited; cancelling the job stops the child
(SIGTERM, then SIGKILL). Versions are named by id and kept by engine.serving.model_store; after
a run, its retention rule deletes the server's versions it does not keep (never the start nor
the new one) and the result lists their ids, so the client only learns the outcome.
The server's MIDI is copied for the child into <data dir>/finetune/<guild id>/<stamp>-<id>/,
removed when the run ends however it ends; an engine that died mid-run cannot remove it, so
every engine sweeps, at its start, the folders no live engine owns (engine.serving.owned_dirs).
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from engine.api.child_env import child_environment
from engine.api.errors import BadRequest, EngineError
from engine.api.limits import default_finetune_threads
from engine.api.schema import (
    FinetuneProgress,
    FinetuneRequest,
    FinetuneResult,
    FromEngine,
    JobDone,
    JobFailed,
    JobProgress,
    decode_from_engine,
)
from engine.api.transport import READ_CHUNK, FrameReader
from engine.serving.model_store import ModelStore
from engine.serving.owned_dirs import OwnedDir, sweep

log = logging.getLogger(__name__)

NICENESS = 10  # below composing, which runs at the engine's own priority
STOP_GRACE_SECONDS = 10.0
CANCELLED_EXIT = 130
BAD_DATA_EXIT = 2


@dataclass(eq=False)
class FinetuneProcess:
    id: int
    guild_id: int
    workdir: OwnedDir  # the server's MIDI for this run; removed whatever the run's end
    model: str  # the new version's id
    out: Path  # its file
    start_from: Path | None
    protect: set[str]  # ids that survive pruning whatever the rule: the start and the new one
    process: subprocess.Popen | None = None
    cancelled: bool = False
    result: FinetuneResult | None = None  # what the child sent
    error: BaseException | None = None  # or why it could not run
    last_percent: float = -1.0
    stderr_tail: list[str] = field(default_factory=list)
    watcher: threading.Thread | None = None


class FinetuneProcesses:
    def __init__(
        self,
        data_dir: Path,
        store: ModelStore,
        send: Callable[[FromEngine], None],
        *,
        python: str = sys.executable,
        threads: int | None = None,
    ) -> None:
        self._data_dir = Path(data_dir).resolve()
        self._store = store
        self._send = send
        self._python = python
        self._threads = threads or default_finetune_threads()
        self._lock = threading.Lock()
        self._jobs: dict[int, FinetuneProcess] = {}
        self._sweep()

    @property
    def running(self) -> int:
        return len(self._jobs)

    def start(self, job_id: int, request: FinetuneRequest) -> None:
        """Start the child; BadRequest if the server already has a run or the version to
        start from is not one of the server's own."""
        start_from = (
            None
            if request.start_from is None
            else self._store.find(request.start_from, guild_id=request.guild_id)
        )
        with self._lock:
            if any(j.guild_id == request.guild_id for j in self._jobs.values()):
                raise BadRequest("this server's model is already being fine-tuned")
            stamp = time.strftime("%Y%m%d-%H%M%S")
            workdir = OwnedDir.create(self._workdirs / str(request.guild_id) / f"{stamp}-{job_id}")
            model, out = self._store.new(request.guild_id, f"{stamp}-{job_id}")
            job = FinetuneProcess(
                id=job_id,
                guild_id=request.guild_id,
                workdir=workdir,
                model=model,
                out=out,
                start_from=start_from,
                protect={model, *([request.start_from] if request.start_from else [])},
            )
            self._jobs[job_id] = job
        try:
            self._write_data(job.workdir.path / "data", request)
            job.process = self._spawn(job, request.steps)
        except Exception:
            with self._lock:
                self._jobs.pop(job_id, None)
            job.workdir.remove()
            raise
        job.watcher = threading.Thread(
            target=self._watch, args=(job,), name=f"finetune-{job_id}", daemon=True
        )
        job.watcher.start()

    def cancel(self, job_id: int) -> bool:
        """Stop the job if it is one of ours; True if it was."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return False
        job.cancelled = True
        self._stop(job)
        return True

    def close(self) -> None:
        """Stop every run and wait (a bounded time) for its child to exit and its work folder
        to go; one that outlives the wait is swept at the next start."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancelled = True
            self._stop(job)
        for job in jobs:
            if job.watcher is not None:
                job.watcher.join(STOP_GRACE_SECONDS + 5.0)

    @property
    def _workdirs(self) -> Path:
        return self._data_dir / "finetune"

    def _sweep(self) -> None:
        """Remove the work folders of runs no live engine owns (this engine owns none yet):
        an engine that died mid-run left its server's MIDI there."""
        if not self._workdirs.is_dir():
            return
        for guild in sorted(self._workdirs.iterdir()):
            for folder in sweep(guild) if guild.is_dir() else ():
                log.info("removed the work folder of a fine-tune that did not end: %s", folder)

    def interrupt(self, exc: BaseException) -> None:
        """Stop every run and answer each with `exc` (the engine is stopping)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            self._reply_error(job, exc)
            job.cancelled = True
            self._stop(job)

    # Starting.
    @staticmethod
    def _write_data(folder: Path, request: FinetuneRequest) -> None:
        pieces = folder / "pieces"
        pieces.mkdir(parents=True)
        for i, midi in enumerate(request.pieces):
            (pieces / f"{i:05d}.mid").write_bytes(midi)
        for i, pair in enumerate(request.pairs):
            pair_dir = folder / "pairs" / f"{i:05d}"
            pair_dir.mkdir(parents=True)
            (pair_dir / "chosen.mid").write_bytes(pair.chosen)
            (pair_dir / "rejected.mid").write_bytes(pair.rejected)

    def _spawn(self, job: FinetuneProcess, steps: int | None) -> subprocess.Popen:
        argv = [
            self._python,
            "-m",
            "engine",
            "finetune",
            "--data",
            str(job.workdir.path / "data"),
            "--out",
            str(job.out),
            "--data-dir",
            str(self._data_dir),
            "--wire-job",
            str(job.id),
            "--nice",
            str(NICENESS),
        ]
        if job.start_from is not None:
            argv += ["--from", str(job.start_from)]
        if steps is not None:
            argv += ["--steps", str(steps)]
        # Only what a fine-tune needs: the engine may have been started with the bot's whole
        # environment (engine.api.child_env says why that matters).
        env = child_environment({"MOTIF_THREADS": str(self._threads)})
        log.info("fine-tune %d for guild %d: %s", job.id, job.guild_id, " ".join(argv[1:]))
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
        )

    # Watching (one thread per job).
    def _watch(self, job: FinetuneProcess) -> None:
        assert job.process is not None
        stderr = threading.Thread(target=self._read_stderr, args=(job,), daemon=True)
        stderr.start()
        code: int | None = None
        try:
            self._read_wire(job)
            code = job.process.wait()
            stderr.join()
        except Exception:
            log.exception("fine-tune %d: watching the child failed", job.id)
        finally:
            # Done before replying: the server may start its next run as soon as it hears.
            with self._lock:
                self._jobs.pop(job.id, None)
            job.workdir.remove()
        if code is None:
            self._reply_error(job, EngineError("the fine-tune failed in the engine"))
        else:
            self._finish(job, code)

    def _read_stderr(self, job: FinetuneProcess) -> None:
        assert job.process is not None and job.process.stderr is not None
        for line in io.TextIOWrapper(job.process.stderr, errors="replace"):
            line = line.rstrip()
            log.info("fine-tune %d: %s", job.id, line)
            job.stderr_tail = [*job.stderr_tail[-19:], line]

    def _read_wire(self, job: FinetuneProcess) -> None:
        """The child's messages until it closes its stdout (it exits)."""
        assert job.process is not None and job.process.stdout is not None
        frames = FrameReader()
        while chunk := job.process.stdout.read1(READ_CHUNK):
            frames.feed(chunk)
            while (data := frames.next()) is not None:
                try:
                    self._on_message(job, decode_from_engine(data))
                except msgspec.MsgspecError as exc:
                    log.warning("fine-tune %d sent a malformed message: %s", job.id, exc)

    def _on_message(self, job: FinetuneProcess, message: FromEngine) -> None:
        if isinstance(message, JobProgress) and isinstance(message.event, FinetuneProgress):
            event = message.event
            if event.percent - job.last_percent >= 1.0 or event.percent >= 100:
                job.last_percent = event.percent
                if not job.cancelled:
                    self._send(JobProgress(job.id, event))
        elif isinstance(message, JobDone) and isinstance(message.result, FinetuneResult):
            job.result = message.result
        elif isinstance(message, JobFailed):
            job.error = message.exception()
        else:
            log.warning("fine-tune %d sent an unexpected %s", job.id, type(message).__name__)

    def _finish(self, job: FinetuneProcess, code: int) -> None:
        if job.cancelled:
            log.info("fine-tune %d cancelled", job.id)
            job.out.unlink(missing_ok=True)
            return
        if code == 0 and job.result is not None:
            # The engine, not the child, knows where the checkpoint lives and what it pruned.
            result = msgspec.structs.replace(
                job.result, model=job.model, pruned=self._store.retain(job.guild_id, job.protect)
            )
            self._send(JobDone(job.id, result))
        elif code == BAD_DATA_EXIT:
            self._reply_error(job, job.error or BadRequest("the data could not be used"))
        else:
            log.error("fine-tune %d exited with %s:\n%s", job.id, code, "\n".join(job.stderr_tail))
            self._reply_error(
                job, EngineError(f"the fine-tune stopped with an error (exit status {code})")
            )

    def _stop(self, job: FinetuneProcess) -> None:
        process = job.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        threading.Thread(target=self._kill_later, args=(process,), daemon=True).start()

    @staticmethod
    def _kill_later(process: subprocess.Popen) -> None:
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()

    def _reply_error(self, job: FinetuneProcess, exc: BaseException) -> None:
        if not job.cancelled:
            self._send(JobFailed.of(job.id, exc))
