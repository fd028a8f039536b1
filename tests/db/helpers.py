"""Small builders shared by the storage tests."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Composition, NewCandidate, record_composition

# Realistic snowflakes: large, and one above 2**53 (where JavaScript and floats lose digits).
GUILD_A = 1_105_000_000_000_000_001
GUILD_B = 1_105_000_000_000_000_002
CHANNEL = 1_105_000_000_000_000_100
ALICE = 1_105_000_000_000_001_001
BOB = 1_105_000_000_000_001_002

# Every async test of tests/db runs on the session loop, like its async fixtures.
ON_SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")

_counter = itertools.count(1)


def fake_midi(label: str = "") -> bytes:
    """Distinct bytes standing for a MIDI file: storage keeps bytes, it does not parse them."""
    return b"MThd\x00\x00\x00\x06" + f"{label}#{next(_counter)}".encode()


async def make_composition(
    session: AsyncSession,
    guild_id: int = GUILD_A,
    *,
    candidates: int = 3,
    requester_id: int = ALICE,
    **kwargs: object,
) -> Composition:
    return await record_composition(
        session,
        guild_id=guild_id,
        channel_id=CHANNEL,
        requester_id=requester_id,
        candidates=[
            NewCandidate(midi=fake_midi(f"cand{i}"), seconds=8.0 + i, notes=20 + i)
            for i in range(candidates)
        ],
        params=kwargs.pop("params", {"bars": 4, "temperature": 1.0}),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )
