"""A jam's own options (how many rounds, how long each vote runs) and the ComposeJob of each
of its rounds. The composition options (bars, candidates, ...) are /compose's."""

from __future__ import annotations

from typing import Any

from bot.services.composing import ComposeJob
from engine.api.limits import Range

# A music night: four rounds of two minutes is a piece in about ten minutes.
ROUNDS = Range(1, 12)
DEFAULT_ROUNDS = 4
ROUND_MINUTES = Range(1, 30, " min")
DEFAULT_ROUND_MINUTES = 2


def round_job(
    params: dict[str, Any],
    *,
    number: int,
    seed_midi: bytes | None,
    seed_id: int | None,
    parent_candidate_id: int | None,
) -> ComposeJob:
    """Round `number`'s request: the jam's options; its seed is the last round's winner (a
    continuation, as the Continue button makes one) or, for round 1, the jam's seed."""
    if number > 1:
        label = f"jam round {number}: continues round {number - 1}'s winner"
        return ComposeJob.from_params(
            {**params, "include_seed": False, "seed_label": label},
            seed_midi=seed_midi,
            parent_candidate_id=parent_candidate_id,
        )
    return ComposeJob.from_params(params, seed_midi=seed_midi, seed_id=seed_id)
