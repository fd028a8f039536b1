"""Sampling with the shipped model: bars, validity, determinism, carried-over metre."""

from __future__ import annotations

import pytest
from symusic import Score

from bench import member_seeds
from engine.api.errors import BadRequest
from engine.api.schema import ComposeRequest
from engine.api.seed_midi import read_seed
from engine.generation.grammar import BAR_TOKEN_CAP, NONE, GrammarState
from engine.generation.prompt import build_prompt
from engine.generation.sample import SamplingOptions, generate


def _bars(tokenizer, ids) -> int:
    return sum(t == "Bar_None" for t in tokenizer.to_base(ids))


@pytest.fixture(scope="module")
def waltz_prompt(base_checkpoint, grammar, examples):
    return build_prompt(base_checkpoint.tokenizer, grammar, Score(examples / "waltz-violin.mid"))


@pytest.mark.parametrize("bars", [1, 4, 16])
def test_generates_exactly_the_requested_bars(base_checkpoint, grammar, bars):
    tok = base_checkpoint.tokenizer
    rows = generate(
        base_checkpoint.model, grammar, [tok.bos_id], 3, SamplingOptions(bars=bars), seed=1
    )
    for row in rows:
        assert row.stop_reason == "bars"
        assert _bars(tok, row.tokens) == bars
        assert tok.to_base(row.tokens)[0] == "Bar_None"


# Seeds like members upload, with a sampling seed that once stopped a candidate short: a bar
# crowded with BAR_TOKEN_CAP ids right after a Position allowed no id at all ("dead end"),
# 1-4 bars into the 4 asked.
DENSE_SEEDS = [
    ("band loop", lambda: member_seeds.band_loop(bars=4), 0),
    ("6/8 tune", lambda: member_seeds.six_eight_tune(bars=4), 8),
    ("5/4 groove", lambda: member_seeds.five_four_groove(bars=4), 10),
    ("3/4 piano", lambda: member_seeds.waltz_piano(bars=4), 2),
    ("dense piano", lambda: member_seeds.dense_piano(bars=4), 5),
    ("band.mid", lambda: Score(member_seeds.EXAMPLES / "band.mid"), 6),
]


@pytest.mark.parametrize(
    "make,sampling_seed",
    [(m, s) for _, m, s in DENSE_SEEDS],
    ids=[name for name, _, _ in DENSE_SEEDS],
)
def test_every_candidate_of_a_dense_seed_reaches_the_bars_asked(
    base_checkpoint, grammar, make, sampling_seed
):
    tok = base_checkpoint.tokenizer
    prompt = build_prompt(tok, grammar, read_seed(member_seeds.midi_bytes(make())))
    rows = generate(
        base_checkpoint.model,
        grammar,
        prompt.ids,
        2,
        SamplingOptions(bars=4, time_signature=prompt.time_signature),
        seed=sampling_seed,
    )
    for row in rows:
        assert (row.stop_reason, row.bars, _bars(tok, row.tokens)) == ("bars", 4, 4)
        assert tok.remi.tokens_errors(tok.to_base(row.tokens)) == 0
        opened = [i for i, t in enumerate(row.tokens) if grammar.opens_bar[t]]
        longest = max(b - a for a, b in zip(opened, [*opened[1:], len(row.tokens)], strict=True))
        assert longest <= BAR_TOKEN_CAP + 5  # a crowded bar closes within a note


def test_generated_sequences_are_valid_remi(base_checkpoint, grammar, waltz_prompt):
    tok = base_checkpoint.tokenizer
    rows = generate(
        base_checkpoint.model,
        grammar,
        waltz_prompt.ids,
        4,
        SamplingOptions(bars=8, temperature=1.3, time_signature=waltz_prompt.time_signature),
        seed=2,
    )
    for row in rows:
        base = tok.to_base(row.tokens)
        assert tok.remi.tokens_errors(base) == 0
        assert all(0 <= i < tok.vocab_size for i in row.tokens)
        assert 0.0 <= row.invalid_mass / row.steps <= 1.0
        score = tok.decode(row.tokens)
        assert score.note_num() > 0


def test_metre_and_tempo_of_the_seed_hold(base_checkpoint, grammar, waltz_prompt):
    tok = base_checkpoint.tokenizer
    assert waltz_prompt.time_signature != NONE
    rows = generate(
        base_checkpoint.model,
        grammar,
        waltz_prompt.ids,
        2,
        SamplingOptions(bars=6, time_signature=waltz_prompt.time_signature),
        seed=3,
    )
    for row in rows:
        base = tok.to_base(row.tokens)
        assert {t for t in base if t.startswith("TimeSig")} == {"TimeSig_3/4"}
        assert not any(t.startswith("Tempo") for t in base)


def test_same_seed_same_music_other_seed_other_music(base_checkpoint, grammar):
    tok, model = base_checkpoint.tokenizer, base_checkpoint.model
    opts = SamplingOptions(bars=4)
    a = [r.tokens for r in generate(model, grammar, [tok.bos_id], 2, opts, seed=7)]
    b = [r.tokens for r in generate(model, grammar, [tok.bos_id], 2, opts, seed=7)]
    c = [r.tokens for r in generate(model, grammar, [tok.bos_id], 2, opts, seed=8)]
    assert a == b
    assert a != c
    assert a[0] != a[1]  # candidates of one request differ


def test_instrument_option_puts_every_new_note_on_that_program(base_checkpoint, grammar):
    tok = base_checkpoint.tokenizer
    rows = generate(
        base_checkpoint.model, grammar, [tok.bos_id], 2, SamplingOptions(bars=4, program=40), seed=4
    )
    for row in rows:
        programs = {t for t in tok.to_base(row.tokens) if t.startswith("Program")}
        assert programs == {"Program_40"}


def test_prompt_state_tracks_the_seed_end(base_checkpoint, grammar, waltz_prompt):
    state = GrammarState.after(grammar, [waltz_prompt.ids], "cpu")
    assert int(state.limit[0]) == 36  # 3/4 at 12 positions per beat


@pytest.mark.parametrize(
    "field,value",
    [("bars", 0), ("bars", 65), ("temperature", 0.0), ("top_p", 1.5), ("program", 128)],
)
def test_options_out_of_range_are_refused_before_the_sampler(field, value):
    # The sampler trusts its options: the request that carries them (engine.api.schema) is
    # checked once, when the bot makes it and when the engine decodes it.
    with pytest.raises(BadRequest, match=rf"^{field} must be .* \(received {value:g}\)$"):
        ComposeRequest(**{field: value})


def test_instrument_option_excludes_drums_after_a_drum_seed(base_checkpoint, grammar, examples):
    tok = base_checkpoint.tokenizer
    prompt = build_prompt(tok, grammar, Score(examples / "band.mid"))
    rows = generate(
        base_checkpoint.model, grammar, prompt.ids, 2, SamplingOptions(bars=4, program=73), seed=5
    )
    for row in rows:
        base = tok.to_base(row.tokens)
        assert not any(t.startswith("PitchDrum") for t in base)
        assert {t for t in base if t.startswith("Program")} <= {"Program_73"}
