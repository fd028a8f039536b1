"""Check what a member gave before answering, so that a refusal is private from its first word.

A deferral with a public "thinking..." message cannot be made private afterwards: an error
then has to replace a message the channel already saw. Reading a seed (its size, its type,
a download of a few KB, the seed reader) or a few rows takes well under Discord's 3 s, so
commands do it first and defer only once it passed. A check that is slow (Discord's CDN
stalls) defers when its time is up and goes on; only then can a refusal follow a public
"thinking..." (errors.report removes it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

import discord

from bot.errors import defer_privately

T = TypeVar("T")

# Discord wants a first answer within 3 s of the interaction; the rest is room for the
# deferral's own round trip and a busy event loop.
QUICK_CHECK_SECONDS = 1.5


async def check_then_defer(
    interaction: discord.Interaction,
    check: Awaitable[T],
    *,
    ephemeral: bool = False,
    budget: float = QUICK_CHECK_SECONDS,
) -> T:
    """Await `check`, then defer (publicly unless `ephemeral`) and return what it returned.
    When `check` raises within `budget` seconds, nothing has been answered: the error handler
    answers privately. A slower check defers first, then goes on."""
    task = asyncio.ensure_future(check)
    try:
        done, _ = await asyncio.wait({task}, timeout=budget)
        if not done:
            await _defer(interaction, ephemeral)
        result = await task
    except BaseException:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        raise
    if not interaction.response.is_done():
        await _defer(interaction, ephemeral)
    return result


async def _defer(interaction: discord.Interaction, ephemeral: bool) -> None:
    if ephemeral:
        await defer_privately(interaction)
    else:
        await interaction.response.defer(thinking=True)
