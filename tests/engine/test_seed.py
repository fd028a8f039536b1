"""Every kind of bad seed gets one friendly sentence (and the CLI writes nothing)."""

from __future__ import annotations

import pytest
from symusic import Note, Score, Tempo, Track

from engine.errors import BadSeed
from engine.seed import MAX_SEED_NOTES, read_seed


def _midi(notes: int = 4, bpm: float = 120.0, start_beat: float = 0.0) -> bytes:
    score = Score(480)
    score.tempos.append(Tempo(0, bpm))
    track = Track("t", 0, False)
    for i in range(notes):
        track.notes.append(Note(int((start_beat + i * 0.25) * 480), 120, 60 + i % 12, 80))
    score.tracks.append(track)
    return score.dumps_midi()


def bad_seeds(examples) -> dict[str, tuple[bytes, str]]:
    good = (examples / "band.mid").read_bytes()
    return {
        "not midi": (b"this is a text file, not music\n", "not a MIDI file"),
        "truncated": (good[: len(good) // 2], "broken or truncated"),
        "empty": (_midi(notes=0), "no notes"),
        "huge file": (b"MThd" + b"\0" * 1_100_000, "MB"),
        "too many notes": (_midi(notes=MAX_SEED_NOTES + 1), "notes"),
        "absurd tempo": (_midi(bpm=1000), "tempo"),
        "absurd length": (_midi(notes=2, start_beat=120 * 40), "minutes"),
    }


@pytest.mark.parametrize("kind", ["not midi", "truncated", "empty", "huge file",
                                  "too many notes", "absurd tempo", "absurd length"])
def test_bad_seed_is_refused_with_a_reason(examples, kind):
    data, reason = bad_seeds(examples)[kind]
    with pytest.raises(BadSeed, match=reason) as info:
        read_seed(data)
    assert "\n" not in str(info.value)


def test_good_seeds_are_read(examples):
    for name in ("motif.mid", "waltz-violin.mid", "band.mid"):
        assert read_seed((examples / name).read_bytes()).note_num() > 0
