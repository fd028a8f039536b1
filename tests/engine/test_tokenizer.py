"""MIDI -> ids -> MIDI round trips with the shipped tokenizer."""

from __future__ import annotations

import pytest
from symusic import Score

EXAMPLES = ["motif.mid", "waltz-violin.mid", "band.mid"]


def _notes(score: Score, resolution: int) -> list[tuple]:
    """(onset, pitch, program/drum) at the tokenizer's grid, sorted."""
    tpq = score.ticks_per_quarter
    return sorted(
        (round(n.time * resolution / tpq), n.pitch, -1 if t.is_drum else t.program)
        for t in score.tracks
        for n in t.notes
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_round_trip_keeps_every_note(base_checkpoint, examples, name):
    tok = base_checkpoint.tokenizer
    score = Score(examples / name)
    ids = tok.encode(score)
    back = tok.decode(ids)
    resolution = 12  # positions per beat: the examples sit on this grid
    assert _notes(back, resolution) == _notes(score, resolution)
    assert back.time_signatures[0].numerator == score.time_signatures[0].numerator
    assert abs(back.tempos[0].qpm - score.tempos[0].qpm) < 5  # tempo bins are ~5% apart


def test_ids_are_in_vocabulary_and_bpe_compresses(base_checkpoint, examples):
    tok = base_checkpoint.tokenizer
    ids = tok.encode(Score(examples / "band.mid"))
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert len(tok.to_base(ids)) > 1.2 * len(ids)  # drums compress least


def test_base_tokens_of_specials(base_checkpoint):
    tok = base_checkpoint.tokenizer
    assert tok.base_tokens(tok.bos_id) == ["BOS_None"]
    assert tok.base_tokens(tok.eos_id) == ["EOS_None"]
