"""The soundfont resolver's search order, on fake font files in temporary folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import soundfonts
from soundfonts import ENV_VAR, SoundfontNotFound, find_soundfont

REPO = Path(soundfonts.__file__).resolve().parents[1]
PRETTY_MIDI_FONT = soundfonts._pretty_midi_font


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")  # the resolver only looks for files; FluidSynth reads them
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """Empty folder, system locations and bundle, all under tmp_path; no env var."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(soundfonts, "FOLDER", touch(tmp_path / "folder" / ".keep").parent)
    monkeypatch.setattr(soundfonts, "SYSTEM_FLUIDR3", tmp_path / "sf2" / "FluidR3_GM.sf2")
    monkeypatch.setattr(
        soundfonts,
        "SYSTEM_DIRS",
        ((tmp_path / "sf2", "*.sf2"), (tmp_path / "soundfonts", "*.sf[23]")),
    )
    monkeypatch.setattr(soundfonts, "_pretty_midi_font", lambda: None)
    return tmp_path


def test_the_configured_font_wins_over_everything(isolated):
    touch(isolated / "folder" / "local.sf2")
    touch(isolated / "sf2" / "FluidR3_GM.sf2")
    chosen = touch(isolated / "elsewhere" / "mine.sf3")
    assert find_soundfont(str(chosen)) == chosen


def test_a_configured_font_pointing_nowhere_is_an_error_not_a_fallback(isolated):
    touch(isolated / "sf2" / "FluidR3_GM.sf2")
    with pytest.raises(SoundfontNotFound, match=f"{ENV_VAR}=.*typo.sf2 does not exist"):
        find_soundfont(isolated / "typo.sf2")


def test_folder_font_is_preferred_over_the_system(isolated):
    touch(isolated / "sf2" / "FluidR3_GM.sf2")
    touch(isolated / "folder" / "notes.txt")
    touch(isolated / "folder" / "b.sf2")
    chosen = touch(isolated / "folder" / "a.sf3")
    assert find_soundfont() == chosen  # alphabetical among .sf2/.sf3, other files ignored


def test_system_fluidr3_before_other_system_fonts(isolated):
    other = touch(isolated / "sf2" / "A_first_alphabetically.sf2")
    fluidr3 = touch(isolated / "sf2" / "FluidR3_GM.sf2")
    assert find_soundfont() == fluidr3
    fluidr3.unlink()
    assert find_soundfont() == other


def test_other_system_dirs_then_pretty_midi_bundle(isolated, monkeypatch):
    timgm = touch(isolated / "soundfonts" / "TimGM6mb.sf2")
    assert find_soundfont() == timgm
    timgm.unlink()
    monkeypatch.setattr(soundfonts, "_pretty_midi_font", PRETTY_MIDI_FONT)  # the real bundle
    bundled = find_soundfont()
    assert bundled.name == "TimGM6mb.sf2" and bundled.parent.name == "pretty_midi"
    assert bundled.is_file()


def test_nothing_found_names_what_to_install(isolated):
    with pytest.raises(SoundfontNotFound) as error:
        find_soundfont()
    message = str(error.value)
    assert "apt-get install fluid-soundfont-gm" in message
    assert "timgm6mb-soundfont" in message and ENV_VAR in message


def test_this_machine_has_a_real_font():
    font = find_soundfont()
    assert font.suffix in (".sf2", ".sf3") and font.stat().st_size > 1_000_000


def test_cli_prints_the_path_or_the_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    ok = subprocess.run(
        [sys.executable, "-m", "soundfonts"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0 and Path(ok.stdout.strip()).is_file()

    env[ENV_VAR] = str(tmp_path / "missing.sf2")
    bad = subprocess.run(
        [sys.executable, "-m", "soundfonts"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "missing.sf2" in bad.stderr and not bad.stdout
