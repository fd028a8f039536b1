"""The ComposeJob of each of a jam's rounds. The jam's own options (how many rounds, how long
each vote runs) are in engine.api.limits; the composition options (bars, ...) are /compose's."""

from __future__ import annotations

from typing import Any

from bot.services.composing import ComposeJob


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
