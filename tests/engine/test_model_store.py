"""Model versions by id: the engine alone turns an id into a file, only a server's own."""

from __future__ import annotations

import pytest

from engine.api.errors import BadRequest
from engine.serving.model_store import ModelStore


def write(store: ModelStore, model: str) -> None:
    path = store.path_of(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"a checkpoint")
    path.with_suffix(".json").write_text("{}")


@pytest.mark.parametrize(
    "model",
    ["7", "7/", "/etc/passwd", "7/../8/x", "7/..", "7/a/b", "x/a", "7/.hidden", "7/a..b", "7/a."],
)
def test_an_id_that_is_not_server_slash_name_names_no_file(tmp_path, model):
    with pytest.raises(ValueError, match=r"<server id>/<name> \(received"):
        ModelStore(tmp_path).path_of(model)
    with pytest.raises(BadRequest, match=r"<server id>/<name>"):
        ModelStore(tmp_path).find(model, guild_id=7)


def test_a_server_finds_its_own_versions_only(tmp_path):
    store = ModelStore(tmp_path)
    model, path = store.new(7, "20261201-120000-3")
    assert (model, path) == (
        "7/20261201-120000-3",
        tmp_path.resolve() / "models" / "7" / "20261201-120000-3.pt",
    )
    with pytest.raises(BadRequest, match="not in this engine"):
        store.find(model, guild_id=7)
    write(store, model)
    assert store.find(model, guild_id=7) == path
    for guild in (8, None):
        with pytest.raises(BadRequest, match=r"its own model versions \(received '7/"):
            store.find(model, guild_id=guild)


def test_pruning_deletes_the_servers_other_versions_and_says_which(tmp_path):
    store = ModelStore(tmp_path)
    for model in ("7/old", "7/kept", "7/new", "8/theirs"):
        write(store, model)
    assert store.prune(7, {"7/kept", "7/new", "8/theirs"}) == ["7/old"]
    assert not store.path_of("7/old").exists()
    assert not store.path_of("7/old").with_suffix(".json").exists()
    assert all(store.path_of(m).is_file() for m in ("7/kept", "7/new", "8/theirs"))
    assert store.prune(9, []) == []  # a server without versions
