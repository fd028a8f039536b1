"""A request's work is known and bounded before any is done (engine.api.workload).

The abusive request these guard against: a seed of a hundred bytes at 20 bpm in 4/2 asking
for 64 bars made 26-minute clips (482 CPU-seconds and 3 GB for four candidates).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.api.config import WorkLimits
from engine.api.errors import BadRequest, BadSeed
from engine.api.limits import DEFAULT_TEMPO_BPM, MAX_TOKENS_PER_BAR
from engine.api.metre import quarters_per_bar, vocabulary_metres
from engine.api.schema import ComposeRequest
from engine.api.seed_midi import SeedFacts
from engine.api.workload import Workload, check_request, check_workload

METRES = vocabulary_metres()
LIMITS = WorkLimits()  # the defaults an engine runs with


def slow_seed(bpm: float = 20.0, metre: tuple[int, int] = (4, 2), beats: int = 4) -> bytes:
    """A few quarter notes at `bpm` in `metre`: tiny bytes, long bars."""
    score = Score(480)
    score.tempos.append(Tempo(0, bpm))
    score.time_signatures.append(TimeSignature(0, *metre))
    track = Track("piano", 0, False)
    for i in range(beats):
        track.notes.append(Note(i * 480, 480, 60 + i % 12, 90))
    score.tracks.append(track)
    return score.dumps_midi()


def facts(seed: bytes) -> SeedFacts:
    return SeedFacts.of(Score.from_midi(seed))


SLOW = slow_seed()
BAR_SECONDS = 8 * 60 / 20  # a bar of 4/2 at 20 bpm: 24 s
MOST_BARS = int(LIMITS.max_clip_seconds // BAR_SECONDS)  # what the message must offer


def refusal(seed: bytes | None, limits: WorkLimits = LIMITS, **params) -> str:
    with pytest.raises(BadRequest) as error:
        check_request(ComposeRequest(seed_midi=seed, **params), limits, METRES)
    return str(error.value)


def test_the_slow_seed_asking_for_64_bars_is_refused_saying_what_to_ask_for():
    message = refusal(SLOW, bars=64)
    assert message.startswith(
        "at 20 bpm, 64 bars of 4/2 would last 26 minutes; a clip may "
        f"last at most {LIMITS.max_clip_seconds / 60:g} minutes"
    )
    assert message.endswith(f"ask for at most {MOST_BARS} bars")
    # What it offers is really the most that fits, for 4 candidates and for 1.
    for candidates in (4, 1):
        check_request(
            ComposeRequest(seed_midi=SLOW, bars=MOST_BARS, candidates=candidates), LIMITS, METRES
        )
        with pytest.raises(BadRequest):
            check_request(
                ComposeRequest(seed_midi=SLOW, bars=MOST_BARS + 1, candidates=candidates),
                LIMITS,
                METRES,
            )


def test_the_composition_limit_counts_every_candidate_and_offers_fewer():
    limits = WorkLimits(max_clip_seconds=300, max_composition_seconds=600)
    message = refusal(SLOW, limits, bars=12, candidates=4)
    assert "4 candidates of 12 bars of 4/2 would last 19 minutes together" in message
    assert "a composition may last at most 10 minutes" in message
    assert message.endswith("ask for at most 6 bars (more with fewer candidates)")
    check_request(ComposeRequest(seed_midi=SLOW, bars=12, candidates=2), limits, METRES)


def test_a_faster_tempo_is_the_way_out_the_message_offers():
    work = Workload.of(ComposeRequest(bars=64, tempo=200.0), facts(SLOW), METRES)
    assert work.tempo == 200.0 and work.clip_seconds() == pytest.approx(64 * 8 * 60 / 200)
    check_workload(work, LIMITS)  # 154 s: fits
    message = refusal(SLOW, WorkLimits(max_clip_seconds=10), bars=1)
    assert message.endswith("ask for a faster tempo")


def test_without_a_known_metre_the_widest_the_model_may_choose_counts():
    widest = max(METRES, key=quarters_per_bar)
    work = Workload.of(ComposeRequest(bars=64), None, METRES)
    assert (work.metre, work.metre_known, work.tempo) == (widest, False, DEFAULT_TEMPO_BPM)
    assert work.clip_seconds() == 64 * quarters_per_bar(widest) * 60 / DEFAULT_TEMPO_BPM
    # Every option at its largest fits the defaults when no seed slows it down.
    check_workload(work, LIMITS)
    message = refusal(None, bars=64, tempo=60.0)
    assert message.startswith(f"at 60 bpm, 64 bars of up to {widest} would last")
    # A metre the vocabulary lacks is written as bars it holds (7/8 as 2/4 + 3/8) and counts
    # as itself; one no held bars add up to (7/16) counts as the widest too.
    odd = Workload.of(ComposeRequest(), facts(slow_seed(120, (7, 8))), METRES)
    assert (odd.metre, odd.metre_known) == ("7/8", True)
    odd = Workload.of(ComposeRequest(), facts(slow_seed(120, (7, 16))), METRES)
    assert (odd.metre, odd.metre_known) == (widest, False)


def test_an_included_seed_counts_and_can_be_left_out():
    # 40 quarter notes at 20 bpm: the seed alone lasts 2 minutes, in 4/4.
    long_seed = slow_seed(20.0, (4, 4), beats=40)
    work = Workload.of(ComposeRequest(bars=4, include_seed=True), facts(long_seed), METRES)
    assert work.seed_quarters == 40
    assert work.clip_seconds() == pytest.approx((40 + 16) * 3.0)
    message = refusal(long_seed, WorkLimits(max_clip_seconds=100), bars=4, include_seed=True)
    assert "with the seed before them" in message and message.endswith("leave out include_seed")
    check_request(
        ComposeRequest(seed_midi=long_seed, bars=4), WorkLimits(max_clip_seconds=100), METRES
    )


def test_generated_tokens_are_bounded_at_the_decode_loops_cap():
    limits = WorkLimits(max_composition_tokens=4 * 8 * MAX_TOKENS_PER_BAR)
    message = refusal(None, limits, bars=9, candidates=4)
    assert f"may take up to {4 * 9 * MAX_TOKENS_PER_BAR:,} tokens" in message
    assert message.endswith("ask for at most 8 bars (more with fewer candidates)")


def test_an_operator_may_take_fewer_seed_notes():
    with pytest.raises(BadSeed, match="the seed has 4 notes; seeds may have at most 3$"):
        check_request(ComposeRequest(seed_midi=SLOW, bars=1), WorkLimits(max_seed_notes=3), METRES)


@pytest.mark.parametrize("bars", [1, 16, 64])
def test_clip_seconds_are_what_the_bars_last(bars):
    work = Workload.of(ComposeRequest(bars=bars), facts(slow_seed(96.0, (3, 4))), METRES)
    assert work.clip_seconds() == pytest.approx(bars * 3 * 60 / 96)
    assert work.composition_seconds() == pytest.approx(4 * work.clip_seconds())
    assert math.isclose(work.tokens(), 4 * bars * MAX_TOKENS_PER_BAR)


def compose(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", "compose", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_the_cli_refuses_the_slow_seed_before_loading_the_model(tmp_path: Path):
    seed, out = tmp_path / "slow.mid", tmp_path / "out"
    seed.write_bytes(SLOW)
    run = compose(seed, "--bars", 64, "--out", out, "--json")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [f"error: {refusal(SLOW, bars=64)}"]
    assert not out.exists()


def test_the_limits_are_an_operators_to_change(tmp_path: Path):
    import os

    out = tmp_path / "out"
    env = {**os.environ, "MOTIF_MAX_CLIP_SECONDS": "20"}
    run = compose("--bars", 16, "--tempo", 120, "--out", out, env=env)
    assert run.returncode == 2
    assert "a clip may last at most 20 seconds" in run.stderr and not out.exists()
