"""EngineWorkLimits on its own: what SimCord cannot show in a few interactions."""

from __future__ import annotations

import time

import pytest

from bot.services.limits import EngineWorkLimits, TooManyInFlight, Work


async def test_the_cooldown_map_forgets_members_whose_cooldown_is_over(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    limits = EngineWorkLimits(cooldown_seconds=10, max_inflight_per_guild=5)
    for member in range(1, 1001):
        async with limits.slot(1, member) as slot:
            slot.start()
        clock[0] += 0.001
    assert limits.remembered_members == 1000  # all within their cooldown
    clock[0] += 10
    async with limits.slot(1, 5000) as slot:
        slot.start()
    # Only the member who just started is remembered; the thousand before are forgotten.
    assert limits.remembered_members == 1


async def test_the_cap_message_names_what_is_running() -> None:
    limits = EngineWorkLimits(cooldown_seconds=0, max_inflight_per_guild=3)
    async with (
        limits.slot(1, 1, Work.COMPOSITION),
        limits.slot(1, 2, Work.PIECE_EXPORT),
        limits.slot(1, 3, Work.PIECE_EXPORT),
    ):
        with pytest.raises(TooManyInFlight) as refused:
            await limits.slot(1, 4, Work.SEED_PLAY).__aenter__()
    assert "already has 1 composition and 2 piece exports under way" in refused.value.message
    assert limits.inflight(1) == 0


async def test_work_nobody_pressed_for_counts_in_the_cap_but_sets_no_cooldown() -> None:
    limits = EngineWorkLimits(cooldown_seconds=10, max_inflight_per_guild=1)
    async with limits.slot(1, None, Work.JAM_ROUND) as slot:
        slot.start()
        with pytest.raises(TooManyInFlight, match="1 jam round under way"):
            async with limits.slot(1, 7):
                pass
    assert limits.remembered_members == 0
    async with limits.slot(1, 7) as slot:  # the member's own cooldown was never touched
        slot.start()
