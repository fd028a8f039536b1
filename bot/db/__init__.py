"""Storage: SQLAlchemy models, engine/session factories and guild-scoped query functions.

    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        seed = await add_seed(session, guild_id=..., name=..., uploader_id=..., midi=...)

Migrations are run with bot.db.migrate (imported separately: it pulls in Alembic).
Nothing here imports discord.py or torch.
"""

from __future__ import annotations

from bot.db import errors
from bot.db.models import (
    Base,
    Candidate,
    Composition,
    FinetuneRun,
    FinetuneStatus,
    Guild,
    Jam,
    JamRound,
    JamRoundStatus,
    JamStatus,
    ModelVersion,
    ModelVersionStatus,
    Seed,
    Vote,
)
from bot.db.queries import *  # noqa: F403 - the query functions are this package's API
from bot.db.queries import __all__ as _queries_all
from bot.db.session import create_engine, create_sessionmaker

__all__ = [
    "Base",
    "Candidate",
    "Composition",
    "FinetuneRun",
    "FinetuneStatus",
    "Guild",
    "Jam",
    "JamRound",
    "JamRoundStatus",
    "JamStatus",
    "ModelVersion",
    "ModelVersionStatus",
    "Seed",
    "Vote",
    "create_engine",
    "create_sessionmaker",
    "errors",
    *_queries_all,
]
