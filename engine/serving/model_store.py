"""The servers' model versions on disk: the one owner of their checkpoint files.

A version is named by an id, "<guild id>/<name>", which is all that leaves the engine: the bot
stores it, a compose request or a fine-tune names it, and only this module turns it into a
file (<data dir>/models/<guild id>/<name>.pt, with its record <name>.json beside it). So the
bot holds no path of the engine's machine, and a server can only reach its own versions.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from engine.api.errors import BadRequest

# Digits, a slash, then a name that cannot climb out of the server's folder.
MODEL_ID = re.compile(r"^(?P<guild>\d{1,20})/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,99})$")
SUFFIX = ".pt"


class ModelStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = (Path(data_dir) / "models").resolve()

    def folder(self, guild_id: int) -> Path:
        return self.root / str(guild_id)

    def new(self, guild_id: int, name: str) -> tuple[str, Path]:
        """The id and file of a version about to be written."""
        model = f"{guild_id}/{name}"
        return model, self.path_of(model)

    def path_of(self, model: str) -> Path:
        """The file of a well-formed id, whether or not it exists; ValueError otherwise."""
        match = MODEL_ID.match(model)
        if match is None or match["name"].endswith(".") or ".." in match["name"]:
            raise ValueError(f"a model version id is <server id>/<name> (received {model!r:.60})")
        return self.folder(int(match["guild"])) / f"{match['name']}{SUFFIX}"

    def find(self, model: str, *, guild_id: int | None) -> Path:
        """The file of server `guild_id`'s version `model`; BadRequest when the id is malformed,
        names another server's version, or names none this engine holds (pruned)."""
        try:
            path = self.path_of(model)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if guild_id is None or path.parent != self.folder(guild_id):
            raise BadRequest(
                f"a server can only use its own model versions (received {model!r:.60})"
            )
        if not path.is_file():
            raise BadRequest(
                f"model version {model} is not in this engine (it may have been "
                "pruned); activate another version"
            )
        return path

    def prune(self, guild_id: int, keep: Collection[str]) -> list[str]:
        """Delete server `guild_id`'s versions not in `keep` (ids); the ids deleted, in order."""
        folder = self.folder(guild_id)
        kept = {self.path_of(model) for model in keep if MODEL_ID.match(model)}
        pruned = []
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            if path not in kept:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
                pruned.append(f"{guild_id}/{path.stem}")
        return pruned
