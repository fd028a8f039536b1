"""The seeds the out-of-domain bench continues: uploads like members' and two controls.

Uploads: eight bars of real songs (bench/miditok_songs.py) with the real next bars as the
reference, and our own seeds as a member would attach them (the bundled examples, which have
no reference). Controls: the opening of one held-out Bach chorale and one held-out folk tune,
the music the model was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

from symusic import Score

from bench.continuations import opening_of
from bench.heldout import bench_corpus, by_hash, is_score
from bench.machine import REPO_ROOT
from bench.miditok_songs import SongsUnavailable, read_songs
from engine.evaluation.musical_stats import (
    DRUMS,
    MIDI_DEFAULT_TEMPO,
    bars_written,
    instruments,
    segment,
    tempo_at,
    time_signature_at,
)

SEED_BARS = 8
BARS = 16  # what the model writes, and the reference's length
EXAMPLES = REPO_ROOT / "engine" / "examples"  # the bundled seeds


@dataclass(frozen=True)
class OodSeed:
    name: str
    control: bool  # a held-out corpus piece, not an upload
    source: str  # where it comes from, for the tables
    midi: bytes  # what the engine is given, as a member would upload it
    bars: int  # the seed's length in bars
    reference: Score | None  # the real next BARS bars, when the seed is cut from a piece

    @property
    def score(self) -> Score:
        return Score.from_midi(self.midi)

    def describe(self) -> str:
        """Its bars, metre, tempo and instruments, for the tables."""
        score = self.score
        programs = instruments(score)
        pitched = ", ".join(str(p) for p in sorted(programs - {DRUMS}))
        return (
            f"{self.bars} bars of {time_signature_at(score, 0) or '4/4'} at "
            f"{tempo_at(score, 0) or MIDI_DEFAULT_TEMPO:.0f} bpm; GM {pitched or '-'}"
            f"{' + drums' if DRUMS in programs else ''}"
        )


def song_seeds() -> list[OodSeed]:
    seeds = []
    for song, score in read_songs().items():
        seed, _ = segment(score, song.start_bar, SEED_BARS)
        reference, _ = segment(score, song.start_bar + SEED_BARS, BARS)
        seeds.append(
            OodSeed(
                song.name,
                False,
                f"MidiTok tests, bar {song.start_bar + 1}: {song.what}",
                seed.dumps_midi(),
                SEED_BARS,
                reference,
            )
        )
    return seeds


def bundled_seeds() -> list[OodSeed]:
    seeds = []
    for path in sorted(EXAMPLES.glob("*.mid")):
        midi = path.read_bytes()
        seeds.append(
            OodSeed(
                path.stem,
                False,
                f"engine/examples/{path.name}",
                midi,
                bars_written(Score.from_midi(midi)),
                None,
            )
        )
    return seeds


def control_seeds() -> list[OodSeed]:
    """The first held-out chorale and the first held-out folk tune (in the corpus's fixed
    hashed order) long enough for a seed and a reference."""
    corpus = bench_corpus()
    chosen: dict[bool, OodSeed] = {}
    for entry in sorted(corpus.pieces("valid"), key=by_hash):
        chorale = is_score(entry["id"])
        if chorale in chosen:
            continue
        opening = opening_of(entry["id"], Score(corpus.path(entry)), seed_bars=SEED_BARS, bars=BARS)
        if opening is not None:
            chosen[chorale] = OodSeed(
                entry["id"],
                True,
                f"held-out {'Bach chorale' if chorale else 'folk tune'}",
                opening.seed.dumps_midi(),
                SEED_BARS,
                opening.reference,
            )
        if len(chosen) == 2:
            break
    return [chosen[c] for c in (True, False) if c in chosen]


def upload_seeds() -> tuple[list[OodSeed], str | None]:
    """Songs and our own seeds; when the songs cannot be had, our own seeds and why not."""
    try:
        songs = song_seeds()
    except SongsUnavailable as exc:
        return bundled_seeds(), str(exc)
    return songs + bundled_seeds(), None
