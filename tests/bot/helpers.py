"""What the bot tests share: markers, the bundled seeds, and looks into the database."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import simcord
import soundfile
from sqlalchemy import func, select

from bot.app import MotifBot
from bot.db import Candidate, Composition, Seed, Vote

EXAMPLES = Path(__file__).resolve().parents[2] / "engine" / "examples"
MOTIF = (EXAMPLES / "motif.mid").read_bytes()
WALTZ = (EXAMPLES / "waltz-violin.mid").read_bytes()
BAND = (EXAMPLES / "band.mid").read_bytes()

# The async tests run on the session loop (the engine client's); composing on this CPU takes
# seconds, so SimCord waits longer than its default for the bot to settle.
BOT_TEST = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.simcord(settle_timeout=120.0),
]

# Small requests keep the suite fast; the engine's own tests cover the big ones.
SMALL = {"bars": 4, "candidates": 2}


async def count(bot: MotifBot, model: type) -> int:
    async with bot.sessions() as session, session.begin():
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def counts(bot: MotifBot) -> dict[str, int]:
    return {m.__name__: await count(bot, m) for m in (Composition, Candidate, Vote, Seed)}


def decode_ogg(data: bytes) -> np.ndarray:
    """The samples of an OGG file (soundfile raises if it is not one)."""
    samples, rate = soundfile.read(io.BytesIO(data))
    assert rate > 0
    return np.asarray(samples)


def assert_audible(data: bytes) -> None:
    samples = decode_ogg(data)
    assert len(samples) > 0
    assert float(np.sqrt(np.mean(np.square(samples)))) > 1e-4, "the clip is silent"


async def read(attachment: object) -> bytes:
    return await attachment.read()  # type: ignore[attr-defined, no-any-return]


def labels(message: simcord.ResponseMessage) -> list[str]:
    out = []
    for row in message.components:
        for component in row.get("components", []):
            if component.get("label"):
                out.append(component["label"])
    return out


def reply(result: simcord.InteractionResult) -> simcord.ResponseMessage:
    """The bot's last word on an interaction (after a deferral, Discord turns the first
    follow-up into the response)."""
    message = result.followups[-1] if result.followups else result.response
    assert message is not None, f"the bot did not answer: {result!r}"
    return message


def refused_privately(result: simcord.InteractionResult) -> bool:
    """The bot's first and only answer was a private message (no public "thinking...")."""
    return (
        result.ephemeral
        and not result.deferred
        and result.response is not None
        and result.response.ephemeral
        and not result.followups
    )


def public_edits(env: simcord.Env) -> list[str]:
    """What the bot wrote into its public "thinking..." messages (progress, results,
    or a public "This did not work out.")."""
    return [
        (r.json or {}).get("content") or ""
        for r in env.http_requests
        if r.method == "PATCH" and r.path.endswith("/messages/@original")
    ]


def composition_id(message: simcord.ResponseMessage) -> int:
    """The composition a message shows (its embed's title is "Composition #N")."""
    title = message.embeds[0].title or ""
    return int(title.removeprefix("Composition #"))


def raised(env: simcord.Env) -> list[type[BaseException]]:
    """The errors the commands raised since the last look (and were answered by the bot's
    error handler): SimCord fails a test whose errors nobody looked at."""
    return [type(getattr(error, "original", error)) for error in env.errors]
