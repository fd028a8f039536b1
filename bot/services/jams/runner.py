"""The jam's round loop, apart from Discord's commands: write a round, close it, post the
piece so far, write the next, end.

Nothing of a jam's progress lives only in this process: the database holds its state and
deadlines, and every step is a claim there (bot.db.queries.jams) that one caller wins. The
cog calls `tick` every few seconds; it closes the rounds whose time is up and takes over the
jams whose writer is gone (a restart), in this process or any other sharing the database.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import discord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.db import (
    Jam,
    JamStatus,
    add_jam_round,
    claim_jam_writer,
    close_jam_round,
    due_jam_rounds,
    end_jam,
    everyone_back,
    get_active_model_version,
    get_composition,
    jam_winners,
    pause_jam,
    set_jam_writer,
    stalled_jams,
)
from bot.db.queries import ClosedRound
from bot.services import composing
from bot.services.engine_port import Engine
from bot.services.jams.options import round_job
from bot.services.limits import TooManyInFlight, Work, WorkSlots
from bot.services.midi_concat import concatenate
from bot.services.piece_assembly import round_seconds
from bot.ui import compose_message, jam_message
from bot.ui.audio_text import clock
from bot.ui.jam_views import end_view, round_view
from engine.api.errors import EngineError

log = logging.getLogger(__name__)

# How long a writer may take over a round (composing and posting) before another process
# takes it for gone; a live writer is done in well under a minute.
WRITER_LEASE = timedelta(minutes=5)
# A round the server had no room for (its in-flight cap) is tried again this much later.
RETRY_LATER = timedelta(seconds=15)
# Room kept in a message's upload limit for its text and the request's own overhead.
MESSAGE_RESERVE_BYTES = 64 * 1024


class JamHost(Protocol):
    """What the jam needs of the bot (MotifBot has it)."""

    sessions: async_sessionmaker[AsyncSession]
    engine: Engine
    limits: WorkSlots
    settings: Settings

    def get_channel(self, id: int, /) -> Any: ...


class JamRunner:
    def __init__(
        self, host: JamHost, *, now: Callable[[], datetime] = discord.utils.utcnow
    ) -> None:
        self.host = host
        # discord.utils.utcnow: SimCord's virtual clock in the tests, the real one in service.
        self.now = now
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[tuple[str, int]] = set()  # (kind, id) this process is working on

    # ---- the loop ------------------------------------------------------------------------

    async def tick(self) -> None:
        """Close the rounds whose vote is over; take over the jams nobody is writing."""
        now = self.now()
        async with self.host.sessions() as session:
            due = await due_jam_rounds(session, now=now)
            stalled = await stalled_jams(session, now=now)
        for guild_id, round_id in due:
            self.spawn(("round", round_id), self.close_round(guild_id, round_id, how="time is up"))
        for guild_id, jam_id in stalled:
            self.spawn(("jam", jam_id), self._take_over(guild_id, jam_id))

    def spawn(self, key: tuple[str, int], work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background unless this process already works on `key`."""
        if key in self._busy:
            work.close()
            return
        self._busy.add(key)

        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("jam work %s failed", key)
            finally:
                self._busy.discard(key)

        task = asyncio.create_task(run(), name=f"jam-{key[0]}-{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop this process's jam work (the database keeps the jams; another process, or
        this one restarted, goes on with them when the writer's lease is over)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _take_over(self, guild_id: int, jam_id: int) -> None:
        now = self.now()
        async with self.host.sessions() as session:
            jam = await claim_jam_writer(
                session, guild_id=guild_id, jam_id=jam_id, now=now, until=now + WRITER_LEASE
            )
        if jam is not None:
            await self.advance(jam)

    # ---- rounds --------------------------------------------------------------------------

    async def vote_counted(self, guild_id: int, round_id: int) -> None:
        """After a vote: close the round early once everyone who voted last round voted."""
        async with self.host.sessions() as session:
            back = await everyone_back(session, guild_id=guild_id, round_id=round_id)
        if back:
            self.spawn(
                ("round", round_id),
                self.close_round(guild_id, round_id, how="everyone has voted"),
            )

    async def close_round(self, guild_id: int, round_id: int, *, how: str) -> None:
        """Close the round if it is still open (else nothing: another caller did), post its
        result with the piece so far, and go on."""
        now = self.now()
        async with self.host.sessions() as session:
            closed = await close_jam_round(
                session,
                guild_id=guild_id,
                round_id=round_id,
                now=now,
                writer_until=now + WRITER_LEASE,
            )
        if closed is None:
            return
        log.info(
            "guild %s: jam #%s round %s closed (%s): candidate %s",
            guild_id,
            closed.jam.id,
            closed.round.number,
            how,
            closed.winner_position,
        )
        await self._close_buttons(closed)
        await self._post_result(closed, how)
        await self.advance(closed.jam)

    async def _close_buttons(self, closed: ClosedRound) -> None:
        """The closed round's message keeps its final votes; its buttons can no longer be
        pressed (a click that raced the close is refused by the database anyway)."""
        jam = closed.jam
        async with self.host.sessions() as session:
            composition = await get_composition(
                session, guild_id=jam.guild_id, composition_id=closed.round.composition_id
            )
        if composition.message_id is None:
            return
        view = round_view(
            closed.round.id, composition.id, list(closed.tallies), closed.tallies, open_=False
        )
        try:
            await self._channel(jam).get_partial_message(composition.message_id).edit(view=view)
        except discord.HTTPException as error:  # deleted, or no access any more: not fatal
            log.info("guild %s: jam #%s round buttons not closed: %s", jam.guild_id, jam.id, error)

    async def advance(self, jam: Jam) -> None:
        """The writer's step after a closed round: the next round, or the end."""
        async with self.host.sessions() as session:
            winners = await jam_winners(session, guild_id=jam.guild_id, jam_id=jam.id)
        if len(winners) >= jam.rounds:
            await self.end(jam, JamStatus.FINISHED)
            return
        last = winners[-1][1] if winners else None
        try:
            await self.write_round(
                jam,
                number=len(winners) + 1,
                seed_midi=last.midi if last is not None else jam.seed_midi,
                parent_candidate_id=last.id if last is not None else None,
            )
        except TooManyInFlight:
            # The server's cap is full: let go, and the checker tries again a little later.
            async with self.host.sessions() as session:
                await set_jam_writer(
                    session, guild_id=jam.guild_id, jam_id=jam.id, until=self.now() + RETRY_LATER
                )
        except EngineError as error:
            await self._pause_for(jam, len(winners) + 1, error)

    async def write_round(
        self, jam: Jam, *, number: int, seed_midi: bytes | None, parent_candidate_id: int | None
    ) -> None:
        """Compose round `number`, store it like a /compose composition, open its vote and
        post it. The caller holds the writer's lease."""
        host, channel = self.host, self._channel(jam)
        job = round_job(
            jam.params,
            number=number,
            seed_midi=seed_midi,
            seed_id=jam.seed_id,
            parent_candidate_id=parent_candidate_id,
        )
        upload_limit = channel.guild.filesize_limit
        async with host.limits.slot(jam.guild_id, None, Work.JAM_ROUND) as slot:
            async with host.sessions() as session:
                version = await get_active_model_version(session, guild_id=jam.guild_id)
            request = job.request(
                guild_id=jam.guild_id,
                max_audio_bytes=compose_message.audio_budget(upload_limit, job.candidates),
                model=version.engine_id if version is not None else None,
            )
            slot.start()
            result = await host.engine.compose(request)
        composition = await composing.record(
            host.sessions,
            job,
            result,
            guild_id=jam.guild_id,
            channel_id=jam.channel_id,
            requester_id=jam.starter_id,
            model_version_id=version.id if version is not None else None,
        )
        async with host.sessions() as session:
            row = await add_jam_round(
                session,
                guild_id=jam.guild_id,
                jam_id=jam.id,
                number=number,
                composition_id=composition.id,
                now=self.now(),
            )
        if row is None:  # the jam ended meanwhile, or another process wrote this round
            await composing.forget(host.sessions, composition)
            return
        embed = jam_message.round_embed(
            compose_message.embed(
                composition.id,
                job,
                result,
                model_version_id=composition.model_version_id,
                upload_limit=upload_limit,
            ),
            number=number,
            rounds=jam.rounds,
            deadline=row.deadline,
        )
        message = await channel.send(
            embed=embed,
            files=compose_message.files(result),
            view=round_view(row.id, composition.id, [c.id for c in composition.candidates], {}),
        )
        await composing.posted(host.sessions, composition, message.id)

    async def _post_result(self, closed: ClosedRound, how: str) -> None:
        """The round's result and the piece so far: its clip and its MIDI."""
        jam, channel = closed.jam, self._channel(closed.jam)
        midi = await self.piece_midi(jam)
        files, length = await self._piece_files(jam, channel, midi, f"jam-{jam.id}-so-far")
        text = jam_message.closed_text(
            closed.round.number,
            jam.rounds,
            closed.winner_position,
            closed.winner_votes,
            how=how,
            piece_seconds=length,
        )
        await channel.send(text, files=files)

    async def piece_midi(self, jam: Jam) -> bytes | None:
        """The winners laid end to end (None before any round was won)."""
        async with self.host.sessions() as session:
            winners = await jam_winners(session, guild_id=jam.guild_id, jam_id=jam.id)
        return await _joined(winners)

    async def _piece_files(
        self, jam: Jam, channel: Any, midi: bytes | None, name: str
    ) -> tuple[list[discord.File], str | None]:
        """The piece's OGG and piano roll (when the engine can make them) and MIDI, and how
        long it plays."""
        if midi is None:
            return [], None
        files = [discord.File(io.BytesIO(midi), filename=f"{name}.mid")]
        budget = (
            channel.guild.filesize_limit
            - len(midi)
            - MESSAGE_RESERVE_BYTES
            - compose_message.PIANOROLL_RESERVE_BYTES
        )
        try:
            rendered = await self.host.engine.render(
                midi, max_audio_bytes=budget, guild_id=jam.guild_id, pianoroll=True
            )
        except EngineError as error:
            log.warning("guild %s: jam #%s audio failed: %s", jam.guild_id, jam.id, error)
            seconds = await asyncio.to_thread(round_seconds, midi)
            return files, f"{clock(seconds)}, MIDI only: the audio could not be made"
        files.insert(0, discord.File(io.BytesIO(rendered.audio), filename=f"{name}.ogg"))
        if rendered.pianoroll is not None:
            files.append(discord.File(io.BytesIO(rendered.pianoroll), filename=f"{name}.png"))
        return files, clock(rendered.full_seconds)

    # ---- the end -------------------------------------------------------------------------

    async def end(self, jam: Jam, status: JamStatus, *, stopped_by: int | None = None) -> bool:
        """End the jam (once: False if it had already ended) and post the whole piece, the
        round winners and a button to save the piece as a seed."""
        async with self.host.sessions() as session:
            ended = await end_jam(
                session, guild_id=jam.guild_id, jam_id=jam.id, status=status, now=self.now()
            )
            if ended is None:
                return False
            winners = await jam_winners(session, guild_id=jam.guild_id, jam_id=jam.id)
        channel = self._channel(jam)
        text = jam_message.end_text(
            starter_id=jam.starter_id,
            stopped_by=stopped_by,
            rounds=jam.rounds,
            winners=[
                jam_message.Winner(r.number, c.position, r.winner_votes or 0) for r, c in winners
            ],
        )
        midi = await _joined(winners)
        files, _ = await self._piece_files(jam, channel, midi, f"jam-{jam.id}")
        if midi is None:
            await channel.send(text)
        else:
            await channel.send(text, files=files, view=end_view(jam.id))
        log.info("guild %s: jam #%s %s", jam.guild_id, jam.id, status.value)
        return True

    async def _pause_for(self, jam: Jam, number: int, error: EngineError) -> None:
        """The engine could not write a round: pause (nothing is lost) and say so."""
        log.warning("guild %s: jam #%s round %s failed: %s", jam.guild_id, jam.id, number, error)
        async with self.host.sessions() as session:
            await pause_jam(session, guild_id=jam.guild_id, jam_id=jam.id, now=self.now())
            await set_jam_writer(session, guild_id=jam.guild_id, jam_id=jam.id, until=None)
        await self._channel(jam).send(
            f"Round {number} could not be written ({error}). The jam is paused; "
            "/jam resume tries again."
        )

    def _channel(self, jam: Jam) -> Any:
        channel = self.host.get_channel(jam.channel_id)
        if channel is None:
            raise RuntimeError(f"jam #{jam.id}: channel {jam.channel_id} is not known")
        return channel


async def _joined(winners: Sequence[tuple[Any, Any]]) -> bytes | None:
    """The winning candidates' MIDI laid end to end, off the event loop (None: no winner)."""
    if not winners:
        return None
    return await asyncio.to_thread(concatenate, [candidate.midi for _, candidate in winners])
