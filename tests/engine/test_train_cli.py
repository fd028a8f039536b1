"""`python -m engine train` and `python -m engine data stats` on a small real corpus (eight
Bach chorales and the bundled examples, with their augmented copies), as `make train` runs
them on the full one: the checkpoint records the notes per GM program it trained on, and the
instruments the copies brought in are among them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from symusic import Score

from engine.data.corpus import (
    AUGMENTED_COPIES,
    Piece,
    augment_corpus,
    augmented_paths,
    split_of,
    split_paths,
    write_manifest,
)
from engine.model.checkpoint import load_checkpoint
from engine.model.coverage import DRUMS

# Seconds, not the real run's hour: a tiny model, a few steps, a vocabulary just above
# REMI's base one.
TINY = [
    "--vocab-size",
    "650",
    "--steps",
    "6",
    "--eval-every",
    "3",
    "--batch-size",
    "4",
    "--seq-len",
    "32",
    "--hidden",
    "16",
    "--embed",
    "16",
    "--layers",
    "1",
]


def engine(*args: str | Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def named_for(split: str, stem: str) -> str:
    """A piece name whose id lands in `split` (the split is a hash of the id)."""
    return next(f"{stem}-{i}" for i in range(1000) if split_of(f"small/{stem}-{i}") == split)


@pytest.fixture(scope="module")
def data_dir(chorale_files, examples, tmp_path_factory) -> Path:
    """A corpus as `engine data build` leaves it: pieces, copies and the manifest."""
    data = tmp_path_factory.mktemp("train-data")
    out = data / "corpus"
    sources = [*chorale_files, *sorted(examples.glob("*.mid"))]
    pieces = []
    for i, source in enumerate(sources):
        name = named_for("valid" if i in (0, 1) else "train", source.stem)
        target = out / "midi" / "small" / f"{name}.mid"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        pieces.append(Piece("small", name, target))
    manifest = write_manifest(out, pieces, {})
    augment_corpus(out, manifest, AUGMENTED_COPIES, workers=1)
    return data


def programs_of(paths: list[Path]) -> Counter[int]:
    notes: Counter[int] = Counter()
    for path in paths:
        for track in Score(path).tracks:
            notes[DRUMS if track.is_drum else track.program] += track.note_num()
    return +notes


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "small.pt"
    engine("train", "--data-dir", data_dir, "--out", out, *TINY)
    return out


def test_the_checkpoint_records_the_notes_of_every_program_it_trained_on(data_dir, trained):
    plain = programs_of(split_paths(data_dir, "train"))
    copies = programs_of(augmented_paths(data_dir, "train"))
    coverage = load_checkpoint(trained).coverage
    assert coverage is not None
    recorded = {p: n for p, n in coverage.notes.items() if n}
    assert set(recorded) == set(plain + copies)
    for program, notes in (plain + copies).items():  # the tokenizer may merge a doubled note
        assert recorded[program] == pytest.approx(notes, rel=0.02), program
    new = set(copies) - set(plain)
    assert len(new) >= 5, "the copies voice the pieces on instruments they were not on"
    assert all(coverage.pieces_of(p) >= 1 for p in new)
    record = json.loads(trained.with_suffix(".json").read_text())
    assert len(record["programs"]["programs"]) == 129  # every GM program, and drums
    assert set(record["heldout"]) == {"plain", "augmented"}
    assert record["data"]["augmented"]["copies_train"] == len(augmented_paths(data_dir, "train"))


def test_data_stats_shows_what_the_copies_add(data_dir):
    def stats(*extra: str) -> dict:
        proc = engine("data", "stats", "--data-dir", data_dir, "--json", *extra)
        return json.loads(proc.stdout)

    plain, copies = stats(), stats("--augmented")
    assert copies["pieces"] == AUGMENTED_COPIES * plain["pieces"]
    assert copies["notes"] == AUGMENTED_COPIES * plain["notes"]
    used = {
        name: {f for f, n in s["families"].items() if n}
        for name, s in (("plain", plain), ("copies", copies))
    }
    assert len(used["copies"]) > len(used["plain"])
    assert len(copies["keys"]) > len(plain["keys"])


def test_training_goes_on_from_a_checkpoint_with_its_tokenizer(data_dir, trained, tmp_path):
    # --init-from: the first run's weights and vocabulary, not a new BPE; the record says so.
    out = tmp_path / "more.pt"
    engine(
        "train",
        "--data-dir",
        data_dir,
        "--out",
        out,
        "--init-from",
        trained,
        "--steps",
        "3",
        "--eval-every",
        "3",
        "--batch-size",
        "4",
        "--seq-len",
        "32",
    )
    first, more = load_checkpoint(trained), load_checkpoint(out)
    assert more.model.config == first.model.config
    assert more.tokenizer.vocab_size == first.tokenizer.vocab_size
    assert more.tokenizer.to_base(
        list(range(first.tokenizer.vocab_size))
    ) == first.tokenizer.to_base(list(range(first.tokenizer.vocab_size)))
    moved = [
        not (a == b).all()
        for a, b in zip(
            first.model.state_dict().values(), more.model.state_dict().values(), strict=True
        )
    ]
    assert any(moved), "three steps of training change the weights"
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["init_from"]["checkpoint"] == trained.name
    assert record["init_from"]["train"]["steps_done"] == 6
    assert record["train"]["steps_done"] == 3


def test_torchrun_trains_with_two_processes_and_one_goes_on_with_resume(data_dir, tmp_path):
    # The README's command for N GPUs, here with two CPU processes over gloo.
    out = tmp_path / "two.pt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "engine",
            "train",
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            "--accumulate",
            "2",
            "--device",
            "cpu",
            *TINY,
            "--bpe-pieces",  # a tokenizer of its own: process 0 trains it, the other waits
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["train"]["processes"] == 2
    assert record["train"]["tokens_per_step"] == 4 * 32 * 2 * 2
    assert record["train"]["autocast"] == "off"
    assert record["tokenizer"]["bpe_pieces"] == 6
    assert [h["step"] for h in record["history"]] == [3, 6]
    assert load_checkpoint(out).model.config.hidden_dim == 16
    assert out.with_name("two-loss.png").stat().st_size > 0

    # One process goes on from the two's saved state to step 9.
    more = engine("train", "--data-dir", data_dir, "--out", out, *TINY[:2], "--steps", "9",
                  *TINY[4:], "--bpe-pieces", "6", "--resume")  # fmt: skip
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["train"]["resumed"] and record["train"]["processes"] == 1
    assert [h["step"] for h in record["history"]] == [3, 6, 9]
    assert "step 9: held-out" in more.stdout + more.stderr


def test_resume_without_a_saved_state_says_so_and_trains_nothing(data_dir, tmp_path):
    out = tmp_path / "never.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "train", "--data-dir", data_dir, "--out", out,
         *TINY, "--resume"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--resume: no training state" in proc.stderr and "never" in proc.stderr
    assert not out.exists()
