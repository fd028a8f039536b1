"""A candidate's clip and MIDI span exactly the bars asked, even when its last bars are quiet."""

from __future__ import annotations

import io
import logging

import msgspec
import numpy as np
import pytest
import soundfile as sf
from symusic import Score

from bench import member_seeds
from engine.api.schema import (
    CandidateResult,
    ComposeResult,
    JobDone,
    decode_from_engine,
    encode,
)
from engine.audio.loudness import TARGET_LUFS, integrated_loudness
from engine.audio.render import FLUID_BLOCK, SAMPLE_RATE, TAIL_SECONDS
from engine.core.composer import ComposeRequest
from engine.generation import sample
from tests.engine.test_grammar import single_id

# (seed, seconds per bar at its tempo): 4/4 at 120, 3/4 at 96, 6/8 at 116 (three quarters).
SEEDS = [
    ("band.mid", lambda: Score(member_seeds.EXAMPLES / "band.mid"), 2.0),
    ("waltz-violin.mid", lambda: Score(member_seeds.EXAMPLES / "waltz-violin.mid"), 3 * 60 / 96),
    ("6/8 tune", lambda: member_seeds.six_eight_tune(bars=4), 3 * 60 / 116),
]


def _pcm(audio: bytes) -> np.ndarray:
    pcm, rate = sf.read(io.BytesIO(audio), dtype="float32")
    assert rate == SAMPLE_RATE
    return pcm


def _assert_spans(candidate, bars: int, bar_seconds: float) -> None:
    due = bars * bar_seconds
    midi_end = Score.from_midi(candidate.midi).to("second").end()
    assert midi_end == pytest.approx(due, abs=1e-3)
    pcm = _pcm(candidate.audio)
    assert abs(len(pcm) - (due + TAIL_SECONDS) * SAMPLE_RATE) <= FLUID_BLOCK
    assert candidate.seconds == pytest.approx(due + TAIL_SECONDS, abs=FLUID_BLOCK / SAMPLE_RATE)
    assert integrated_loudness(pcm, SAMPLE_RATE) == pytest.approx(TARGET_LUFS, abs=1.0)


@pytest.mark.parametrize(
    "make,bar_seconds", [(m, b) for _, m, b in SEEDS], ids=[name for name, _, _ in SEEDS]
)
def test_every_clip_lasts_its_bars_plus_the_tail(composer, make, bar_seconds):
    seed = member_seeds.midi_bytes(make())
    composition = composer.compose(seed, ComposeRequest(bars=3, candidates=2, seed=11))
    for candidate in composition.candidates:
        assert candidate.bars == 3
        _assert_spans(candidate, 3, bar_seconds)


def test_a_clip_whose_last_bars_are_quiet_still_lasts_every_bar(composer, examples):
    """A candidate that falls silent after its first bar: its clip used to stop at the last
    note (+ tail), so members heard 3 s of the 9 s composed."""
    # Sampling seed 6: a first bar whose notes all end within it.
    plan = composer.plan(
        (examples / "band.mid").read_bytes(), ComposeRequest(bars=4, candidates=1, seed=6)
    )
    [row] = composer.decode(plan)
    grammar, tok = composer.grammar, composer.tokenizer
    opened = [i for i, t in enumerate(row.tokens) if grammar.opens_bar[t]]
    empty_bar = [single_id(tok, "Bar_None"), single_id(tok, "TimeSig_4/4")]
    row.tokens = row.tokens[: opened[1]] + empty_bar * 3  # bar 1 as written, then 3 quiet bars
    plan.seed = None  # no drums or bass going on from the seed: the quiet bars stay quiet
    [candidate] = composer.finish(plan, [row]).candidates
    last_note = max(
        n.time + n.duration
        for t in Score.from_midi(candidate.midi).to("second").tracks
        for n in t.notes
    )
    assert last_note <= 2.0  # the music stops within the first bar ...
    _assert_spans(candidate, 4, 2.0)  # ... and the clip still lasts all four


def test_a_candidate_cut_short_by_the_token_cap_says_how_many_bars_it_finished(
    composer, examples, monkeypatch, caplog
):
    """The cap stays as a last resort; a row it stops reports its finished bars, which the
    composition message then shows, and the engine logs it."""
    monkeypatch.setattr(sample, "MAX_TOKENS_PER_BAR", 8)  # 32 ids for 4 bars: too few
    plan = composer.plan(
        (examples / "band.mid").read_bytes(), ComposeRequest(bars=4, candidates=1, seed=5)
    )
    [row] = composer.decode(plan)
    opened = sum(bool(composer.grammar.opens_bar[t]) for t in row.tokens)
    assert (row.stop_reason, len(row.tokens), row.bars) == ("token cap", 32, opened - 1)
    with caplog.at_level(logging.WARNING, logger="engine.generation.stages"):
        [candidate] = composer.finish(plan, [row]).candidates
    assert candidate.bars == row.bars < 4
    assert f"stopped after {row.bars} of 4 bars (token cap)" in caplog.text


def test_bars_written_cross_the_wire_and_old_results_still_read():
    made = CandidateResult(b"MThd", b"OggS", 8.0, 12, 40, 0.0, bars=7)
    wire = msgspec.msgpack.decode(encode(JobDone(1, ComposeResult([made], b"\x89PNG"))))
    assert decode_from_engine(msgspec.msgpack.encode(wire)).result.candidates[0].bars == 7
    del wire["result"]["candidates"][0]["bars"]  # an engine from before the field
    assert decode_from_engine(msgspec.msgpack.encode(wire)).result.candidates[0].bars is None
