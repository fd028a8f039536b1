"""One composition apart from Discord: what it asks of the engine (a ComposeJob, stored so a
reroll can repeat it), the job a Continue or Reroll makes, and the composition's record."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import discord
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
from engine.api.instruments import INSTRUMENTS
from engine.api.limits import DEFAULT_BARS, DEFAULT_CANDIDATES, DEFAULT_TEMPERATURE
from engine.api.metre import vocabulary_metres
from engine.api.workload import check_request

__all__ = ["AS_IN_SEED", "ComposeJob"]


@dataclass(frozen=True, slots=True)
class ComposeJob:
    seed_midi: bytes | None
    seed_label: str  # shown in the embed: "saved seed "intro"", "none", ...
    seed_id: int | None = None
    parent_candidate_id: int | None = None
    bars: int = DEFAULT_BARS
    candidates: int = DEFAULT_CANDIDATES
    temperature: float = DEFAULT_TEMPERATURE
    tempo: int | None = None  # bpm; None keeps the seed's
    instrument: str = AS_IN_SEED
    include_seed: bool = False
    form: str = DEFAULT_FORM  # which bars come back: return, free, AABA, ABAB
    follow_key: bool = True
    quantise: bool = False  # snap a performed seed to the score grid first
    # A fresh sampling seed per job: a reroll differs, and the stored value can replay it.
    sampling_seed: int = 0

    @property
    def keeps_instruments(self) -> bool:
        """True when the seed's (or the model's) instruments play: no instrument was chosen."""
        return self.instrument == AS_IN_SEED

    @property
    def program(self) -> int | None:
        return None if self.keeps_instruments else INSTRUMENTS[self.instrument]

    def request(
        self, *, guild_id: int, max_audio_bytes: int | None, model: str | None
    ) -> ComposeRequest:
        """The engine's request (`model`: the engine id of the server's active version);
        BadRequest, naming the option, when one is out of range."""
        return ComposeRequest(
            seed_midi=self.seed_midi,
            bars=self.bars,
            candidates=self.candidates,
            temperature=self.temperature,
            seed=self.sampling_seed,
            tempo=float(self.tempo) if self.tempo is not None else None,
            program=self.program,
            include_seed=self.include_seed and self.seed_midi is not None,
            form=self.form,
            follow_key=self.follow_key,
            quantise=self.quantise and self.seed_midi is not None,
            guild_id=guild_id,
            max_audio_bytes=max_audio_bytes,
            model=model,
        )

    def check_work(self, limits: WorkLimits) -> None:
        """BadSeed or BadRequest, saying what to change, when the seed or the work this job
        asks for is over the engine's limits (blocking: it reads the seed; run it in a
        thread). The engine checks again; this lets the bot refuse before it answers."""
        request = self.request(guild_id=0, max_audio_bytes=None, model=None)
        check_request(request, limits, vocabulary_metres())

    def params(self) -> dict[str, Any]:
        """JSON stored with the composition (everything but the seed, which has columns)."""
        return {
            "bars": self.bars,
            "candidates": self.candidates,
            "temperature": self.temperature,
            "tempo": self.tempo,
            "instrument": self.instrument,
            "include_seed": self.include_seed,
            "form": self.form,
            "follow_key": self.follow_key,
            "quantise": self.quantise,
            "sampling_seed": self.sampling_seed,
            "seed_label": self.seed_label,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any], **seed: Any) -> ComposeJob:
        """A new job with a stored composition's options and the given seed fields."""
        instrument = params.get("instrument", AS_IN_SEED)
        job = cls(
            bars=int(params.get("bars", DEFAULT_BARS)),
            candidates=int(params.get("candidates", DEFAULT_CANDIDATES)),
            temperature=float(params.get("temperature", DEFAULT_TEMPERATURE)),
            tempo=params.get("tempo"),
            instrument=instrument if instrument in INSTRUMENTS else AS_IN_SEED,
            include_seed=bool(params.get("include_seed", False)),
            form=params.get("form") if params.get("form") in FORMS else DEFAULT_FORM,
            follow_key=bool(params.get("follow_key", True)),
            quantise=bool(params.get("quantise", False)),
            **{"seed_label": params.get("seed_label", "unknown"), "seed_midi": None, **seed},
        )
        return job.fresh()

    def fresh(self) -> ComposeJob:
        return replace(self, sampling_seed=random.randrange(2**31))


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
        return ComposeJob(seed_midi=midi.data, seed_label=label, **options).fresh()
    if saved_seed is not None:
        async with sessions() as session:
            stored = await get_seed(session, guild_id=guild_id, name=saved_seed)
        return ComposeJob(
            seed_midi=stored.midi,
            seed_id=stored.id,
            seed_label=f'saved seed "{stored.name}"',
            **options,
        ).fresh()
    return ComposeJob(seed_midi=None, seed_label="none (from scratch)", **options).fresh()


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
