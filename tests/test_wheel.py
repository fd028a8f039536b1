"""`pip install .` gives a working bot and engine: a wheel of this checkout, installed in a
fresh venv, migrates a database, composes, and refuses to run without a token, from a folder
outside the checkout. Slow (a minute or two: it installs torch), so it is one test."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
# Variables that would change what the installed commands do; PYTHONPATH could point them
# back at the checkout.
HOST_ONLY = ("PYTHONPATH", "DISCORD_TOKEN", "DATABASE_URL")


def sh(*argv: object, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY and not k.startswith("MOTIF_")}
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def checkout_copy(dest: Path) -> Path:
    """The tracked and new files of the checkout (not build/ leftovers, not the venv)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.mark.timeout(1200)  # installing torch into a venv takes minutes on a busy machine
def test_the_wheel_gives_a_working_motif_command(tmp_path: Path) -> None:
    source = checkout_copy(tmp_path / "source")
    built = sh(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        tmp_path / "dist",
        source,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("motif-*.whl")

    venv = tmp_path / "venv"
    assert sh(sys.executable, "-m", "venv", venv, cwd=tmp_path).returncode == 0
    # The torch this suite runs on (here the CPU build on the machine's disk, "2.13.0+cpu"):
    # pinned with its local label, so pip can never swap in a CUDA build.
    torch = f"torch=={importlib.metadata.version('torch')}"
    installed = sh(venv / "bin" / "pip", "install", "-q", torch, wheel, cwd=tmp_path, timeout=900)
    assert installed.returncode == 0, installed.stderr[-2000:]
    motif = venv / "bin" / "motif"

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = sh(
        venv / "bin" / "python",
        "-c",
        "import bot, engine; print(bot.__file__);print(engine.__file__)",
        cwd=work,
    )
    assert all(Path(p).is_relative_to(venv) for p in where.stdout.split()), where.stdout

    helped = sh(motif, "--help", cwd=work)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: motif bot"), helped
    # The migrations ship inside the package (not in a checkout's migrations/ folder).
    listed = sh(
        venv / "bin" / "python",
        "-c",
        "from bot.db.migrate import MIGRATIONS_DIR as d;"
        "print(d); print(len(list((d / 'versions').glob('2*.py'))))",
        cwd=work,
    )
    folder, count = listed.stdout.split()
    revisions = list((REPO / "bot" / "db" / "migrations" / "versions").glob("2*.py"))
    assert Path(folder).is_relative_to(venv) and int(count) == len(revisions), listed.stdout

    upgraded = sh(motif, "db", "upgrade", cwd=work)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (work / "data" / "motif.db").is_file()

    composed = sh(
        motif,
        "engine",
        "compose",
        "--bars",
        2,
        "--candidates",
        1,
        "--seed",
        1,
        "--out",
        "X",
        "--json",
        cwd=work,
    )
    assert composed.returncode == 0, composed.stderr
    for name in ("candidate-1.mid", "candidate-1.ogg", "pianoroll.png"):
        assert (work / "X" / name).is_file(), name
    pcm, _ = sf.read(work / "X" / "candidate-1.ogg")
    assert np.sqrt(np.mean(pcm**2)) > 1e-3, "the clip is silent"

    empty = tmp_path / "empty"
    empty.mkdir()
    refused = sh(motif, "bot", cwd=empty)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: DISCORD_TOKEN is not set; the bot needs it to connect to Discord"
    ]
    assert list(empty.iterdir()) == []  # no data dir, no database
