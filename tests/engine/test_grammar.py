"""The grammar mask never forbids real music, and it forbids what would break MIDI."""

from __future__ import annotations

import pytest
import torch
from symusic import Score

from engine.grammar import NONE, GrammarState, T


def _walk(grammar, ids, **constraints):
    """Feed ids one by one; return the first id the mask refused (or None)."""
    state = GrammarState.after(grammar, [[ids[0]]], "cpu")
    opts = {"want_time_signature": torch.tensor([NONE]), "keep_tempo": torch.tensor([False]),
            "want_program": torch.tensor([NONE]), "must_open_bar": torch.tensor([False])}
    opts.update({k: torch.tensor([v]) for k, v in constraints.items()})
    for i in ids[1:]:
        if not bool(state.allowed(grammar, **opts)[0, i]):
            return i
        state.advance(grammar, torch.tensor([i]))
    return None


@pytest.mark.parametrize("name", ["motif.mid", "waltz-violin.mid", "band.mid"])
def test_real_music_passes_the_mask(base_checkpoint, grammar, examples, name):
    tok = base_checkpoint.tokenizer
    ids = [tok.bos_id, *tok.encode(Score(examples / name))]
    assert _walk(grammar, ids) is None


def test_mask_refuses_a_second_note_start_and_backward_positions(base_checkpoint, grammar):
    tok = base_checkpoint.tokenizer
    remi = tok.remi
    # A lone base token id exists for each REMI token (BPE keeps the base vocabulary).
    def single(token: str) -> int:
        ids = [i for i in range(tok.vocab_size) if tok.base_tokens(i) == [token]]
        assert ids, token
        return ids[0]

    bar, ts = single("Bar_None"), single("TimeSig_4/4")
    p12, p6 = single("Position_12"), single("Position_6")
    prog, pitch = single("Program_0"), single("Pitch_60")
    assert remi is not None
    assert _walk(grammar, [tok.bos_id, bar, ts, p12, prog, pitch]) is None
    assert _walk(grammar, [tok.bos_id, bar, ts, p12, p6]) == p6  # positions go forward
    assert _walk(grammar, [tok.bos_id, bar, prog]) == prog  # a bar states its metre first
    assert _walk(grammar, [tok.bos_id, bar, ts, single("Position_47"), prog]) is None
    assert _walk(grammar, [tok.bos_id, single("Bar_None"), single("TimeSig_3/4"),
                           single("Position_40")]) is not None  # past the end of a 3/4 bar


def test_drums_only_take_drum_pitches(grammar):
    assert bool(grammar.follows[T["ProgramDrum"], T["PitchDrum"]])
    assert not bool(grammar.follows[T["ProgramDrum"], T["Pitch"]])
    assert not bool(grammar.follows[T["Program"], T["PitchDrum"]])
