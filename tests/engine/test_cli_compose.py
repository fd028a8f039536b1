"""The `python -m engine compose` contract, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from symusic import Score

TAIL = 1.0  # the renderer's release tail (engine.audio.render.TAIL_SECONDS)


def compose(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", "compose", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def _check_outputs(out, summary, candidates, bars, bpm, beats_per_bar=None):
    """beats_per_bar None: read each candidate's metre (without a seed the model picks it)."""
    assert len(summary["candidates"]) == candidates
    for i, cand in enumerate(summary["candidates"], start=1):
        ts = Score(cand["midi"]).time_signatures[0]
        beats = beats_per_bar or ts.numerator * 4 / ts.denominator
        bar_seconds = beats * 60.0 / bpm
        assert cand["midi"] == str(out / f"candidate-{i}.mid")
        assert cand["audio"] == str(out / f"candidate-{i}.ogg")
        pcm, rate = sf.read(cand["audio"])
        assert pcm.ndim == 2 and pcm.shape[1] == 2
        assert np.sqrt(np.mean(pcm**2)) > 1e-3, "clip is silent"
        seconds = len(pcm) / rate
        assert abs(seconds - cand["seconds"]) < 0.05
        assert abs(seconds - TAIL - bars * bar_seconds) <= bar_seconds, (seconds, bars)
        assert cand["notes"] == Score(cand["midi"]).note_num() > 0
    png = out / "pianoroll.png"
    assert summary["pianoroll"] == str(png)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_no_seed(tmp_path):
    out = tmp_path / "out"
    run = compose(
        "--bars", 4, "--candidates", 2, "--temperature", 1.0, "--seed", 1, "--out", out, "--json"
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    _check_outputs(out, summary, 2, 4, 110.0)
    assert set(summary["timings"]) >= {"sample", "render"}


def test_waltz_seed_on_violin_keeps_tempo_and_metre(tmp_path, examples):
    out = tmp_path / "out"
    run = compose(
        examples / "waltz-violin.mid",
        "--bars",
        8,
        "--candidates",
        3,
        "--temperature",
        0.9,
        "--seed",
        2,
        "--out",
        out,
        "--json",
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    _check_outputs(out, summary, 3, 8, 96.0, 3)
    for cand in summary["candidates"]:
        midi = Score(cand["midi"])
        assert [round(t.qpm) for t in midi.tempos] == [96]
        assert {(t.numerator, t.denominator) for t in midi.time_signatures} == {(3, 4)}


def test_multitrack_seed(tmp_path, examples):
    out = tmp_path / "out"
    run = compose(
        examples / "band.mid", "--bars", 4, "--candidates", 4, "--seed", 3, "--out", out, "--json"
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    _check_outputs(out, summary, 4, 4, 120.0, 4)


def test_include_seed_and_instrument(tmp_path, examples):
    out = tmp_path / "out"
    run = compose(
        examples / "motif.mid",
        "--bars",
        2,
        "--candidates",
        1,
        "--seed",
        4,
        "--instrument",
        "flute",
        "--include-seed",
        "--out",
        out,
        "--json",
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    midi = Score(summary["candidates"][0]["midi"])
    programs = {t.program for t in midi.tracks if t.notes}
    assert 73 in programs and 0 in programs  # the seed's piano and the new flute
    # The seed's 4 bars come first: the piece lasts 6 bars of 4/4 at 100 bpm.
    seconds = midi.to("second").end()
    assert 4 * 2.4 < seconds <= 6 * 2.4 + 1e-6


@pytest.mark.parametrize(
    "kind",
    [
        "not midi",
        "truncated",
        "empty",
        "huge file",
        "too many notes",
        "absurd tempo",
        "absurd length",
    ],
)
def test_bad_seed_exits_with_one_line_and_writes_nothing(tmp_path, examples, kind):
    from tests.engine.test_seed import bad_seeds

    data, reason = bad_seeds(examples)[kind]
    seed = tmp_path / "seed.mid"
    seed.write_bytes(data)
    out = tmp_path / "out"
    run = compose(seed, "--bars", 4, "--out", out, "--json")
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], run.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "args,reason",
    [
        (["--bars", "0"], "bars"),
        (["--candidates", "5"], "candidates"),
        (["--tempo", "1000"], "tempo"),
        (["--instrument", "kazoo"], "instrument"),
    ],
)
def test_out_of_range_options_exit_with_one_line(tmp_path, args, reason):
    run = compose(*args, "--out", tmp_path / "out")
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["not midi", "truncated", "absurd tempo"])
def test_bad_seed_is_refused_before_torch_and_the_model_load(tmp_path, examples, kind):
    from tests.engine.test_seed import bad_seeds

    data, reason = bad_seeds(examples)[kind]
    seed = tmp_path / "seed.mid"
    seed.write_bytes(data)
    # The checkpoint does not exist: had the CLI tried to load it, it would say so instead.
    code = (
        "import json, sys\n"
        "from engine.__main__ import main\n"
        f"code = main(['compose', {str(seed)!r}, '--out', {str(tmp_path / 'out')!r},"
        f" '--checkpoint', {str(tmp_path / 'missing.pt')!r}])\n"
        "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"code": 2, "torch": False}
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], run.stderr


def test_bad_options_are_refused_before_the_model_load(tmp_path):
    run = compose("--bars", 0, "--checkpoint", tmp_path / "missing.pt", "--out", tmp_path / "o")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: bars"), lines


def test_a_missing_checkpoint_is_one_line(tmp_path):
    run = compose("--checkpoint", tmp_path / "missing.pt", "--out", tmp_path / "out")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"no checkpoint at {tmp_path / 'missing.pt'}" in lines[0], lines
