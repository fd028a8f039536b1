"""Model versions by id: the engine alone turns an id into a file, only a server's own."""

from __future__ import annotations

import json
import os
import time

import pytest

from engine.api.errors import BadRequest
from engine.serving.model_store import ModelStore, StoredVersion, versions_to_prune


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


def write_version(store: ModelStore, model: str, *, age: float, accepted: bool = True) -> None:
    """A version written `age` seconds ago, with the record a fine-tune writes beside it."""
    write(store, model)
    path = store.path_of(model)
    path.with_suffix(".json").write_text(json.dumps({"accepted": accepted}))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def test_the_rule_keeps_the_newest_accepted_versions_and_the_protected_ones():
    versions = [
        StoredVersion("7/a", 1.0, True),
        StoredVersion("7/b", 2.0, True),
        StoredVersion("7/c", 3.0, False),  # rejected by the gate: never served
        StoredVersion("7/d", 4.0, True),
        StoredVersion("7/e", 5.0, True),
    ]
    assert versions_to_prune(versions, keep_recent=2, protect=set()) == ["7/a", "7/b", "7/c"]
    # The active version (the run's start) and the new one stay whatever their age or verdict.
    assert versions_to_prune(versions, keep_recent=2, protect={"7/a", "7/c"}) == ["7/b"]
    assert versions_to_prune(versions, keep_recent=10, protect=set()) == ["7/c"]
    assert versions_to_prune([], keep_recent=1, protect={"7/x"}) == []
    with pytest.raises(ValueError, match="received 0"):
        versions_to_prune(versions, keep_recent=0, protect=set())


def test_retaining_deletes_the_servers_versions_the_rule_drops_and_says_which(tmp_path):
    store = ModelStore(tmp_path, keep_recent=2)
    write_version(store, "7/oldest", age=400)
    write_version(store, "7/active", age=300)  # rolled back to: older than the kept ones
    write_version(store, "7/older", age=200)
    write_version(store, "7/recent", age=100)
    write_version(store, "7/rejected", age=50, accepted=False)
    write_version(store, "7/new", age=0)
    write_version(store, "8/theirs", age=1000)
    write(store, "7/no-record")  # a version whose record is unreadable counts as accepted
    store.path_of("7/no-record").with_suffix(".json").write_text("not json")
    os.utime(store.path_of("7/no-record"), (time.time() - 500,) * 2)

    pruned = store.retain(7, {"7/active", "7/new"})
    assert pruned == ["7/no-record", "7/older", "7/oldest", "7/rejected"]
    for model in pruned:
        assert not store.path_of(model).exists()
        assert not store.path_of(model).with_suffix(".json").exists()
    assert all(store.path_of(m).is_file() for m in ("7/active", "7/recent", "7/new", "8/theirs"))
    assert store.retain(9, []) == []  # a server without versions
