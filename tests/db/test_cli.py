"""`python -m bot` as an operator runs it: in a subprocess, with no Discord token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.db import migrate

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_bot(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**clean, "MOTIF_DATA_DIR": str(data_dir), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_db_upgrade_works_on_a_fresh_data_dir_without_a_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    result = run_bot("db", "upgrade", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert (data_dir / "motif.db").is_file()
    assert migrate.head() in result.stdout

    current = run_bot("db", "current", data_dir=data_dir)
    assert current.returncode == 0, current.stderr
    assert migrate.head() in current.stdout

    down = run_bot("db", "downgrade", "base", data_dir=data_dir)
    assert down.returncode == 0, down.stderr
    assert "none" in down.stdout
    assert migrate.current(f"sqlite+aiosqlite:///{data_dir / 'motif.db'}") is None


def test_run_without_a_token_fails_in_one_line_before_touching_the_disk(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = run_bot(data_dir=data_dir)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: DISCORD_TOKEN is not set; the bot needs it to connect to Discord"
    ]
    assert not data_dir.exists()  # neither the data dir nor a database


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    result = run_bot("db", "upgrade", data_dir=tmp_path, MOTIF_DEVICE="gpu")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: MOTIF_DEVICE must be auto, cpu, mps, cuda or cuda:N (received 'gpu')"
    )


def test_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    # Port 1 on loopback: refused at once, no waiting.
    url = "postgresql+asyncpg://motif:hunter2@127.0.0.1:1/motif"
    result = run_bot("db", "current", data_dir=tmp_path, DATABASE_URL=url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: database current failed")
    assert "hunter2" not in result.stderr


def test_importing_the_storage_pulls_in_neither_discord_nor_torch() -> None:
    code = (
        "import sys, bot, bot.db, bot.db.migrate; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'discord', 'torch'}); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
