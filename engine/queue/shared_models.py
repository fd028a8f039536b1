"""The servers' fine-tuned versions shared by every worker of the job queue, in Redis.

Why Redis and not the database: the workers reach Redis and nothing else (the engine knows
nothing of the database, and a worker is given no DATABASE_URL), so a GPU machine added as a
worker needs no new credentials or network path. The price is memory: a version is ~10-20 MB,
and Redis holds MOTIF_FINETUNE_KEEP_VERSIONS + 2 of them per tuned server at most, so the
queue's Redis must persist (`appendonly yes`) and never evict (`maxmemory-policy
noeviction`, which the streams need too) - README's "Scaling" says so.

    <prefix>:models:<guild>        hash: version name -> its manifest (MessagePack: sha256,
                                   size, chunks, created, accepted, the record JSON)
    <prefix>:model:<guild>/<name>  hash: chunk number -> up to CHUNK_BYTES of the checkpoint

A checkpoint is cut into chunks so that no single command makes Redis (one thread) copy
20 MB while every other client waits; its SHA-256 is checked on every fetch, so a damaged or
incomplete copy is refused, never loaded. The worker that ran a fine-tune publishes the new
version (an accepted one: a rejected version never serves) before it answers, then applies
the engine's retention rule (engine.serving.model_store) to the shared versions and deletes
the pruned ones here; every worker fetches a version on its first use into its own data dir
(the same place the embedded engine keeps its files, so its engine finds it as usual) and
checks at each use that the version is still shared: a pruned one is deleted there too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import msgspec

from engine.api.errors import BadRequest
from engine.api.queue_keys import QueueKeys
from engine.serving.model_store import (
    ModelStore,
    StoredVersion,
    check_owner,
    guild_of,
    model_id,
    versions_to_prune,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # 1 MiB: Redis answers other clients between two chunks
CHUNKS_PER_CALL = 8  # chunks fetched per round trip


class Manifest(msgspec.Struct, frozen=True):
    sha256: str
    size: int
    chunks: int
    created: float  # when it was published (the retention rule's order)
    accepted: bool
    record: bytes = b""  # the JSON written beside the checkpoint (its figures)


class SharedModels:
    """One worker's view of the shared versions; `local` is its disk (a cache of them)."""

    def __init__(self, redis: Any, keys: QueueKeys, local: ModelStore) -> None:
        self._redis = redis
        self._keys = keys
        self.local = local
        self._verified: dict[str, str] = {}  # id -> sha256 of the local copy, checked
        self._fetching: dict[str, asyncio.Lock] = {}

    # Keys.
    def _index(self, guild_id: int) -> str:
        return f"{self._keys.prefix}:models:{guild_id}"

    def _blob(self, model: str) -> str:
        return f"{self._keys.prefix}:model:{model}"

    @staticmethod
    def _name(model: str) -> str:
        return model.split("/", 1)[1]

    # Publishing.
    async def publish(self, model: str, *, accepted: bool) -> Manifest:
        """Share the version the local store holds under `model` (its checkpoint and record)."""
        path = self.local.path_of(model)
        data, record = await asyncio.to_thread(_read_version, path)
        manifest = Manifest(
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            chunks=max(1, -(-len(data) // CHUNK_BYTES)),
            created=time.time(),
            accepted=accepted,
            record=record,
        )
        blob = self._blob(model)
        # One transaction: a reader sees the manifest only with every chunk beside it.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(blob)
            for i in range(manifest.chunks):
                pipe.hset(blob, str(i), data[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES])
            pipe.hset(
                self._index(guild_of(model)), self._name(model), msgspec.msgpack.encode(manifest)
            )
            await pipe.execute()
        self._verified[model] = manifest.sha256
        log.info("published model %s (%.1f MB)", model, manifest.size / 1e6)
        return manifest

    # Fetching.
    async def ensure_local(self, model: str, *, guild_id: int | None) -> Path:
        """The local file of server `guild_id`'s version `model`, fetched from Redis on its
        first use here. BadRequest (for the member) when the id is not the server's, the
        version is not shared (pruned), or its shared copy is incomplete or damaged."""
        check_owner(model, guild_id)
        lock = self._fetching.setdefault(model, asyncio.Lock())
        async with lock:
            return await self._ensure_local(model)

    async def _ensure_local(self, model: str) -> Path:
        path = self.local.path_of(model)
        raw = await self._redis.hget(self._index(guild_of(model)), self._name(model))
        if raw is None:
            self._forget(model)
            raise BadRequest(
                f"model version {model} is not in the model store (it may have been "
                "pruned); activate another version"
            )
        manifest = msgspec.msgpack.decode(raw, type=Manifest)
        if self._verified.get(model) == manifest.sha256 and path.is_file():
            return path
        if path.is_file() and await asyncio.to_thread(_sha256_of, path) == manifest.sha256:
            self._verified[model] = manifest.sha256  # fetched by an earlier run of this worker
            return path
        data = await self._fetch(model, manifest)
        await asyncio.to_thread(_write_version, path, data, manifest)
        self._verified[model] = manifest.sha256
        log.info("fetched model %s (%.1f MB) from the model store", model, manifest.size / 1e6)
        return path

    async def _fetch(self, model: str, manifest: Manifest) -> bytes:
        blob, parts = self._blob(model), []
        for start in range(0, manifest.chunks, CHUNKS_PER_CALL):
            fields = [str(i) for i in range(start, min(start + CHUNKS_PER_CALL, manifest.chunks))]
            parts += await self._redis.hmget(blob, fields)
        missing = sum(part is None for part in parts)
        if missing:
            log.error("model %s: %d of its %d chunks are missing", model, missing, len(parts))
            raise BadRequest(
                f"model version {model} is incomplete in the model store ({missing} of "
                f"{len(parts)} parts missing); activate another version"
            )
        data = b"".join(parts)
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != manifest.size or digest != manifest.sha256:
            log.error(
                "model %s: fetched %d bytes with SHA-256 %s; its manifest says %d and %s",
                model,
                len(data),
                digest,
                manifest.size,
                manifest.sha256,
            )
            raise BadRequest(
                f"model version {model} is damaged in the model store (its checksum does not "
                "match); activate another version"
            )
        return data

    def _forget(self, model: str) -> None:
        self._verified.pop(model, None)
        self.local.remove([model])

    # The lifecycle.
    async def versions(self, guild_id: int) -> list[StoredVersion]:
        found = []
        for name, raw in (await self._redis.hgetall(self._index(guild_id))).items():
            manifest = msgspec.msgpack.decode(raw, type=Manifest)
            name = name.decode() if isinstance(name, bytes) else name
            found.append(
                StoredVersion(model_id(guild_id, name), manifest.created, manifest.accepted)
            )
        return found

    async def retain(self, guild_id: int, protect: Collection[str]) -> list[str]:
        """Apply the retention rule to server `guild_id`'s shared versions: the pruned ones
        leave Redis and this disk. The ids pruned, sorted."""
        pruned = versions_to_prune(
            await self.versions(guild_id), keep_recent=self.local.keep_recent, protect=protect
        )
        if pruned:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._index(guild_id), *[self._name(m) for m in pruned])
                pipe.delete(*[self._blob(m) for m in pruned])
                await pipe.execute()
            for model in pruned:
                self._forget(model)
        return pruned


def _read_version(path: Path) -> tuple[bytes, bytes]:
    record = path.with_suffix(".json")
    return path.read_bytes(), (record.read_bytes() if record.is_file() else b"")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _write_version(path: Path, data: bytes, manifest: Manifest) -> None:
    """Write the checkpoint whole or not at all (the engine may look at any moment), with its
    record, dated when it was published (the local retention rule's order then agrees)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.utime(partial, (manifest.created, manifest.created))
    if manifest.record:
        record = path.with_suffix(".json")
        try:
            json.loads(manifest.record)
        except ValueError:
            log.warning("model %s: its record is not JSON; not written", path.stem)
        else:
            record.write_bytes(manifest.record)
    os.replace(partial, path)
