"""What a bot process leaves with each job it sends to the job queue, so that its successor
can post the result should it die first (engine.api.queue_handover adopts the job;
bot.services.adoption hands it to the cog that posts its kind).

Each note holds the interaction's webhook (application id and token: Discord takes edits of
the original response and follow-ups for 15 minutes, as long as the job's note lives in
Redis) and what the successor needs to store and post the result as this process would have.
"""

from __future__ import annotations

import msgspec

from bot.config import Settings
from bot.services.composing import ComposeJob


class PostingNote(msgspec.Struct, frozen=True, tag="compose"):
    """A composition (/compose, Continue, Reroll)."""

    application_id: int
    token: str  # the interaction's token: lets any process of the bot edit its response
    guild_id: int
    channel_id: int
    user_id: int
    upload_limit: int
    model_version_id: int | None
    job: ComposeJob

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)


class SeedPlayNote(msgspec.Struct, frozen=True, tag="seed_play"):
    """A saved seed rendered to be listened to (/seed play)."""

    application_id: int
    token: str
    guild_id: int
    seed_id: int
    upload_limit: int

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)


Note = PostingNote | SeedPlayNote


def decode_note(raw: bytes) -> Note:
    """The note a job was sent with; ValueError (msgspec's errors are) when it is not one."""
    return msgspec.msgpack.decode(raw, type=Note)


def handover_owner(settings: Settings) -> str:
    """Whose jobs a process' jobs are: its shards (the next process that runs them adopts
    them), or the one bot."""
    if settings.shard_ids is None:
        return "bot" if not settings.sharded else f"shards-all-of-{settings.shard_count}"
    ids = ",".join(map(str, settings.shard_ids))
    return f"shards-{ids}-of-{settings.shard_count}"
