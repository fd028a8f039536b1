"""`python -m engine finetune` on real chorales, with the real base model and corpus replay:
the run completes, the gate judges it, and it refuses runs that would make things worse."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest
from symusic import Note, Score, Track

from engine.api.schema import FinetuneResult, JobDone, JobFailed, JobProgress, decode_from_engine
from engine.api.transport import FrameReader
from engine.model.checkpoint import BASE_CHECKPOINT, load_checkpoint, save_checkpoint
from engine.model.coverage import DRUMS, ProgramCoverage

# Small batches keep each run to seconds; the defaults are for real servers.
FAST = [
    "--batch-size",
    "8",
    "--seq-len",
    "128",
    "--base-eval-tokens",
    "8000",
    "--replay-pieces",
    "200",
]


def finetune(*args: str | Path, data_dir: Path, text: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "finetune",
            *map(str, args),
            "--data-dir",
            str(data_dir),
            "--json",
            *FAST,
        ],
        capture_output=True,
        text=text,
        timeout=600,
    )


def wire_messages(stdout: bytes) -> list:
    """What a `--wire-job` run said on stdout, as the engine reads it."""
    frames = FrameReader()
    frames.feed(stdout)
    messages = []
    while (data := frames.next()) is not None:
        messages.append(decode_from_engine(data))
    return messages


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def chorale_dir(chorale_files, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("server-chorales")
    for path in chorale_files:
        shutil.copy(path, folder)
    return folder


@pytest.fixture(scope="module")
def tuned(chorale_dir, engine_data_dir, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("tuned") / "v1.pt"
    # As the engine runs it: the engine's wire on stdout (--json then stays quiet).
    proc = finetune(
        "--data",
        chorale_dir,
        "--out",
        out,
        "--steps",
        "12",
        "--eval-every",
        "4",
        "--wire-job",
        "7",
        data_dir=engine_data_dir,
        text=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    *progress, done = wire_messages(proc.stdout)
    assert all(isinstance(m, JobProgress) and m.id == 7 for m in progress)
    percents = [m.event.percent for m in progress]
    assert percents == sorted(percents)
    assert {m.event.phase for m in progress} >= {"preparing", "tuning", "gate"}
    assert isinstance(done, JobDone) and done.id == 7
    assert isinstance(done.result, FinetuneResult) and done.result.model == str(out)
    return msgspec.structs.asdict(done.result), out


def test_chorales_fine_tune_passes_the_gate(tuned):
    result, out = tuned
    m = result["metrics"]
    assert result["accepted"], result["reason"]
    assert m["server_nll_after"] < m["server_nll_before"]
    assert (
        m["base_nll_after"]
        <= m["base_nll_limit"]
        == pytest.approx(m["base_nll_reference"] * 1.05, abs=1e-3)
    )
    assert m["train_pieces"] + m["heldout_pieces"] == 8 and m["heldout_pieces"] >= 1
    assert 1 <= m["best_step"] <= m["tuning_steps"] <= 12
    # The checkpoint is self-describing: the figures and verdict travel with it.
    ckpt = load_checkpoint(out)
    assert ckpt.meta["finetune"]["accepted"] is True
    assert json.loads(out.with_suffix(".json").read_text())["metrics"] == m


def test_eval_contract_agrees_with_the_gate_on_the_tuned_model(tuned, chorale_dir):
    """`engine eval --json` on the tuned checkpoint scores the chorales better than base."""
    _, out = tuned

    def nll(*checkpoint: str) -> float:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine",
                "eval",
                *checkpoint,
                "--data",
                str(chorale_dir),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        return last_json(proc)["nll_bits_per_token"]

    assert nll("--checkpoint", str(out)) < nll()


def test_tuning_from_a_tuned_version_starts_from_it(tuned, chorale_dir, engine_data_dir, tmp_path):
    result, first = tuned
    proc = finetune(
        "--data",
        chorale_dir,
        "--out",
        tmp_path / "v2.pt",
        "--from",
        first,
        "--steps",
        "4",
        "--eval-every",
        "2",
        data_dir=engine_data_dir,
    )
    second = last_json(proc)
    # The gate measures the start (v1) on the same held-out pieces v1's gate measured it on.
    assert second["metrics"]["server_nll_before"] == pytest.approx(
        result["metrics"]["server_nll_after"], abs=2e-3
    )
    assert load_checkpoint(tmp_path / "v2.pt").meta["parent"] == str(first)


def test_a_tuned_version_records_its_parents_instruments_and_the_servers(
    chorale_dir, engine_data_dir, tmp_path
):
    parent = load_checkpoint(BASE_CHECKPOINT)
    parent.meta = {
        "programs": ProgramCoverage({0: 90_000, 65: 4_000}, {0: 300, 65: 20}).to_record()
    }
    save_checkpoint(tmp_path / "parent.pt", parent, half=True)
    last_json(
        finetune(
            "--data",
            chorale_dir,
            "--out",
            tmp_path / "v.pt",
            "--from",
            tmp_path / "parent.pt",
            "--steps",
            "2",
            "--eval-every",
            "2",
            data_dir=engine_data_dir,
        )
    )
    coverage = load_checkpoint(tmp_path / "v.pt").coverage
    assert coverage is not None
    server: dict[int, int] = {}
    for path in chorale_dir.glob("*.mid"):
        for track in Score(path).tracks:
            program = DRUMS if track.is_drum else track.program
            server[program] = server.get(program, 0) + track.note_num()
    added = {
        p: coverage.notes_of(p) - n
        for p, n in ((p, {0: 90_000, 65: 4_000}.get(p, 0)) for p in range(-1, 128))
    }
    # The server's pieces it tuned on, not the ones its gate held out.
    assert {p for p, n in added.items() if n} == set(server)
    assert all(0 < added[p] <= server[p] for p in server)
    assert sum(added.values()) < sum(server.values())
    assert coverage.notes_of(65) == 4_000 + server.get(65, 0)


def _noise_piece(rng: np.random.Generator) -> Score:
    score, track = Score(480), Track(program=0)
    for i in range(300):
        track.notes.append(
            Note(
                int(rng.integers(0, 64)) * 120 + (i // 4) * 480,
                int(rng.integers(1, 8)) * 60,
                int(rng.integers(30, 100)),
                int(rng.integers(20, 127)),
            )
        )
    score.tracks.append(track)
    return score


def test_gate_rejects_a_model_that_forgets_music(engine_data_dir, tmp_path):
    """Random notes, no replay, a high rate: the server's own held-out noise gets likelier,
    but music in general gets much less likely, so the gate refuses it."""
    rng = np.random.default_rng(1)
    for i in range(6):
        _noise_piece(rng).dump_midi(tmp_path / f"noise-{i}.mid")
    proc = finetune(
        "--data",
        tmp_path,
        "--out",
        tmp_path / "out" / "v.pt",
        "--steps",
        "20",
        "--eval-every",
        "10",
        "--server-share",
        "1.0",
        "--lr",
        "3e-3",
        data_dir=engine_data_dir,
    )
    result = last_json(proc)
    m = result["metrics"]
    assert not result["accepted"]
    assert m["server_nll_after"] < m["server_nll_before"]  # it did learn the noise
    assert m["base_nll_after"] > m["base_nll_limit"]
    assert "forgot too much" in result["reason"]
    assert load_checkpoint(tmp_path / "out" / "v.pt").meta["finetune"]["accepted"] is False


def test_gate_rejects_a_run_that_never_improves(chorale_dir, engine_data_dir, tmp_path):
    """An absurd learning rate wrecks every evaluated step: early stopping keeps nothing
    better than the start, and the gate says so."""
    proc = finetune(
        "--data",
        chorale_dir,
        "--out",
        tmp_path / "v.pt",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--lr",
        "0.5",
        data_dir=engine_data_dir,
    )
    result = last_json(proc)
    assert not result["accepted"]
    assert result["metrics"]["best_step"] == 0
    assert "did not fit this server's held-out pieces better" in result["reason"]


@pytest.mark.parametrize(
    "files, message",
    [
        ({}, "at least 3 different pieces"),
        ({"a.mid": "chorale", "b.mid": "chorale", "c.mid": "chorale"}, "at least 3 different"),
        (
            {"a.mid": b"not midi", "b.mid": b"MThd broken", "c.mid": b"MThd\x00\x00\x00"},
            "could be read",
        ),
    ],
)
def test_unusable_data_exits_2_with_one_line_and_writes_nothing(
    files, message, chorale_files, engine_data_dir, tmp_path
):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, content in files.items():
        data = chorale_files[0].read_bytes() if content == "chorale" else content
        (folder / name).write_bytes(data)
    proc = finetune("--data", folder, "--out", tmp_path / "v.pt", data_dir=engine_data_dir)
    assert proc.returncode == 2
    assert message in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "v.pt").exists()


@pytest.mark.parametrize("option", [["--steps", "0"], ["--lr", "5"], ["--server-share", "0"]])
def test_out_of_range_options_exit_2(option, chorale_dir, engine_data_dir, tmp_path):
    proc = finetune(
        "--data", chorale_dir, "--out", tmp_path / "v.pt", *option, data_dir=engine_data_dir
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    assert not (tmp_path / "v.pt").exists()


def test_unusable_data_is_said_on_the_wire_as_the_engine_reads_it(engine_data_dir, tmp_path):
    (tmp_path / "data").mkdir()
    proc = finetune(
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "v.pt",
        "--wire-job",
        "3",
        data_dir=engine_data_dir,
        text=False,
    )
    assert proc.returncode == 2
    *progress, failed = wire_messages(proc.stdout)
    assert all(isinstance(m, JobProgress) for m in progress)  # preparing, before it knew
    assert isinstance(failed, JobFailed) and failed.id == 3 and failed.kind == "BadRequest"
    assert "at least 3 different pieces" in failed.message
