"""/jam: a channel writes a piece together in timed rounds. The commands and the buttons of a
jam's messages; the round loop is bot.services.jams.runner, which a tasks loop here drives.

The commands translate: options checked, limits taken, state changed through the database's
claims (so two bot processes never act twice), and members told what happened.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.db import (
    Jam,
    JamStatus,
    add_seed,
    cast_jam_vote,
    create_jam,
    get_active_jam,
    get_jam,
    get_jam_rounds,
    pause_jam,
    resume_jam,
)
from bot.errors import UserFacingError, report, reporting
from bot.services import composing
from bot.services.jams.runner import WRITER_LEASE, JamRunner
from bot.services.limits import Work
from bot.ui.deferral import check_then_defer
from bot.ui.jam_message import status_text
from bot.ui.jam_views import (
    JAM_SAVE_TEMPLATE,
    JAM_VOTE_TEMPLATE,
    jam_save_id,
    jam_vote_id,
    round_view,
)
from bot.ui.seed_names import saved_seed_names
from bot.ui.slash_options import (
    AS_IN_SEED,
    INSTRUMENT_CHOICES,
    Bars,
    Candidates,
    RoundMinutes,
    Rounds,
    Temperature,
)
from bot.ui.views import vote_text
from engine.api.limits import (
    DEFAULT_BARS,
    DEFAULT_CANDIDATES,
    DEFAULT_JAM_ROUND_MINUTES,
    DEFAULT_JAM_ROUNDS,
    DEFAULT_TEMPERATURE,
)

if TYPE_CHECKING:
    from bot.app import MotifBot

log = logging.getLogger(__name__)
# discord.py types Item.callback and Modal.on_submit for an interaction of any client, so an
# override that names MotifBot is flagged [override]; ours only ever get MotifBot's, hence the
# `type: ignore[override]` on them.
Interaction = discord.Interaction["MotifBot"]

# How often the deadline checker looks for rounds whose vote is over: a vote closes at most
# this late, and the check is one indexed query.
TICK_SECONDS = 2.0


def _runner(interaction: Interaction) -> JamRunner:
    cog = interaction.client.get_cog("JamCog")
    assert isinstance(cog, JamCog), "the jam cog is loaded with the jam buttons"
    return cog.runner


def _guild(interaction: Interaction) -> int:
    if interaction.guild_id is None:  # jam messages only exist on servers
        raise RuntimeError("a jam button was clicked outside a server")
    return interaction.guild_id


def _check_may_steer(interaction: Interaction, jam: Jam, what: str) -> None:
    """Only the starter and members with Manage Server pause, resume, skip or stop a jam."""
    if interaction.user.id == jam.starter_id or interaction.permissions.manage_guild:
        return
    raise UserFacingError(
        f"Only the member who started this jam (<@{jam.starter_id}>) or someone with the "
        f"Manage Server permission can {what} it."
    )


@app_commands.guild_only()
class JamCog(commands.GroupCog, group_name="jam", group_description="Write a piece together."):
    def __init__(self, bot: MotifBot) -> None:
        self.bot = bot
        self.runner = JamRunner(bot)
        super().__init__()

    async def cog_load(self) -> None:
        self.checker.start()

    async def cog_unload(self) -> None:
        self.checker.cancel()
        await self.runner.close()

    @tasks.loop(seconds=TICK_SECONDS)
    async def checker(self) -> None:
        """Close the rounds whose vote is over and carry on jams left by a stopped process."""
        try:
            await self.runner.tick()
        except Exception:
            # A database hiccup must not end the loop: the next tick tries again.
            log.exception("the jam deadline checker failed")

    @checker.before_loop
    async def _ready(self) -> None:
        await self.bot.wait_until_ready()  # the channels are known

    @app_commands.command(name="start", description="Start a jam: timed rounds of votes.")
    @app_commands.describe(
        seed="A short MIDI file to start from",
        saved_seed="One of this server's saved seeds to start from",
        rounds=f"How many rounds (default {DEFAULT_JAM_ROUNDS})",
        round_minutes=f"Minutes of voting per round (default {DEFAULT_JAM_ROUND_MINUTES})",
        bars="Length of each round in bars",
        candidates="How many candidates each round",
        temperature="Lower is safer, higher is wilder",
        instrument="Who plays the new notes",
    )
    @app_commands.choices(instrument=INSTRUMENT_CHOICES)
    async def start(
        self,
        interaction: Interaction,
        seed: discord.Attachment | None = None,
        saved_seed: str | None = None,
        rounds: Rounds = DEFAULT_JAM_ROUNDS,
        round_minutes: RoundMinutes = DEFAULT_JAM_ROUND_MINUTES,
        bars: Bars = DEFAULT_BARS,
        candidates: Candidates = DEFAULT_CANDIDATES,
        temperature: Temperature = DEFAULT_TEMPERATURE,
        instrument: str = AS_IN_SEED,
    ) -> None:
        guild_id, channel_id = interaction.guild_id, interaction.channel_id
        assert guild_id is not None and channel_id is not None, "the jam commands are guild-only"
        bot = self.bot

        async def checked() -> Jam:
            job = await composing.new_job(
                bot.sessions,
                guild_id=guild_id,
                attachment=seed,
                saved_seed=saved_seed,
                max_seed_notes=bot.settings.engine.work.max_seed_notes,
                bars=bars,
                candidates=candidates,
                temperature=temperature,
                instrument=instrument,
            )
            await asyncio.to_thread(job.check_work, bot.settings.engine.work)
            now = self.runner.now()
            async with bot.sessions() as session:
                return await create_jam(
                    session,
                    guild_id=guild_id,
                    channel_id=channel_id,
                    starter_id=interaction.user.id,
                    rounds=rounds,
                    round_seconds=round_minutes * 60,
                    params=job.params(),
                    seed_id=job.seed_id,
                    seed_midi=job.seed_midi,
                    now=now,
                    writer_until=now + WRITER_LEASE,
                )

        # The starter's cooldown and the server's cap, as for /compose; later rounds take
        # the server's cap only.
        async with bot.limits.slot(guild_id, interaction.user.id, Work.JAM_ROUND) as slot:
            jam = await check_then_defer(interaction, checked())
            slot.start()  # the jam is on: the starter's cooldown counts from here
            await interaction.edit_original_response(
                content=(
                    f"<@{jam.starter_id}> started a jam: {rounds} round"
                    f"{'' if rounds == 1 else 's'} of {round_minutes} min of voting. Listen, "
                    "vote, and the piece grows one winner at a time. Round 1 is being written."
                )
            )
        # The first round is written like every other (a lost process is taken over).
        self.runner.spawn(("jam", jam.id), self.runner.advance(jam))

    @start.autocomplete("saved_seed")
    async def _saved_seed(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await saved_seed_names(self.bot.sessions, interaction.guild_id, current)

    async def _jam(self, interaction: Interaction) -> Jam:
        guild_id, channel_id = interaction.guild_id, interaction.channel_id
        assert guild_id is not None and channel_id is not None
        async with self.bot.sessions() as session:
            return await get_active_jam(session, guild_id=guild_id, channel_id=channel_id)

    @app_commands.command(name="status", description="How far this channel's jam is.")
    async def status(self, interaction: Interaction) -> None:
        jam = await self._jam(interaction)
        async with self.bot.sessions() as session:
            rows = await get_jam_rounds(session, guild_id=jam.guild_id, jam_id=jam.id)
        open_round = next((r for r in rows if r.status == "open"), None)
        await interaction.response.send_message(
            status_text(
                starter_id=jam.starter_id,
                status=jam.status,
                rounds=jam.rounds,
                finished=sum(1 for r in rows if r.status == "closed"),
                open_number=open_round.number if open_round is not None else None,
                deadline=open_round.deadline if open_round is not None else None,
                round_minutes=jam.round_seconds / 60,
            ),
            ephemeral=True,
        )

    @app_commands.command(name="pause", description="Stop the clock of this channel's jam.")
    async def pause(self, interaction: Interaction) -> None:
        jam = await self._jam(interaction)
        _check_may_steer(interaction, jam, "pause")
        async with self.bot.sessions() as session:
            paused = await pause_jam(
                session, guild_id=jam.guild_id, jam_id=jam.id, now=self.runner.now()
            )
        if not paused:
            raise UserFacingError("The jam is already paused. /jam resume goes on.")
        await interaction.response.send_message(
            f"<@{interaction.user.id}> paused the jam: votes still count, and the clock "
            "waits for /jam resume."
        )

    @app_commands.command(name="resume", description="Run the clock of a paused jam again.")
    async def resume(self, interaction: Interaction) -> None:
        jam = await self._jam(interaction)
        _check_may_steer(interaction, jam, "resume")
        async with self.bot.sessions() as session:
            resumed = await resume_jam(
                session, guild_id=jam.guild_id, jam_id=jam.id, now=self.runner.now()
            )
        if resumed is None:
            raise UserFacingError("The jam is not paused.")
        when = (
            f"the vote closes {discord.utils.format_dt(resumed.deadline, 'R')}"
            if resumed.deadline is not None
            else "the next round is being written"
        )
        await interaction.response.send_message(
            f"<@{interaction.user.id}> resumed the jam: {when}."
        )

    @app_commands.command(name="skip", description="Close this round's vote now.")
    async def skip(self, interaction: Interaction) -> None:
        jam = await self._jam(interaction)
        _check_may_steer(interaction, jam, "skip a round of")
        async with self.bot.sessions() as session:
            rows = await get_jam_rounds(session, guild_id=jam.guild_id, jam_id=jam.id)
        open_round = next((r for r in rows if r.status == "open"), None)
        if open_round is None:
            raise UserFacingError("No vote is open: the next round is being written.")
        await interaction.response.send_message(
            f"<@{interaction.user.id}> closed round {open_round.number}'s vote early."
        )
        self.runner.spawn(
            ("round", open_round.id),
            self.runner.close_round(
                jam.guild_id, open_round.id, how=f"skipped by <@{interaction.user.id}>"
            ),
        )

    @app_commands.command(name="stop", description="End this channel's jam now.")
    async def stop(self, interaction: Interaction) -> None:
        jam = await self._jam(interaction)
        _check_may_steer(interaction, jam, "stop")
        await interaction.response.defer(thinking=True)
        ended = await self.runner.end(jam, JamStatus.STOPPED, stopped_by=interaction.user.id)
        await interaction.edit_original_response(
            content="The jam is stopped." if ended else "The jam had already ended."
        )


class JamVoteButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=JAM_VOTE_TEMPLATE):
    """A vote in a jam's round: a /compose vote of its composition, while the round is open."""

    def __init__(self, round_id: int, candidate_id: int) -> None:
        super().__init__(discord.ui.Button(custom_id=jam_vote_id(round_id, candidate_id)))
        self.round_id = round_id
        self.candidate_id = candidate_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> JamVoteButton:
        return cls(int(match["round"]), int(match["candidate"]))

    async def callback(self, interaction: Interaction) -> None:  # type: ignore[override]
        await reporting(interaction, self._vote(interaction))

    async def _vote(self, interaction: Interaction) -> None:
        bot, guild_id = interaction.client, _guild(interaction)
        async with bot.sessions() as session:
            row, result = await cast_jam_vote(
                session,
                guild_id=guild_id,
                round_id=self.round_id,
                candidate_id=self.candidate_id,
                user_id=interaction.user.id,
            )
        tallies = result.tallies
        view = round_view(row.id, row.composition_id, list(tallies), tallies)
        await interaction.response.edit_message(view=view)
        position = list(tallies).index(self.candidate_id) + 1
        await interaction.followup.send(vote_text(result.action, position), ephemeral=True)
        await _runner(interaction).vote_counted(guild_id, row.id)


class SavePieceModal(discord.ui.Modal, title="Save the piece as a server seed"):
    name: discord.ui.TextInput[SavePieceModal] = discord.ui.TextInput(
        label="Seed name", placeholder="e.g. friday jam", max_length=64
    )

    def __init__(self, jam_id: int) -> None:
        super().__init__(timeout=600)
        self.jam_id = jam_id

    async def on_submit(self, interaction: Interaction) -> None:  # type: ignore[override]
        bot, guild_id = interaction.client, _guild(interaction)
        async with bot.sessions() as session:
            jam = await get_jam(session, guild_id=guild_id, jam_id=self.jam_id)
        midi = await _runner(interaction).piece_midi(jam)
        if midi is None:
            raise UserFacingError("This jam has no finished round to save.")
        async with bot.sessions() as session:
            saved = await add_seed(
                session,
                guild_id=guild_id,
                name=self.name.value,
                uploader_id=interaction.user.id,
                midi=midi,
            )
        await interaction.response.send_message(
            f'Saved the piece as the seed "{saved.name}". Use it with /compose saved_seed '
            "or /jam start saved_seed.",
            ephemeral=True,
        )

    # Modal.on_error takes no item, unlike the BaseView.on_error it overrides (discord.py's
    # design, Rapptz/discord.py#9816): mypy flags every override of it against BaseView.
    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await report(interaction, error)


class SavePieceButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=JAM_SAVE_TEMPLATE):
    def __init__(self, jam_id: int) -> None:
        super().__init__(discord.ui.Button(custom_id=jam_save_id(jam_id)))
        self.jam_id = jam_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> SavePieceButton:
        return cls(int(match["jam"]))

    async def callback(self, interaction: Interaction) -> None:  # type: ignore[override]
        await reporting(interaction, interaction.response.send_modal(SavePieceModal(self.jam_id)))


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(JamCog(bot))
    bot.add_dynamic_items(JamVoteButton, SavePieceButton)
