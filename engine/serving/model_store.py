"""The servers' model versions on disk: the one owner of their checkpoint files and of their
lifecycle (which versions a server keeps).

A version is named by an id, "<guild id>/<name>", which is all that leaves the engine: the bot
stores it, a compose request or a fine-tune names it, and only this module turns it into a
file (<data dir>/models/<guild id>/<name>.pt, with its record <name>.json beside it). So the
bot holds no path of the engine's machine, and a server can only reach its own versions.

After a fine-tune the engine applies one retention rule (`versions_to_prune`): a server keeps
its newest MOTIF_FINETUNE_KEEP_VERSIONS accepted versions, the version the run started from
(the active one) and the new one; the rest are deleted and the bot is told which. With the
Redis job queue, the same rule runs over the shared store (engine.queue.shared_models), whose
copies on each worker's disk are a cache of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.api.errors import BadRequest
from engine.api.limits import DEFAULT_FINETUNE_KEEP_VERSIONS

# Digits, a slash, then a name that cannot climb out of the server's folder.
MODEL_ID = re.compile(r"^(?P<guild>\d{1,20})/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,99})$")
SUFFIX = ".pt"


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """What the retention rule needs to know of a version."""

    model: str  # its id
    created: float  # seconds since the epoch
    accepted: bool  # passed the quality gate (a rejected one is never served)


def versions_to_prune(
    versions: Iterable[StoredVersion], *, keep_recent: int, protect: Collection[str]
) -> list[str]:
    """The ids to delete, sorted: all but the `keep_recent` newest accepted versions and
    those in `protect` (the active version, the one just made)."""
    if keep_recent < 1:
        raise ValueError(f"keep_recent must be at least 1 (received {keep_recent})")
    newest = sorted(versions, key=lambda v: (v.created, v.model), reverse=True)
    recent = [v.model for v in newest if v.accepted][:keep_recent]
    kept = {*protect, *recent}
    return sorted(v.model for v in newest if v.model not in kept)


def model_id(guild_id: int, name: str) -> str:
    return f"{guild_id}/{name}"


def guild_of(model: str) -> int:
    """The server of a well-formed id; ValueError otherwise."""
    match = MODEL_ID.match(model)
    if match is None or match["name"].endswith(".") or ".." in match["name"]:
        raise ValueError(f"a model version id is <server id>/<name> (received {model!r:.60})")
    return int(match["guild"])


def check_owner(model: str, guild_id: int | None) -> None:
    """BadRequest unless `model` is a well-formed id of server `guild_id`'s."""
    try:
        owner = guild_of(model)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if guild_id is None or owner != guild_id:
        raise BadRequest(f"a server can only use its own model versions (received {model!r:.60})")


class ModelStore:
    def __init__(
        self, data_dir: Path, *, keep_recent: int = DEFAULT_FINETUNE_KEEP_VERSIONS
    ) -> None:
        self.root = (Path(data_dir) / "models").resolve()
        self.keep_recent = keep_recent

    def folder(self, guild_id: int) -> Path:
        return self.root / str(guild_id)

    def new(self, guild_id: int, name: str) -> tuple[str, Path]:
        """The id and file of a version about to be written."""
        model = model_id(guild_id, name)
        return model, self.path_of(model)

    def path_of(self, model: str) -> Path:
        """The file of a well-formed id, whether or not it exists; ValueError otherwise."""
        guild = guild_of(model)
        return self.folder(guild) / f"{model.split('/', 1)[1]}{SUFFIX}"

    def find(self, model: str, *, guild_id: int | None) -> Path:
        """The file of server `guild_id`'s version `model`; BadRequest when the id is malformed,
        names another server's version, or names none this engine holds (pruned)."""
        check_owner(model, guild_id)
        path = self.path_of(model)
        if not path.is_file():
            raise BadRequest(
                f"model version {model} is not in this engine (it may have been "
                "pruned); activate another version"
            )
        return path

    def versions(self, guild_id: int) -> list[StoredVersion]:
        """Server `guild_id`'s versions on this disk. A version without a readable record
        counts as accepted: deleting one that may serve is the mistake to avoid."""
        found = []
        for path in self.folder(guild_id).glob(f"*{SUFFIX}"):
            try:
                record = json.loads(path.with_suffix(".json").read_text())
                accepted = bool(record.get("accepted", True))
            except (OSError, ValueError, AttributeError):
                accepted = True
            try:
                created = path.stat().st_mtime
            except FileNotFoundError:
                continue  # deleted meanwhile
            found.append(StoredVersion(model_id(guild_id, path.stem), created, accepted))
        return found

    def retain(self, guild_id: int, protect: Collection[str]) -> list[str]:
        """Apply the retention rule to server `guild_id`'s versions on this disk; the ids
        deleted, sorted."""
        pruned = versions_to_prune(
            self.versions(guild_id), keep_recent=self.keep_recent, protect=protect
        )
        self.remove(pruned)
        return pruned

    def remove(self, models: Iterable[str]) -> None:
        """Delete these versions' files (those absent are skipped)."""
        for model in models:
            path = self.path_of(model)
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
