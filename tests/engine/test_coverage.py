"""Notes per GM program in a token stream, and what the shipped checkpoint says it learned."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from engine.model.checkpoint import Checkpoint
from engine.model.coverage import DRUMS, ProgramCoverage, count_programs


def test_counts_match_the_notes_of_each_program(base_checkpoint, band, waltz, scale):
    tok = base_checkpoint.tokenizer
    pieces = [band, waltz, scale, scale]
    ids = np.asarray([i for s in pieces for i in (tok.bos_id, *tok.encode(s), tok.eos_id)])
    coverage = count_programs(ids, tok)
    expected: Counter[int] = Counter()
    for score in pieces:
        for track in score.tracks:
            expected[DRUMS if track.is_drum else track.program] += track.note_num()
    assert coverage.notes == dict(expected)
    assert coverage.pieces == {0: 3, 33: 1, 40: 2, DRUMS: 1}
    assert coverage.notes_of(65) == 0 and coverage.pieces_of(65) == 0


def test_the_record_round_trips_and_lists_every_program():
    coverage = ProgramCoverage({0: 5000, 33: 10, DRUMS: 3}, {0: 20, 33: 1, DRUMS: 1})
    record = coverage.to_record()
    assert len(record["programs"]) == 129
    assert record["programs"]["65"] == {"notes": 0, "pieces": 0}
    again = ProgramCoverage.from_record(record)
    assert again.learned(0) and not again.learned(33) and not again.learned(DRUMS)
    assert again.learned(33, min_notes=10)
    assert again.learned_programs() == frozenset({0})
    assert again.plus(coverage).notes_of(33) == 20
    with pytest.raises(ValueError, match="received 128"):
        again.notes_of(128)


def test_a_checkpoint_without_the_record_says_so(base_checkpoint):
    bare = Checkpoint(base_checkpoint.model, base_checkpoint.tokenizer, {"step": 1})
    assert bare.coverage is None
