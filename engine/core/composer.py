"""The offline front end: compositions in this process, through the same engine core the
server drives (`python -m engine compose`, the benchmarks, the tests).

`Composer.compose` runs one composition's stages in turn on the caller's thread: prepare (the
seed read here), step the core until its rows have decoded, render with this composer's
renderer. `plan`, `decode` and `finish` are those stages one at a time, for measuring them
apart (the plan and render stage functions themselves, a decode loop of one DecodeBatch).
Not thread-safe: one per thread.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from engine.api.config import WorkLimits
from engine.api.errors import BadRequest
from engine.api.limits import DEFAULT_MAX_ROWS
from engine.api.schema import ComposeRequest, ComposeResult
from engine.audio.render import Renderer
from engine.core.engine_core import EngineCore, InProcessSeeds, Output, ScheduledJob
from engine.core.model_cache import ModelCache
from engine.generation.keep_seed import known_programs
from engine.generation.sample import Row, generate
from engine.generation.stages import (
    ENCODER_THREADS,
    Plan,
    plan_composition,
    seed_seconds,
    to_score,
)
from engine.model.checkpoint import BASE_CHECKPOINT
from engine.model.device import pick_device

# What callers of the offline engine use beside it, from one place.
__all__ = [
    "ENCODER_THREADS",
    "ComposeRequest",
    "ComposeResult",
    "Composer",
    "Plan",
    "seed_seconds",
    "to_score",
    "warm_up",
]


class Composer:
    """The model, tokenizer, grammar and synth of one checkpoint, and an engine core."""

    def __init__(
        self,
        checkpoint: Path = BASE_CHECKPOINT,
        *,
        device: str | None = None,
        renderer: Renderer | None = None,
        limits: WorkLimits | None = None,
    ) -> None:
        self.device = pick_device(device)
        # Offline there is only the base model: no room is kept for others.
        self.models = ModelCache(checkpoint, self.device, budget_bytes=0, resolve=_base_only)
        base = self.models.base
        self.model, self.tokenizer, self.grammar = base.model, base.tokenizer, base.grammar
        self.known = known_programs(base.coverage)  # the instruments it learned to write
        self.renderer = renderer or Renderer()
        self.limits = limits or WorkLimits()
        self._outputs: dict[int, Output] = {}
        self._ids = itertools.count(1)
        self.core = EngineCore(
            self.models, max_rows=DEFAULT_MAX_ROWS["cpu"], limits=self.limits, emit=self._collect
        )

    def close(self) -> None:
        self.core.close()
        self.renderer.close()

    def compose(
        self, seed_midi: bytes | None, params: ComposeRequest, *, max_audio_bytes: int | None = None
    ) -> ComposeResult:
        """One composition through every stage of the core; BadSeed or BadRequest (before
        any decoding) when the seed is unfit or the work over this composer's limits."""
        job = ScheduledJob(
            next(self._ids), params, seed_midi=seed_midi, max_audio_bytes=max_audio_bytes
        )
        self.core.add(job)
        self.core.prepare_next(InProcessSeeds())
        while not job.ended and not self.core.decoded.pending:
            self.core.step()
        if not job.ended:
            self.core.render_next(self.renderer)
        output = self._outputs.pop(job.id)
        if isinstance(output, BaseException):
            raise output
        assert isinstance(output, ComposeResult), output
        return output

    def _collect(self, job: ScheduledJob, output: Output) -> None:
        if job.ended:  # progress is for members watching; offline nobody is
            self._outputs[job.id] = output

    # The stages one at a time (benchmarks measure them apart).
    def plan(
        self, seed_midi: bytes | None, params: ComposeRequest, limits: WorkLimits | None = None
    ) -> Plan:
        return plan_composition(
            self.tokenizer, self.grammar, seed_midi, params, limits or self.limits, known=self.known
        )

    def decode(self, plan: Plan) -> list[Row]:
        started = time.perf_counter()
        rows = generate(
            self.model,
            self.grammar,
            plan.prompt.ids,
            plan.params.candidates,
            plan.options,
            seed=plan.params.seed,
            guidance=plan.guidance,
            first_onset=plan.prompt.first_onset,
        )
        plan.timings["sample"] = time.perf_counter() - started
        return rows

    def finish(
        self, plan: Plan, rows: list[Row], *, max_audio_bytes: int | None = None
    ) -> ComposeResult:
        job = ScheduledJob(
            0,
            plan.params,
            plan=plan,
            rows=rows,
            max_audio_bytes=max_audio_bytes,
            model=self.models.acquire(None),
        )
        return self.core.render(job, self.renderer)


def _base_only(model: str) -> Path:
    raise BadRequest(f"offline compositions use the base model only (received model {model!r})")


def warm_up(composer: Composer) -> None:
    """The engine core's warm-up (the server's too): one tiny composition, rendered once."""
    composer.core.warm_up([composer.renderer])
