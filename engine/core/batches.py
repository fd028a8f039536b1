"""The decode step: every running composition's rows, one DecodeBatch per model.

Execution only: the scheduler (engine.core.scheduler) decides which compositions run; this
prefills them into their model's batch and samples one token for every row of every batch per
step. Used by the engine core's one thread, so it needs no lock.
"""

from __future__ import annotations

import logging
from typing import Protocol

import torch

from engine.core.model_cache import LoadedModel
from engine.generation.sample import DecodeBatch, Row
from engine.generation.stages import Plan

log = logging.getLogger(__name__)


class Decodable(Protocol):
    """What a composition brings to the batch (engine.core.engine_core.ScheduledJob)."""

    model: LoadedModel | None
    plan: Plan | None
    rows: list[Row]


class DecodeBatches:
    def __init__(self) -> None:
        self._batches: dict[LoadedModel, DecodeBatch] = {}
        self.steps = 0
        self.tokens = 0  # one per row per step: what "decode tokens/s" is measured in

    def start(self, job: Decodable) -> None:
        """Prefill the job's prompt once and add a row per candidate to its model's batch;
        they decode from the next step on. The rows draw from one generator of the job's own,
        so its music depends on its sampling seed only, not on who shares the batch."""
        assert job.plan is not None and job.model is not None
        seed = job.plan.params.seed
        generator = torch.Generator()
        generator.manual_seed(seed if seed is not None else torch.seed())
        job.rows = [
            Row(
                request=job,
                generator=generator,
                options=job.plan.options,
                guidance=job.plan.guidance,
            )
            for _ in range(job.plan.params.candidates)
        ]
        batch = self._batches.get(job.model)
        if batch is None:
            batch = DecodeBatch(job.model.model, job.model.grammar)
        batch.add(job.plan.prompt.ids, job.rows, first_onset=job.plan.prompt.first_onset)
        self._batches[job.model] = batch

    def step(self) -> tuple[list[Row], dict[object, BaseException]]:
        """One token for every row: the rows that finished, and the jobs whose model's step
        failed (a bug, not a bad request: that batch is dropped, the other models go on)."""
        finished: list[Row] = []
        failed: dict[object, BaseException] = {}
        for model, batch in list(self._batches.items()):
            rows = len(batch)
            try:
                finished += batch.step()
            except Exception as exc:
                log.exception("decode step failed for model %s", model.key)
                failed |= dict.fromkeys((row.request for row in batch.rows), exc)
                del self._batches[model]
                continue
            self.steps += 1
            self.tokens += rows
            if not len(batch):
                del self._batches[model]
        return finished, failed

    def cancel(self, job: Decodable) -> None:
        """Drop the job's rows that still decode."""
        if job.model is None or (batch := self._batches.get(job.model)) is None:
            return
        batch.cancel(job)
        if not len(batch):
            del self._batches[job.model]

    def bars_written(self) -> dict[object, int]:
        """Bars each job's decoding rows have written to their end, summed over its rows."""
        done: dict[object, int] = {}
        for batch in self._batches.values():
            assert batch.gstate is not None
            # A row is in the bar it opened last: the ones before it are written.
            for row, opened in zip(batch.rows, batch.gstate.bars.tolist(), strict=True):
                done[row.request] = done.get(row.request, 0) + max(0, opened - 1)
        return done

    def clear(self) -> None:
        self._batches.clear()
