"""The seam: a continuation follows its seed where the seed's sound stops, not a bar later.

Real checkpoint, tokenizer and FluidSynth: the seeds are what members upload (a tune whose
last bar is one short note, played a few ticks early as performed MIDI is; a seed that stops
mid-bar; tempo changes), and the clips are listened to by proxy (length, silent stretches).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.audio.render import FLUID_BLOCK, SAMPLE_RATE, TAIL_SECONDS
from engine.core.composer import ComposeRequest

TPQ = 480
SCALE = [60, 62, 64, 65, 67, 69, 71, 72]
QUARTER = 0.5  # seconds, at 120 bpm


def _seed(
    last: list[tuple[int, int]],
    *,
    tempos: tuple[tuple[int, float], ...] = ((0, 120.0),),
    jitter: int = 0,
) -> Score:
    """Two 4/4 bars of quarter notes, then `last`: (tick, ticks) notes. `jitter`: each of the
    two bars' onsets moved by up to that many ticks, as a player would."""
    score = Score(TPQ)
    for tick, bpm in tempos:
        score.tempos.append(Tempo(tick, bpm))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    track = Track("piano", 0, False)
    rng = np.random.default_rng(0)
    for beat, pitch in enumerate(SCALE):
        moved = int(rng.integers(-jitter, jitter + 1)) if jitter and beat else 0
        track.notes.append(Note(beat * TPQ + moved, TPQ - 20, pitch, 90))
    for tick, ticks in last:
        track.notes.append(Note(tick, ticks, 72, 90))
    score.tracks.append(track)
    return score


def _onsets(midi: bytes) -> np.ndarray:
    score = Score.from_midi(midi).to("second")
    return np.sort([n.time for t in score.tracks for n in t.notes])


def _longest_silence(audio: bytes, start: float, stop: float) -> float:
    """Seconds of the longest stretch between `start` and `stop` at least 50 dB under the
    clip's loudest 20 ms."""
    pcm, rate = sf.read(io.BytesIO(audio), dtype="float32")
    assert rate == SAMPLE_RATE
    mono = pcm.mean(axis=1) if pcm.ndim == 2 else pcm
    frame = SAMPLE_RATE // 50
    frames = len(mono) // frame
    rms = np.sqrt((mono[: frames * frame].reshape(frames, frame) ** 2).mean(axis=1)) + 1e-12
    quiet = 20 * np.log10(rms / rms.max()) < -50
    longest = run = 0
    for q in quiet[int(start * 50) : int(stop * 50)]:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return longest / 50


# The last bar: one short note on its bar line, exactly (a score) or 4 ticks early (played).
PHANTOM = [("on the bar line", 8 * TPQ), ("a few ticks early", 8 * TPQ - 4)]


@pytest.mark.parametrize("tick", [t for _, t in PHANTOM], ids=[n for n, _ in PHANTOM])
def test_a_short_last_note_makes_no_phantom_bar(composer, tick):
    """The seed's last bar holds a 16th-note C5 only: the continuation goes on in that bar,
    within a quarter note of where the C5 stops (it used to wait for the next bar line: a
    1.4 s hole), then writes the two bars asked."""
    seed = _seed([(tick, TPQ // 4)]).dumps_midi()
    composition = composer.compose(
        seed, ComposeRequest(bars=2, candidates=2, seed=3, include_seed=True)
    )
    seam = 4.0 + 0.125  # two bars, then the C5 (on the sixteenth grid)
    assert composition.seed_seconds == pytest.approx(seam)
    for candidate in composition.candidates:
        assert candidate.bars == 2
        onsets = _onsets(candidate.midi)
        following = onsets[onsets >= seam - 1e-6]
        assert following[0] <= seam + QUARTER + 1e-6
        # The seed's bar (rest included) and the two bars asked, then the tail.
        due = 5 * 4 * QUARTER + TAIL_SECONDS
        assert candidate.seconds == pytest.approx(due, abs=FLUID_BLOCK / SAMPLE_RATE)
        assert _longest_silence(candidate.audio, 4.0, 6.5) < 0.6


def test_a_note_cut_off_by_the_loops_end_makes_no_bar(composer):
    """The next bar's first note, played 4 ticks early and cut off 4 ticks later where the
    loop was cut (as a DAW export of a bar range leaves it): rounded onto the grid it made a
    bar of its own, so the continuation began a bar late and its clip ran long (a pop song's
    loop lost 1.3 s this way). The seed is two whole bars: the continuation opens a new one."""
    seed = _seed([(8 * TPQ - 4, 4)]).dumps_midi()
    composition = composer.compose(
        seed, ComposeRequest(bars=2, candidates=1, seed=3, include_seed=True)
    )
    assert composition.seed_seconds == pytest.approx(4.0)
    [candidate] = composition.candidates
    assert candidate.bars == 2
    assert candidate.seconds == pytest.approx(4 * 2.0 + TAIL_SECONDS, abs=FLUID_BLOCK / SAMPLE_RATE)


def test_a_continuation_on_its_own_starts_where_the_seed_stopped(composer):
    """include_seed off: the clip opens with the continuation (not with the seed's part of
    the bar as silence), and its MIDI keeps its bar lines on the music's with a pickup bar."""
    seed = _seed([(8 * TPQ, TPQ // 4)]).dumps_midi()
    composition = composer.compose(seed, ComposeRequest(bars=2, candidates=2, seed=3))
    rest = 4 * QUARTER - 0.125  # the seed's bar after its C5
    for candidate in composition.candidates:
        onsets = _onsets(candidate.midi)
        assert 0.0 <= onsets[0] <= QUARTER
        assert candidate.seconds == pytest.approx(
            rest + 4.0 + TAIL_SECONDS, abs=FLUID_BLOCK / SAMPLE_RATE
        )
        score = Score.from_midi(candidate.midi)
        metres = [(ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures]
        assert metres == [(0, 15, 16), (score.ticks_per_quarter * 15 // 4, 4, 4)]


def test_a_seed_that_stops_mid_bar_goes_on_mid_bar(composer):
    """Two quarter notes into its third bar the seed stops: the continuation takes up there."""
    seed = _seed([(8 * TPQ, TPQ), (9 * TPQ, TPQ)]).dumps_midi()
    composition = composer.compose(
        seed, ComposeRequest(bars=2, candidates=2, seed=5, include_seed=True)
    )
    seam = 4.0 + 2 * QUARTER
    assert composition.seed_seconds == pytest.approx(seam)
    for candidate in composition.candidates:
        onsets = _onsets(candidate.midi)
        assert seam - 1e-6 <= onsets[onsets >= seam - 1e-6][0] <= seam + QUARTER + 1e-6
        assert candidate.seconds == pytest.approx(
            5 * 4 * QUARTER + TAIL_SECONDS, abs=FLUID_BLOCK / SAMPLE_RATE
        )


def test_a_full_last_bar_still_starts_on_the_next_bar_line(composer):
    """A last bar whose sound lasts to its end is whole: the continuation opens a new bar."""
    seed = _seed([(8 * TPQ, 4 * TPQ)]).dumps_midi()
    composition = composer.compose(
        seed, ComposeRequest(bars=2, candidates=1, seed=3, include_seed=True)
    )
    assert composition.seed_seconds == pytest.approx(6.0)
    [candidate] = composition.candidates
    assert candidate.seconds == pytest.approx(5 * 2.0 + TAIL_SECONDS, abs=FLUID_BLOCK / SAMPLE_RATE)


def test_include_seed_keeps_the_seeds_tempo_changes(composer):
    """A seed that slows from 120 to 80 bpm in its second bar and ends at 100: the clip plays
    the seed at its own tempos, the continuation at 100 from where the seed stops."""
    seed = _seed(
        [(8 * TPQ, TPQ), (9 * TPQ, TPQ)], tempos=((0, 120.0), (4 * TPQ, 80.0), (8 * TPQ, 100.0))
    ).dumps_midi()
    composition = composer.compose(
        seed, ComposeRequest(bars=2, candidates=1, seed=5, include_seed=True)
    )
    seam = 4 * 0.5 + 4 * 0.75 + 2 * 0.6  # a bar at 120, a bar at 80, two beats at 100
    assert composition.seed_seconds == pytest.approx(seam)
    [candidate] = composition.candidates
    score = Score.from_midi(candidate.midi)
    tempos = [(t.time * TPQ // score.ticks_per_quarter, round(t.qpm)) for t in score.tempos]
    assert tempos == [(0, 120), (4 * TPQ, 80), (8 * TPQ, 100), (10 * TPQ, 100)]
    assert candidate.seconds == pytest.approx(
        seam + 2 * 0.6 + 2 * 4 * 0.6 + TAIL_SECONDS, abs=FLUID_BLOCK / SAMPLE_RATE
    )


def test_a_performed_seed_is_quantised_onto_its_bars(composer, base_checkpoint):
    """Onsets off the grid by up to 10 ticks (~10 ms), the last bar's note 4 ticks early: the
    tokenizer's grid puts each note in its bar, the seed spans three bars, and the
    continuation follows the last note without a phantom bar."""
    tokenizer = base_checkpoint.tokenizer
    score = _seed([(8 * TPQ - 4, TPQ // 4)], jitter=10)
    bars = [t for t in tokenizer.to_base(tokenizer.encode(score)) if t == "Bar_None"]
    assert len(bars) == 3
    composition = composer.compose(
        score.dumps_midi(), ComposeRequest(bars=2, candidates=1, seed=3, include_seed=True)
    )
    assert composition.seed_seconds == pytest.approx(4.125)
    [candidate] = composition.candidates
    assert candidate.seconds == pytest.approx(5 * 2.0 + TAIL_SECONDS, abs=FLUID_BLOCK / SAMPLE_RATE)


def test_drums_play_on_through_the_rest_of_the_seeds_bar_and_stay_on_its_bar_lines(
    composer, build_score
):
    """A band seed (drums, bass, piano) whose third bar is one crash of a chord: the model
    goes on inside that bar, and the drums (which it does not write) go on from the seed's
    own bars from where the seed stopped, every kick on a beat of the seed's bars."""
    kick, hihat = 36, 42
    drums = [(b, 0.25, kick) for b in range(8)] + [(b + 0.5, 0.25, hihat) for b in range(8)]
    seed = build_score(
        [
            (0, False, [(b, 1, 60 + (b % 4) * 2) for b in range(8)] + [(8, 0.25, 72)]),
            (33, False, [(b, 2, 36) for b in range(0, 8, 2)] + [(8, 0.25, 36)]),
            (0, True, [*drums, (8, 0.25, kick)]),
        ]
    ).dumps_midi()
    composition = composer.compose(
        seed, ComposeRequest(bars=2, candidates=2, seed=4, include_seed=True)
    )
    assert composition.seed_seconds == pytest.approx(4.125)
    for candidate in composition.candidates:
        score = Score.from_midi(candidate.midi)
        beat = score.ticks_per_quarter
        kicks = sorted(
            n.time for t in score.tracks if t.is_drum for n in t.notes if n.pitch == kick
        )
        # Every beat of the seed's third bar after the crash, and of the two bars asked.
        assert [k for k in kicks if k > 8 * beat] == [b * beat for b in range(9, 20)]


# Metres the tokenizer lacks: each bar is written as bars it holds, bars are counted in the
# seed's own metre.


def test_a_bar_the_vocabulary_lacks_is_split_into_bars_it_holds():
    from engine.api.metre import bar_parts

    assert bar_parts("4/4") == ["4/4"]
    assert bar_parts("8/4") == ["4/4", "4/4"]
    assert bar_parts("7/4") == ["4/4", "3/4"]
    assert bar_parts("5/8") == ["3/8", "1/4"]
    assert bar_parts("11/8") == ["4/4", "3/8"]
    assert bar_parts("7/16") is None  # no held bars add up to it: MidiTok reads it as 4/4


def _odd_metre(numerator: int, denominator: int, *, beats_cut: int = 0) -> Score:
    """Two bars of `numerator`/`denominator` at 120 bpm: a piano C4 on each downbeat and G4 on
    the other beats, a kick on each downbeat and a hi-hat on the others; the last
    `beats_cut` beats left out."""
    score = Score(TPQ)
    score.tempos.append(Tempo(0, 120.0))
    score.time_signatures.append(TimeSignature(0, numerator, denominator))
    piano, kit = Track("piano", 0, False), Track("drums", 0, True)
    beat = TPQ * 4 // denominator
    for b in range(2 * numerator - beats_cut):
        downbeat = b % numerator == 0
        piano.notes.append(Note(b * beat, beat, 60 if downbeat else 67, 90))
        kit.notes.append(Note(b * beat, 60, 36 if downbeat else 42, 90))
    score.tracks.extend([piano, kit])
    return score


def test_a_7_4_seed_is_read_in_bars_of_4_4_and_3_4_on_its_own_downbeats(base_checkpoint, grammar):
    """MidiTok drops a metre it lacks and counts 4/4 across it: a 7/4 seed's second downbeat
    fell on the fourth beat of a 4/4 bar. Split, every 7/4 bar is a 4/4 bar then a 3/4 one."""
    from engine.generation.prompt import build_prompt

    tokenizer = base_checkpoint.tokenizer
    prompt = build_prompt(tokenizer, grammar, _odd_metre(7, 4))
    base = tokenizer.to_base(prompt.seed_ids)
    assert [t for t in base if t.startswith("TimeSig_")] == ["TimeSig_4/4", "TimeSig_3/4"] * 2
    # Each C4 (a downbeat) is the first note of a 4/4 bar.
    bars = " ".join(base).split("Bar_None")[1:]
    assert [("Pitch_60" in bar, bar.split()[0]) for bar in bars] == [
        (True, "TimeSig_4/4"),
        (False, "TimeSig_3/4"),
    ] * 2


@pytest.mark.parametrize(
    "metre,quarters", [((8, 4), 8), ((7, 4), 7), ((5, 8), 2.5)], ids=["8/4", "7/4", "5/8"]
)
def test_bars_of_a_metre_the_vocabulary_lacks_are_counted_in_that_metre(composer, metre, quarters):
    """Two bars asked of a 7/4 seed are two bars of 7/4 (14 quarter notes), written as 4/4 and
    3/4 in turn; the output states the seed's metre, and its drums (continued from the seed)
    hit every downbeat of it."""
    seed = _odd_metre(*metre).dumps_midi()
    composition = composer.compose(
        seed, ComposeRequest(bars=2, candidates=2, seed=3, include_seed=True)
    )
    bar = quarters * QUARTER
    assert composition.seed_seconds == pytest.approx(2 * bar)
    for candidate in composition.candidates:
        assert candidate.bars == 2
        assert candidate.seconds == pytest.approx(
            4 * bar + TAIL_SECONDS, abs=FLUID_BLOCK / SAMPLE_RATE
        )
        score = Score.from_midi(candidate.midi)
        tpq = score.ticks_per_quarter
        assert {(ts.numerator, ts.denominator) for ts in score.time_signatures} == {metre}
        kicks = sorted(n.time for t in score.tracks if t.is_drum for n in t.notes if n.pitch == 36)
        assert kicks == [round(b * quarters * tpq) for b in range(4)]


def test_a_7_4_seed_that_stops_inside_its_4_4_part_goes_on_through_the_3_4_part(composer):
    """The seed stops two beats into its second 7/4 bar: the continuation finishes that bar
    (two beats of 4/4, then the 3/4 part), then writes the two bars asked."""
    seed = _odd_metre(7, 4, beats_cut=5).dumps_midi()
    composition = composer.compose(
        seed, ComposeRequest(bars=2, candidates=1, seed=3, include_seed=True)
    )
    assert composition.seed_seconds == pytest.approx(9 * QUARTER)
    [candidate] = composition.candidates
    assert candidate.bars == 2
    assert candidate.seconds == pytest.approx(
        4 * 7 * QUARTER + TAIL_SECONDS, abs=FLUID_BLOCK / SAMPLE_RATE
    )
