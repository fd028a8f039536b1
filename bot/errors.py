"""Every error a member can cause becomes one friendly ephemeral sentence, here and only here.

Cogs and buttons raise; `report` answers. Domain errors carry their own text (the engine's
BadSeed/BadRequest, storage's StorageError.message, the bot's UserFacingError); anything else
is a bug: it is logged with its traceback and the member gets an apology.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Mapping

import discord
from discord import app_commands

from bot.db.errors import StorageError
from engine.api.errors import BadRequest, BadSeed, EngineUnavailable

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on our side. It has been logged; please try again later."
ENGINE_DOWN = (
    "The composer is not available right now (it is restarting or overloaded). "
    "Please try again in a minute."
)


class UserFacingError(Exception):
    """An expected refusal (a limit, a bad file, a missing permission) with text for the member."""

    # The `reason` label of a composition that ended with it (bot.metrics.FAILURE_REASONS).
    metrics_reason = "refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def friendly_message(error: BaseException) -> str | None:
    """The text to show for an expected error; None for a bug."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, UserFacingError | StorageError):
        return error.message
    if isinstance(error, BadSeed):
        return f"That seed cannot be used: {error}."
    if isinstance(error, BadRequest):
        return f"That request cannot be composed: {error}."
    if isinstance(error, EngineUnavailable):
        return ENGINE_DOWN
    if isinstance(error, app_commands.NoPrivateMessage):
        return "Motif works in servers, not in direct messages."
    if isinstance(error, app_commands.MissingPermissions):
        names = " and ".join(permission_label(p) for p in error.missing_permissions)
        return f"You need the {names} permission for that."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.0f} s."
    return None


# Discord's own labels where they differ from the API's names.
_PERMISSION_LABELS = {"manage_guild": "Manage Server"}


def permission_label(name: str) -> str:
    """The name a member sees in Discord's settings: manage_guild -> Manage Server."""
    return _PERMISSION_LABELS.get(name, name.replace("_", " ").title())


# Set on an interaction that was deferred ephemerally, so `report` knows its thinking message
# is private already.
_DEFERRED_PRIVATELY = "motif_deferred_privately"


async def defer_privately(interaction: discord.Interaction) -> None:
    """Defer with a "thinking..." message only the member sees."""
    interaction.extras[_DEFERRED_PRIVATELY] = True
    await interaction.response.defer(ephemeral=True, thinking=True)


async def report(interaction: discord.Interaction, error: BaseException) -> None:
    """Answer `interaction` with the error, ephemerally; log it when it is a bug."""
    text = friendly_message(error)
    if text is None:
        original = getattr(error, "original", error)
        log.error(
            "unexpected error in %s",
            _describe(interaction),
            exc_info=(type(original), original, original.__traceback__),
        )
        text = APOLOGY
    try:
        await _send_ephemeral(interaction, text)
    except discord.HTTPException:
        # The interaction expired or was deleted: nothing left to tell the member.
        log.warning("could not report an error to %s", _describe(interaction), exc_info=True)


async def _send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    response = interaction.response
    if not response.is_done():
        await response.send_message(text, ephemeral=True)
        return
    if response.type is discord.InteractionResponseType.deferred_channel_message and not (
        interaction.extras.get(_DEFERRED_PRIVATELY)
    ):
        # A public "thinking..." message must not turn into a public error. While it thinks,
        # a follow-up would replace it (keeping it public), so: end the thinking, tell only
        # the member, then remove the public message. (Commands check what they can before
        # deferring, so this is the rare refusal that came later.)
        try:
            await interaction.edit_original_response(content="This did not work out.")
        except discord.HTTPException:
            # Discord takes no edit of it: the follow-up is then the only way left to tell
            # the member, and it takes the thinking message's place. It must stay.
            await interaction.followup.send(text, ephemeral=True)
            return
        await interaction.followup.send(text, ephemeral=True)
        with contextlib.suppress(discord.NotFound):
            await interaction.delete_original_response()
        return
    await interaction.followup.send(text, ephemeral=True)


def _describe(interaction: discord.Interaction) -> str:
    if interaction.command is not None:
        return f"/{interaction.command.qualified_name}"
    data: Mapping[str, object] = interaction.data or {}  # a component's has its custom_id
    custom_id = data.get("custom_id", "?")
    return f"component {custom_id}"


async def reporting(interaction: discord.Interaction, action: Awaitable[object]) -> None:
    """Run a button's or modal's work; errors go to `report` like a command's would."""
    try:
        await action
    except Exception as error:  # noqa: BLE001 - every error is answered; bugs are logged
        await report(interaction, error)
