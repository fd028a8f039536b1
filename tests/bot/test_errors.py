"""Errors nobody planned for: logged with their traceback, and the member gets an apology."""

from __future__ import annotations

import logging

import discord
import pytest

from bot.errors import APOLOGY
from tests.bot.helpers import BOT_TEST, raised, reply

pytestmark = BOT_TEST


async def test_an_unexpected_error_is_logged_and_answered_with_an_apology(
    world, caplog: pytest.LogCaptureFixture
) -> None:
    # Discord refuses the bot's first answer (a bug in the bot's request, as far as it knows).
    world.env.inject_error("POST", "/interactions/*/callback", status=400, code=50035)
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        result = await world.alice.slash(world.channel, "top")
    assert reply(result).ephemeral and reply(result).content == APOLOGY
    assert raised(world.env) == [discord.HTTPException]
    (record,) = [r for r in caplog.records if r.getMessage() == "unexpected error in /top"]
    assert record.exc_info is not None and record.exc_info[0] is discord.HTTPException
