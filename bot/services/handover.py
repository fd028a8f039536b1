"""What a bot process leaves with each composition it sends to the job queue, so that its
successor can post the result should it die first (engine.api.queue_handover adopts the job).

The interaction's webhook (application id and token: Discord takes edits of the original
response for 15 minutes, as long as the job's note lives in Redis), where it was asked, and
the job itself, so the successor stores and posts the composition as this process would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from bot.config import Settings
from bot.services.composing import ComposeJob


@dataclass(frozen=True, slots=True)
class PostingNote:
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

    @classmethod
    def decode(cls, raw: bytes) -> PostingNote:
        return msgspec.msgpack.decode(raw, type=cls)


def handover_owner(settings: Settings) -> str:
    """Whose jobs a process' jobs are: its shards (the next process that runs them adopts
    them), or the one bot."""
    if settings.shard_ids is None:
        return "bot" if not settings.sharded else f"shards-all-of-{settings.shard_count}"
    ids = ",".join(map(str, settings.shard_ids))
    return f"shards-{ids}-of-{settings.shard_count}"
