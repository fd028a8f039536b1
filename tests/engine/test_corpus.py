"""Corpus building: the real abc2midi, dedupe, and a split that never moves."""

from __future__ import annotations

import json

from engine.data.corpus import (
    Piece,
    abc2midi_binary,
    convert_abc_file,
    note_fingerprint,
    split_of,
    write_manifest,
)

TUNES = """X:1
T:First
M:3/4
L:1/8
K:D
D2 F2 A2 | d4 c2 | B2 A2 F2 | E6 |]

X:2
T:Second
M:6/8
L:1/8
K:G
GAB c2A | BGG G3 | GAB c2A | BGE D3 |]
"""


def test_abc_book_becomes_one_midi_per_tune(tmp_path):
    book = tmp_path / "book.abc"
    book.write_text(TUNES)
    out = tmp_path / "midi"
    assert convert_abc_file(book, out, abc2midi_binary()) == 2
    assert sorted(p.name for p in out.iterdir()) == ["book1.mid", "book2.mid"]
    assert not list(tmp_path.glob("*.mid")), "abc2midi must not write beside its input"
    assert convert_abc_file(book, out, abc2midi_binary()) == 0  # resumed: nothing redone


def test_duplicates_are_removed_and_split_is_stable(tmp_path):
    book = tmp_path / "book.abc"
    book.write_text(TUNES)
    out = tmp_path / "midi" / "folk"
    convert_abc_file(book, out, abc2midi_binary())
    copy = out / "copy.mid"
    copy.write_bytes((out / "book1.mid").read_bytes())
    assert note_fingerprint(copy) == note_fingerprint(out / "book1.mid")
    pieces = [Piece("folk", p.stem, p) for p in sorted(out.glob("*.mid"))]
    manifest = write_manifest(tmp_path, pieces, {})
    assert manifest["pieces"] == 2 and manifest["duplicates_removed"] == 1
    assert split_of("folk/book1") == split_of("folk/book1")
    splits = {split_of(f"c/{i}") for i in range(200)}
    assert splits == {"train", "valid"}
    share = sum(split_of(f"c/{i}") == "valid" for i in range(2000)) / 2000
    assert 0.02 < share < 0.09


def test_augmented_copies_follow_their_piece_and_are_resumed(tmp_path):
    from symusic import Score

    from engine.data.corpus import augment_corpus, augmented_paths

    book = tmp_path / "book.abc"
    book.write_text(TUNES)
    out = tmp_path / "corpus"
    convert_abc_file(book, out / "midi" / "folk", abc2midi_binary())
    pieces = [Piece("folk", p.stem, p) for p in sorted((out / "midi" / "folk").glob("*.mid"))]
    manifest = augment_corpus(out, write_manifest(out, pieces, {}), 2, workers=1)
    copies = manifest["augmented"]["entries"]
    assert [c["id"] for c in copies] == [
        "folk/book1~1",
        "folk/book1~2",
        "folk/book2~1",
        "folk/book2~2",
    ]
    assert all(c["split"] == split_of(c["source"]) for c in copies)
    for c in copies:
        copy, source = Score(out / c["path"]), Score(out / f"midi/{c['source']}.mid")
        assert copy.note_num() == source.note_num()
    assert json.loads((out / "manifest.json").read_text())["augmented"]["pieces"] == 4
    assert sorted(
        augmented_paths(tmp_path, "train") + augmented_paths(tmp_path, "valid")
    ) == sorted(out / c["path"] for c in copies)
    stamp = (out / copies[0]["path"]).stat().st_mtime_ns
    augment_corpus(out, manifest, 2, workers=1)
    assert (out / copies[0]["path"]).stat().st_mtime_ns == stamp  # resumed, not rewritten
