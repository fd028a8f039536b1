"""One composition apart from Discord: what it asks of the engine (a ComposeJob, stored so a
reroll can repeat it), the job a Continue or Reroll makes, and the composition's record."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import discord
import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import (
    Composition,
    delete_composition,
    get_candidate,
    get_composition,
    get_seed,
    record_composition,
    set_composition_message,
)
from bot.errors import UserFacingError
from bot.services.engine_port import ComposeRequest, ComposeResult
from bot.services.seed_files import read_midi_attachment, short_name
from bot.ui.slash_options import AS_IN_SEED
from engine.api.config import WorkLimits
from engine.api.form import DEFAULT_FORM, FORMS
from engine.api.instruments import INSTRUMENTS, listed_name
from engine.api.limits import DEFAULT_BARS, DEFAULT_CANDIDATES, DEFAULT_TEMPERATURE
from engine.api.metre import vocabulary_metres
from engine.api.workload import check_request

__all__ = ["AS_IN_SEED", "ComposeJob"]


@dataclass(frozen=True, slots=True)
class ComposeJob:
    """A composition the bot asks for: the engine's request (its one shape, checked as it is
    made: BadRequest names an option out of range) and where its seed came from. The
    server's own fields (guild, upload limit, model version) are added by `request`."""

    options: ComposeRequest  # the seed and the member's options; `seed` samples afresh per job
    seed_label: str  # shown in the embed: "saved seed "intro"", "none", ...
    seed_id: int | None = None
    parent_candidate_id: int | None = None

    @classmethod
    def of(
        cls,
        seed_midi: bytes | None,
        seed_label: str,
        *,
        seed_id: int | None = None,
        parent_candidate_id: int | None = None,
        instrument: str = AS_IN_SEED,
        tempo: int | None = None,
        include_seed: bool = False,
        quantise: bool = False,
        **options: Any,
    ) -> ComposeJob:
        """A job from a member's options: the slash commands' (`instrument` by name, `tempo`
        in whole bpm); the others (bars, candidates, temperature, form, follow_key) are
        ComposeRequest's own. A fresh sampling seed."""
        request = ComposeRequest(
            seed_midi=seed_midi,
            tempo=tempo,
            program=INSTRUMENTS.get(instrument),  # AS_IN_SEED is no instrument: None
            # Only a seed can start the clips, or be snapped to the score grid.
            include_seed=include_seed and seed_midi is not None,
            quantise=quantise and seed_midi is not None,
            **options,
        )
        return cls(request, seed_label, seed_id, parent_candidate_id).fresh()

    @property
    def seed_midi(self) -> bytes | None:
        return self.options.seed_midi

    @property
    def candidates(self) -> int:
        return self.options.candidates

    def request(
        self, *, guild_id: int, max_audio_bytes: int | None, model: str | None
    ) -> ComposeRequest:
        """The engine's request (`model`: the engine id of the server's active version)."""
        return msgspec.structs.replace(
            self.options, guild_id=guild_id, max_audio_bytes=max_audio_bytes, model=model
        )

    def check_work(self, limits: WorkLimits) -> None:
        """BadSeed or BadRequest, saying what to change, when the seed or the work this job
        asks for is over the engine's limits (blocking: it reads the seed; run it in a
        thread). The engine checks again; this lets the bot refuse before it answers."""
        check_request(self.options, limits, vocabulary_metres())

    # The options as the database keeps them (Composition.params, Jam.params): written and
    # read here only. The names are the slash commands' (instrument by name, whole bpm).
    def params(self) -> dict[str, Any]:
        """JSON stored with the composition (everything but the seed, which has columns)."""
        options = self.options
        program = options.program
        return {
            "bars": options.bars,
            "candidates": options.candidates,
            "temperature": options.temperature,
            "tempo": None if options.tempo is None else round(options.tempo),
            "instrument": AS_IN_SEED if program is None else listed_name(program),
            "include_seed": options.include_seed,
            "form": options.form,
            "follow_key": options.follow_key,
            "quantise": options.quantise,
            "sampling_seed": options.seed,
            "seed_label": self.seed_label,
        }

    @classmethod
    def from_params(
        cls,
        params: dict[str, Any],
        *,
        seed_midi: bytes | None = None,
        seed_id: int | None = None,
        parent_candidate_id: int | None = None,
    ) -> ComposeJob:
        """A new job (a fresh sampling seed) with a stored composition's options and the
        given seed."""
        form = params.get("form")
        return cls.of(
            seed_midi,
            str(params.get("seed_label", "unknown")),
            seed_id=seed_id,
            parent_candidate_id=parent_candidate_id,
            bars=int(params.get("bars", DEFAULT_BARS)),
            candidates=int(params.get("candidates", DEFAULT_CANDIDATES)),
            temperature=float(params.get("temperature", DEFAULT_TEMPERATURE)),
            tempo=params.get("tempo"),
            instrument=params.get("instrument", AS_IN_SEED),
            include_seed=bool(params.get("include_seed", False)),
            form=form if form in FORMS else DEFAULT_FORM,
            follow_key=bool(params.get("follow_key", True)),
            quantise=bool(params.get("quantise", False)),
        )

    def fresh(self) -> ComposeJob:
        sampling_seed = random.randrange(2**31)
        return replace(self, options=msgspec.structs.replace(self.options, seed=sampling_seed))


Sessions = async_sessionmaker[AsyncSession]


async def new_job(
    sessions: Sessions,
    *,
    guild_id: int,
    attachment: discord.Attachment | None,
    saved_seed: str | None,
    max_seed_notes: int,
    **options: Any,
) -> ComposeJob:
    """A first round's job (/compose, /jam start): its seed is the attached file, the
    server's saved seed of that name, or none."""
    if attachment is not None and saved_seed is not None:
        raise UserFacingError("Give either an attached seed or a saved seed, not both.")
    if attachment is not None:
        midi = await read_midi_attachment(attachment, max_notes=max_seed_notes)
        label = f'attached "{short_name(attachment.filename)}"'
        return ComposeJob.of(midi.data, label, **options)
    if saved_seed is not None:
        async with sessions() as session:
            stored = await get_seed(session, guild_id=guild_id, name=saved_seed)
        return ComposeJob.of(
            stored.midi, f'saved seed "{stored.name}"', seed_id=stored.id, **options
        )
    return ComposeJob.of(None, "none (from scratch)", **options)


async def continuation(sessions: Sessions, *, guild_id: int, candidate_id: int) -> ComposeJob:
    """The next round of a piece: candidate `candidate_id`'s music is its seed."""
    async with sessions() as session:
        candidate = await get_candidate(session, guild_id=guild_id, candidate_id=candidate_id)
        parent = await get_composition(
            session, guild_id=guild_id, composition_id=candidate.composition_id
        )
    label = f"continues candidate {candidate.position} of composition #{parent.id}"
    # The new round holds only new music: the piece is the rounds laid end to end.
    params = {**parent.params, "include_seed": False, "seed_label": label}
    return ComposeJob.from_params(
        params, seed_midi=candidate.midi, parent_candidate_id=candidate.id
    )


async def reroll(sessions: Sessions, *, guild_id: int, composition_id: int) -> ComposeJob:
    """Composition `composition_id`'s request again, with a new sampling seed."""
    async with sessions() as session:
        old = await get_composition(session, guild_id=guild_id, composition_id=composition_id)
        seed_midi = old.seed_midi
        if old.parent_candidate_id is not None:
            parent = await get_candidate(
                session, guild_id=guild_id, candidate_id=old.parent_candidate_id
            )
            seed_midi = parent.midi
    return ComposeJob.from_params(
        old.params,
        seed_midi=seed_midi,
        seed_id=old.seed_id,
        parent_candidate_id=old.parent_candidate_id,
    )


async def record(
    sessions: Sessions,
    job: ComposeJob,
    result: ComposeResult,
    *,
    guild_id: int,
    channel_id: int,
    requester_id: int,
    model_version_id: int | None,
) -> Composition:
    """The composition and its candidates, stored before the message that shows them."""
    async with sessions() as session:
        return await record_composition(
            session,
            guild_id=guild_id,
            channel_id=channel_id,
            requester_id=requester_id,
            candidates=result.candidates,  # stored as the engine sent them
            params=job.params(),
            seed_id=job.seed_id,
            # A continuation's seed is its parent candidate; other seeds keep their bytes.
            seed_midi=job.seed_midi if job.parent_candidate_id is None else None,
            parent_candidate_id=job.parent_candidate_id,
            model_version_id=model_version_id,
        )


async def posted(sessions: Sessions, composition: Composition, message_id: int) -> None:
    """Where the composition is shown (/top links to it)."""
    async with sessions() as session:
        await set_composition_message(
            session,
            guild_id=composition.guild_id,
            composition_id=composition.id,
            message_id=message_id,
        )


async def forget(sessions: Sessions, composition: Composition) -> None:
    """Remove a composition nobody can see (its message was refused): it must not count."""
    async with sessions() as session:
        await delete_composition(
            session, guild_id=composition.guild_id, composition_id=composition.id
        )
