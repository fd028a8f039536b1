"""A server's saved seeds: add, list, get, remove, autocomplete, save a candidate as a seed."""

from __future__ import annotations

import hashlib
import unicodedata

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from bot.db.errors import (
    CandidateNotFound,
    DuplicateSeed,
    DuplicateSeedContent,
    DuplicateSeedName,
    InvalidInput,
    SeedNotFound,
)
from bot.db.models import SEED_NAME_MAX_LENGTH, Candidate, Composition, Seed
from bot.db.queries._tx import check_id, check_snowflake, ensure_guild, reading, writing
from engine.api.limits import MAX_SEED_BYTES

# A backstop: the bot validates seeds (notes, length, tempo) before saving them, and any
# reasonable motif is a few kilobytes. The engine's limit, so a saved seed can be composed.
SEED_MAX_BYTES = MAX_SEED_BYTES
# Discord shows at most 25 autocomplete choices.
AUTOCOMPLETE_LIMIT = 25


def normalize_seed_name(name: str) -> str:
    """Trim and collapse whitespace; refuse empty, too long or control-character names."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidInput("A seed needs a name.")
    if len(cleaned) > SEED_NAME_MAX_LENGTH:
        raise InvalidInput(
            f"Seed names are at most {SEED_NAME_MAX_LENGTH} characters (received {len(cleaned)})."
        )
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise InvalidInput("Seed names cannot contain control or invisible characters.")
    return cleaned


def midi_sha256(midi: bytes) -> str:
    return hashlib.sha256(midi).hexdigest()


async def add_seed(
    session: AsyncSession,
    *,
    guild_id: int,
    name: str,
    uploader_id: int,
    midi: bytes,
    notes: int | None = None,
    seconds: float | None = None,
) -> Seed:
    """Save `midi` as the server's seed `name`.

    Raises DuplicateSeedName or DuplicateSeedContent (both DuplicateSeed) when the server
    already has a seed with this name or these exact bytes, and InvalidInput for a bad name
    or an empty or oversized file.
    """
    check_snowflake("guild_id", guild_id)
    check_snowflake("uploader_id", uploader_id)
    name = normalize_seed_name(name)
    if not midi:
        raise InvalidInput("The seed file is empty.")
    if len(midi) > SEED_MAX_BYTES:
        raise InvalidInput(
            f"Seeds are at most {SEED_MAX_BYTES / 1e6:g} MB (received {len(midi) / 1e6:.1f} MB)."
        )
    digest = midi_sha256(midi)
    seed = Seed(
        guild_id=guild_id,
        name=name,
        uploader_id=uploader_id,
        midi=midi,
        sha256=digest,
        notes=notes,
        seconds=seconds,
    )
    try:
        async with writing(session):
            await ensure_guild(session, guild_id)
            if duplicate := await _find_duplicate(session, guild_id, name, digest):
                raise duplicate
            session.add(seed)
    except IntegrityError:
        # On PostgreSQL a concurrent add can pass the check above; the unique constraints
        # stop it, and a second look says which one.
        async with reading(session):
            duplicate = await _find_duplicate(session, guild_id, name, digest)
        if duplicate is None:
            raise
        raise duplicate from None
    return seed


async def _find_duplicate(
    session: AsyncSession, guild_id: int, name: str, digest: str
) -> DuplicateSeed | None:
    rows = (
        await session.execute(
            select(Seed.name, Seed.sha256).where(
                Seed.guild_id == guild_id, or_(Seed.name == name, Seed.sha256 == digest)
            )
        )
    ).all()
    for existing_name, _ in rows:
        if existing_name == name:
            return DuplicateSeedName(name)
    for existing_name, _ in rows:
        return DuplicateSeedContent(existing_name)
    return None


async def save_candidate_as_seed(
    session: AsyncSession, *, guild_id: int, candidate_id: int, name: str, uploader_id: int
) -> Seed:
    """Save a candidate of this server's compositions as a seed (the "save" button)."""
    check_snowflake("guild_id", guild_id)
    check_id("candidate_id", candidate_id)
    async with reading(session):
        midi = (
            await session.execute(
                select(Candidate.midi)
                .join(Composition, Composition.id == Candidate.composition_id)
                .where(Candidate.id == candidate_id, Composition.guild_id == guild_id)
            )
        ).scalar_one_or_none()
    if midi is None:
        raise CandidateNotFound(candidate_id)
    return await add_seed(session, guild_id=guild_id, name=name, uploader_id=uploader_id, midi=midi)


async def list_seeds(
    session: AsyncSession, *, guild_id: int, limit: int | None = None
) -> list[Seed]:
    """The server's seeds by name, without their MIDI (use get_seed for the bytes):
    touching `.midi` on a listed seed raises instead of loading."""
    check_snowflake("guild_id", guild_id)
    query = (
        select(Seed)
        .options(defer(Seed.midi, raiseload=True))
        .where(Seed.guild_id == guild_id)
        .order_by(Seed.name)
    )
    if limit is not None:
        query = query.limit(limit)
    async with reading(session):
        return list((await session.scalars(query)).all())


async def get_seed(session: AsyncSession, *, guild_id: int, name: str) -> Seed:
    """The server's seed called exactly `name`, with its MIDI; SeedNotFound otherwise."""
    check_snowflake("guild_id", guild_id)
    name = " ".join(name.split())
    async with reading(session):
        seed = (
            await session.scalars(select(Seed).where(Seed.guild_id == guild_id, Seed.name == name))
        ).one_or_none()
    if seed is None:
        raise SeedNotFound(name)
    return seed


async def get_seed_by_id(session: AsyncSession, *, guild_id: int, seed_id: int) -> Seed:
    """The server's seed `seed_id` (for buttons, which carry ids), with its MIDI."""
    check_snowflake("guild_id", guild_id)
    check_id("seed_id", seed_id)
    async with reading(session):
        seed = (
            await session.scalars(select(Seed).where(Seed.guild_id == guild_id, Seed.id == seed_id))
        ).one_or_none()
    if seed is None:
        raise SeedNotFound(seed_id)
    return seed


async def remove_seed(session: AsyncSession, *, guild_id: int, name: str) -> Seed:
    """Delete the server's seed `name` and return it; SeedNotFound otherwise.

    Compositions started from it keep their own copy of the seed bytes (seed_midi).
    """
    check_snowflake("guild_id", guild_id)
    name = " ".join(name.split())
    async with writing(session):
        seed = (
            await session.scalars(
                delete(Seed).where(Seed.guild_id == guild_id, Seed.name == name).returning(Seed)
            )
        ).one_or_none()
    if seed is None:
        raise SeedNotFound(name)
    return seed


async def autocomplete_seed_names(
    session: AsyncSession, *, guild_id: int, prefix: str, limit: int = AUTOCOMPLETE_LIMIT
) -> list[str]:
    """Names of the server's seeds starting with `prefix` (case-insensitive), by name."""
    check_snowflake("guild_id", guild_id)
    prefix = " ".join(prefix.split())
    query = select(Seed.name).where(Seed.guild_id == guild_id)
    if prefix:
        # autoescape: a member typing % or _ means those characters, not wildcards.
        query = query.where(Seed.name.istartswith(prefix, autoescape=True))
    async with reading(session):
        return list((await session.scalars(query.order_by(Seed.name).limit(limit))).all())
