"""Every kind of bad seed gets one friendly sentence (and the CLI writes nothing)."""

from __future__ import annotations

import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.api.errors import BadSeed
from engine.api.seed_midi import MAX_SEED_BYTES, MAX_SEED_NOTES, read_seed


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
def test_bad_seed_is_refused_with_a_reason(examples, kind):
    data, reason = bad_seeds(examples)[kind]
    with pytest.raises(BadSeed, match=reason) as info:
        read_seed(data)
    assert "\n" not in str(info.value)


def test_good_seeds_are_read(examples):
    for name in ("motif.mid", "waltz-violin.mid", "band.mid"):
        assert read_seed((examples / name).read_bytes()).note_num() > 0


def _raw_midi(*, division: int = 480, tempo_mspq: int | None = None) -> bytes:
    """One note in a type-0 file written byte by byte, for headers symusic cannot write."""
    events = b"" if tempo_mspq is None else b"\x00\xff\x51\x03" + tempo_mspq.to_bytes(3, "big")
    events += b"\x00\x90\x3c\x40\x83\x60\x80\x3c\x40\x00\xff\x2f\x00"
    return (
        b"MThd"
        + (6).to_bytes(4, "big")
        + b"\x00\x00\x00\x01"
        + division.to_bytes(2, "big")
        + b"MTrk"
        + len(events).to_bytes(4, "big")
        + events
    )


@pytest.mark.parametrize(
    "data,expected",
    [
        # 19.6 bpm used to read "20 bpm is outside 20-400 bpm"
        (_midi(bpm=19.6), "the seed's tempo is 19.6 bpm; a seed's tempo must be within 20 and 400"),
        (_midi(bpm=19.96), "the seed's tempo is just under 20 bpm"),
        (_midi(bpm=400.4), "the seed's tempo is 400.4 bpm"),
        (_midi(bpm=1000), "the seed's tempo is 1,000 bpm"),
        # a tempo event of 0 microseconds per beat used to read "inf bpm"
        (_raw_midi(tempo_mspq=0), "a tempo event says a beat lasts 0 microseconds"),
        (_raw_midi(division=0), "its header says a beat lasts 0 ticks"),
        (_raw_midi(division=0xE728), "counts time in SMPTE frames"),
        (
            b"MThd" + b"\0" * (MAX_SEED_BYTES - 3),
            "the seed is just over 1 MB; seeds must be at most",
        ),
        (
            _midi(notes=2, start_beat=2 * 60 * 30.2),
            "the seed lasts 30.2 minutes; seeds may last at",
        ),
    ],
    ids=[
        "19.6 bpm",
        "19.96 bpm",
        "400.4 bpm",
        "1000 bpm",
        "tempo 0",
        "division 0",
        "SMPTE",
        "1 MB + 3 bytes",
        "30.2 minutes",
    ],
)
def test_refusals_say_precisely_what_is_wrong(data, expected):
    with pytest.raises(BadSeed) as info:
        read_seed(data)
    message = str(info.value)
    assert expected in message, message
    assert not {"inf", "nan"} & set(message.replace(";", " ").split()), message


def _loop(*extra: tuple[int, int], metre: tuple[int, int] = (4, 4)) -> bytes:
    """Two bars of `metre` in quarter notes at 480 ticks a quarter, then `extra` (tick,
    ticks) notes."""
    score = Score(480)
    score.time_signatures.append(TimeSignature(0, *metre))
    track = Track("piano", 0, False)
    quarters = 2 * metre[0] * 4 // metre[1]
    for beat in range(quarters):
        track.notes.append(Note(beat * 480, 460, 60 + beat, 90))
    for tick, ticks in extra:
        track.notes.append(Note(tick, ticks, 72, 90))
    score.tracks.append(track)
    return score.dumps_midi()


@pytest.mark.parametrize(
    ("metre", "early"), [((4, 4), 3), ((3, 4), 3), ((4, 4), 0)], ids=["4/4", "3/4", "on the line"]
)
def test_a_note_cut_off_at_the_loops_end_is_left_out(metre, early):
    """The next bar's note, begun a hair early (or on the line) and cut 3 ticks later where
    the loop ends, is not music: read, the seed ends with its two bars' notes."""
    line = 2 * metre[0] * 4 // metre[1] * 480
    score = read_seed(_loop((line - early, 3), metre=metre))
    assert score.note_num() == line // 480
    assert score.end() == line - 20


@pytest.mark.parametrize(
    "extra",
    [
        (3840 - 3, 200),  # played early, but it sounds on into the next bar
        (3840, 120),  # a sixteenth on the line: a bar of its own, as written
        (3780, 60),  # a thirty-second note before the line: the bar's last note
    ],
)
def test_notes_at_the_loops_end_that_are_music_stay(extra):
    score = read_seed(_loop(extra))
    assert score.note_num() == 9
