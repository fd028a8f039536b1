"""`engine data build --midi DIR` on a real folder of MIDI files: what is kept, what is left out
and why, the journal a rerun resumes from, the split by content, and a tokenizer trained on
what was built that keeps drums, programs and a 6/8 metre."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.data.corpus import load_manifest, score_fingerprint, split_of, split_paths
from engine.data.midi_folder import (
    ABSURD_TEMPO,
    EMPTY,
    JOURNAL,
    SAME_BYTES,
    SAME_NOTES,
    TOO_MANY_NOTES,
    UNREADABLE,
)
from engine.model.tokenizer import MidiTokenizer
from tests.engine.test_train_cli import engine

TPQ = 480


def score(parts, *, bpm=120.0, metre=(4, 4), tpq=TPQ) -> Score:
    """parts: (program, is_drum, [(start_beat, beats, pitch, velocity)])."""
    s = Score(tpq)
    s.tempos.append(Tempo(0, bpm))
    s.time_signatures.append(TimeSignature(0, *metre))
    for program, is_drum, notes in parts:
        track = Track(f"p{program}", program, is_drum)
        for start, beats, pitch, velocity in notes:
            track.notes.append(Note(round(start * tpq), round(beats * tpq), pitch, velocity))
        s.tracks.append(track)
    return s


def groove(bars: int) -> tuple:
    """A drum track: kick and snare on the beats, hi-hat between."""
    kick, snare, hat = 36, 38, 42
    notes = []
    for b in range(bars * 4):
        notes.append((b, 0.25, kick if b % 2 == 0 else snare, 100 - 20 * (b % 2)))
        notes.append((b + 0.5, 0.25, hat, 60))
    return (0, True, notes)


def band(seed: int) -> Score:
    bass = [(b * 2, 2, 36 + (b + seed) % 5, 90) for b in range(8)]
    keys = [(b, 1, 60 + (b * 3 + seed) % 12, 50 + (b * 7) % 60) for b in range(16)]
    return score([(33, False, bass), (seed % 128, False, keys), groove(4)], bpm=96 + seed)


def jig() -> Score:
    """6/8 at 120 dotted-quarters: a violin line in eighths."""
    notes = [(i * 0.5, 0.5, 67 + (i * 5) % 7, 80) for i in range(24)]
    return score([(40, False, notes)], bpm=180, metre=(6, 8))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("collection")
    (root / "rock").mkdir()
    for i in range(6):
        band(i * 11).dump_midi(root / "rock" / f"song{i}.mid")
    jig().dump_midi(root / "jig.MID")
    shutil.copy(root / "rock" / "song0.mid", root / "rock" / "song0_copy.mid")
    # The same notes saved at another resolution on another instrument: the same music.
    again = score([(0, False, [(b, 1, 60 + b, 90) for b in range(12)])], tpq=96)
    original = score([(24, False, [(b, 1, 60 + b, 70) for b in range(12)])])
    original.dump_midi(root / "tune.mid")
    again.dump_midi(root / "tune-resaved.midi")
    (root / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\xff")
    (root / "zero.mid").write_bytes(b"")
    score([]).dump_midi(root / "silent.mid")
    score([(0, False, [(0, 1, 60, 90)] * 4)], bpm=900).dump_midi(root / "fast.mid")
    many = [(i / 16, 1 / 16, 40 + i % 40, 80) for i in range(20_001)]
    score([(0, False, many)]).dump_midi(root / "wall.mid")
    (root / "notes.txt").write_text("not a MIDI file, not looked at")
    return root


@pytest.fixture(scope="module")
def built(folder, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    data = tmp_path_factory.mktemp("data")
    proc = engine(
        "data", "build", "--data-dir", data, "--midi", folder, "--licence", "CC-BY 4.0",
        "--no-music21", "--copies", "0", "--workers", "2",
    )  # fmt: skip
    return data, proc


def test_the_build_keeps_good_files_and_says_why_it_left_out_the_others(folder, built):
    data, proc = built
    manifest = load_manifest(data)
    (source,) = manifest["sources"]
    assert source["name"] == folder.name
    assert source["licence"] == "CC-BY 4.0"
    assert source["path"] == str(folder.resolve())
    assert source["files"] == 15  # every .mid/.midi/.MID, not the .txt
    assert source["dropped"] == {
        UNREADABLE: 1,
        EMPTY: 2,
        ABSURD_TEMPO: 1,
        TOO_MANY_NOTES: 1,
        SAME_BYTES: 1,
        SAME_NOTES: 1,
    }
    kept = sorted(e["id"].split("/", 1)[1] for e in manifest["entries"])
    assert kept == ["jig.MID", *(f"rock/song{i}.mid" for i in range(6)), "tune-resaved.midi"]
    assert source["kept"] == 8 and manifest["pieces"] == 8
    assert source["with_drums"] == 6
    assert "music21" not in manifest["collections"]
    # The table printed on stdout, and progress (files/s) on stderr.
    assert re.search(r"^duplicate \(same bytes\) +1$", proc.stdout, re.M)
    assert re.search(r"^a tempo outside 20-400 bpm +1$", proc.stdout, re.M)
    assert re.search(r"^left out +7 of 15$", proc.stdout, re.M)
    assert "file/s" in proc.stderr


def test_kept_files_are_copied_as_they_were_and_split_by_their_notes(folder, built):
    data, _ = built
    manifest = load_manifest(data)
    root = data / "corpus"
    for e in manifest["entries"]:
        rel = e["id"].split("/", 1)[1]
        assert (root / e["path"]).read_bytes() == (folder / rel).read_bytes()
        assert e["split"] == split_of(score_fingerprint(Score(folder / rel)))


def test_a_rerun_reads_only_new_or_changed_files_and_a_renamed_folder_splits_alike(
    folder, built, tmp_path
):
    data, _ = built
    journal = next((data / "corpus" / JOURNAL).iterdir())
    lines = journal.read_text().splitlines()
    assert len(lines) == 15
    renamed = tmp_path / "renamed"
    shutil.copytree(folder, renamed)
    band(99).dump_midi(folder / "rock" / "song-new.mid")
    try:
        engine(
            "data", "build", "--data-dir", data, "--midi", folder, "--no-music21", "--copies", "0"
        )
    finally:
        (folder / "rock" / "song-new.mid").unlink()
    added = journal.read_text().splitlines()[len(lines) :]
    assert [json.loads(line)["rel"] for line in added] == ["rock/song-new.mid"]
    assert load_manifest(data)["pieces"] == 9

    other = tmp_path / "other-data"
    engine("data", "build", "--data-dir", other, "--midi", renamed, "--no-music21", "--copies", "0")
    splits = {e["id"].split("/", 1)[1]: e["split"] for e in load_manifest(other)["entries"]}
    before = {e["id"].split("/", 1)[1]: e["split"] for e in load_manifest(data)["entries"]}
    assert splits == {k: v for k, v in before.items() if k != "rock/song-new.mid"}


def test_a_folder_that_is_not_there_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "data", "build", "--data-dir", tmp_path,
         "--midi", tmp_path / "nowhere", "--no-music21"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--midi must be a folder" in proc.stderr and "nowhere" in proc.stderr
    assert not (tmp_path / "corpus" / "manifest.json").exists()


def test_a_tokenizer_trained_on_the_build_keeps_drums_programs_velocities_and_metre(built):
    data, _ = built
    paths = split_paths(data, "train") + split_paths(data, "valid")
    tokenizer = MidiTokenizer.train(paths, vocab_size=700)
    vocab = set(tokenizer.remi.vocab)
    assert {f"Program_{p}" for p in range(-1, 128)} <= vocab  # drums and every GM program
    assert {"TimeSig_6/8", "PitchDrum_36", "PitchDrum_42"} <= vocab
    song = next(p for p in paths if p.name == "song1.mid")
    tokens = tokenizer.to_base(tokenizer.encode(Score(song)))
    assert {"Program_-1", "Program_33", "Program_11", "PitchDrum_36"} <= set(tokens)
    assert len({t for t in tokens if t.startswith("Velocity_")}) >= 4
    assert any(t.startswith("Tempo_") for t in tokens)
    decoded = tokenizer.decode(tokenizer.encode(Score(song)))
    assert any(t.is_drum for t in decoded.tracks)
    assert {t.program for t in decoded.tracks if not t.is_drum} == {33, 11}
    jig_path = next(p for p in paths if p.name == "jig.MID")
    jig_tokens = tokenizer.to_base(tokenizer.encode(Score(jig_path)))
    assert "TimeSig_6/8" in jig_tokens
