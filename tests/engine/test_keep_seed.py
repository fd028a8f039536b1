"""Continuations keep their seed: instruments, drums, dynamics, texture, key and form, with
the shipped model through the composer (and the sampler for the form)."""

from __future__ import annotations

import numpy as np
import pytest
from symusic import Score

from bench import member_seeds
from engine.api.form import plan_form
from engine.api.schema import decode_seed_reply, encode
from engine.core.composer import ComposeRequest
from engine.evaluation.musical_stats import Notes, in_scale_share
from engine.generation.bars import split_bars
from engine.generation.grammar import NONE
from engine.generation.keep_seed import copyable_bars
from engine.generation.sample import Guidance, SamplingOptions, generate
from engine.generation.seed_profile import DRUMS, profile_seed
from engine.generation.seed_tokens import SeedTokens
from engine.generation.stages import plan_composition
from engine.generation.steering import RowSteering


def _programs(score: Score) -> set[int]:
    return {DRUMS if t.is_drum else int(t.program) for t in score.tracks if t.note_num()}


@pytest.fixture(scope="module")
def band_composition(composer):
    seed = member_seeds.band_loop(bars=4)
    midi = member_seeds.midi_bytes(seed)
    return seed, composer.compose(midi, ComposeRequest(bars=8, candidates=2, seed=3))


def test_every_instrument_of_a_band_seed_keeps_playing_and_none_appears(band_composition):
    seed, composition = band_composition
    wanted = _programs(seed)
    assert DRUMS in wanted
    for candidate in composition.candidates:
        assert _programs(Score.from_midi(candidate.midi)) == wanted
        assert candidate.bars == 8


def test_the_drums_go_on_to_the_last_bar(band_composition):
    seed, composition = band_composition
    for candidate in composition.candidates:
        score = Score.from_midi(candidate.midi)
        drums = next(t for t in score.tracks if t.is_drum)
        bar = score.ticks_per_quarter * 4
        onsets = drums.notes.numpy()["time"]
        assert set(range(8)) <= set((onsets // bar).tolist())  # a groove in every bar


def test_a_sax_melody_stays_one_sax_line_in_the_seed_s_dynamics(composer):
    seed = member_seeds.sax_melody(bars=4)
    profile = profile_seed(seed)
    composition = composer.compose(
        member_seeds.midi_bytes(seed), ComposeRequest(bars=8, candidates=2, seed=5)
    )
    low, high = profile.velocity_range()
    for candidate in composition.candidates:
        score = Score.from_midi(candidate.midi)
        assert _programs(score) == {65}
        notes = score.tracks[0].notes.numpy()
        order = np.argsort(notes["time"], kind="stable")
        ends = (notes["time"] + notes["duration"])[order]
        assert (ends[:-1] <= notes["time"][order][1:]).all()  # one note at a time
        # Velocities come from the tokenizer's levels nearest the seed's range.
        assert notes["velocity"].min() >= low - 8 and notes["velocity"].max() <= high + 8


def test_steering_toward_the_key_puts_more_notes_in_the_seed_s_scale(base_checkpoint, grammar):
    tokenizer = base_checkpoint.tokenizer
    seed = member_seeds.sax_melody(bars=4)
    profile = profile_seed(seed)
    assert profile.key is not None
    params = ComposeRequest(bars=8, candidates=4, seed=11)
    plan = plan_composition(tokenizer, grammar, member_seeds.midi_bytes(seed), params)
    shares = {}
    for strength in (0.0, 2.0):
        guidance = Guidance(RowSteering(scale=profile.scale, key_strength=strength))
        rows = generate(
            base_checkpoint.model,
            grammar,
            plan.prompt.ids,
            4,
            plan.options,
            seed=11,
            guidance=guidance,
        )
        notes = Notes.of(tokenizer.decode([i for r in rows for i in r.tokens]))
        shares[strength] = in_scale_share(notes, profile.key)
    # A sax line in A-flat major is far from what the model learned most (78% of its notes in
    # scale unsteered with the shipped model, 52% with the one before); two nats per foreign
    # note must at least halve the foreign notes and leave nine in ten in scale. The product
    # goal (>= 90% on uploads, with the seed's whole guidance) is measured by
    # bench.out_of_domain over many seeds, not on one.
    assert 1 - shares[2.0] <= (1 - shares[0.0]) / 2
    assert shares[2.0] >= 0.9


def test_an_aaba_form_repeats_its_first_phrase(base_checkpoint, grammar):
    tokenizer = base_checkpoint.tokenizer
    opens_bar = grammar.opens_bar.tolist()
    guidance = Guidance(form=plan_form("AABA", bars=16, seed_bars=0))
    rows = generate(
        base_checkpoint.model,
        grammar,
        [tokenizer.bos_id],
        2,
        SamplingOptions(bars=16),
        seed=2,
        guidance=guidance,
    )
    for row in rows:
        bars = split_bars(row.tokens, opens_bar)
        assert len(bars) == 16
        assert bars[4:7] == bars[0:3]  # A again (its last bar varied)
        assert bars[12:15] == bars[0:3]
        assert bars[7][: (len(bars[3]) + 1) // 2] == bars[3][: (len(bars[3]) + 1) // 2]
        assert row.copied > 0


def test_the_seed_s_theme_returns_by_default(base_checkpoint, grammar):
    tokenizer = base_checkpoint.tokenizer
    seed = member_seeds.six_eight_tune(bars=4)
    seed_tokens = SeedTokens.of(tokenizer, member_seeds.midi_bytes(seed))
    plan = plan_composition(
        tokenizer,
        grammar,
        member_seeds.midi_bytes(seed),
        ComposeRequest(bars=12, candidates=2, seed=4),
    )
    assert plan.guidance is not None and plan.seed is not None
    theme = plan.seed.form[8].seed_bar  # the last phrase starts with the seed's theme
    seed_bar = copyable_bars(seed_tokens.ids, grammar, plan.seed.arrangement.written)[theme]
    assert seed_bar is not None
    rows = generate(
        base_checkpoint.model,
        grammar,
        plan.prompt.ids,
        2,
        plan.options,
        seed=4,
        guidance=plan.guidance,
    )
    for row in rows:
        assert split_bars(row.tokens, grammar.opens_bar.tolist())[8] == seed_bar


def test_copyable_bars_leave_out_instruments_the_rows_may_not_write(base_checkpoint, grammar):
    tokenizer = base_checkpoint.tokenizer
    seed = member_seeds.band_loop(bars=4)
    tokens = SeedTokens.of(tokenizer, member_seeds.midi_bytes(seed))
    pitched = frozenset(p.program for p in profile_seed(seed).pitched)
    # With drums in every bar, no bar of the whole seed may be copied by rows without drums;
    # the seed's bars without their drums may.
    assert all(bar is None for bar in copyable_bars(tokens.ids, grammar, pitched))
    copyable = copyable_bars(tokens.copyable_ids, grammar, pitched)
    program_of = grammar.program.tolist()
    assert sum(bar is not None for bar in copyable) >= 3
    assert all({program_of[i] for i in bar} - {NONE} <= pitched for bar in copyable if bar)
    assert len(copyable_bars(tokens.ids, grammar, frozenset())) == len(copyable)


def test_the_seed_reader_s_reply_keeps_the_profile(base_checkpoint):
    seed = member_seeds.band_loop(bars=4)
    tokens = SeedTokens.of(base_checkpoint.tokenizer, member_seeds.midi_bytes(seed))
    reply = decode_seed_reply(encode(tokens.to_reply()))  # as it crosses the child's pipe
    again = SeedTokens.from_reply(reply)
    assert again.ids == tokens.ids and again.material == tokens.material
    assert again.pitched_ids == tokens.pitched_ids and tokens.pitched_ids != tokens.ids
    assert again.profile.parts == tokens.profile.parts
    assert again.profile.key == tokens.profile.key
    assert again.profile == tokens.profile


def test_an_unknown_form_is_refused_with_the_choices():
    from engine.api.errors import BadRequest

    with pytest.raises(BadRequest, match="form must be one of return, free, AABA, ABAB"):
        ComposeRequest(form="rondo")


def test_a_clip_with_its_seed_keeps_the_seed_s_tempo_changes(composer):
    from symusic import Tempo

    seed = member_seeds.sax_melody(bars=4)
    seed.tempos = [Tempo(0, 90.0), Tempo(seed.ticks_per_quarter * 8, 120.0)]  # bar 3: faster
    composition = composer.compose(
        member_seeds.midi_bytes(seed),
        ComposeRequest(bars=4, candidates=1, seed=2, include_seed=True),
    )
    score = Score.from_midi(composition.candidates[0].midi)
    tpq = score.ticks_per_quarter
    assert [(t.time / tpq, round(t.qpm)) for t in score.tempos] == [(0, 90), (8, 120), (16, 120)]
    # The seed lasts 8 beats at 90 and 8 at 120: 5.33 + 4 seconds.
    assert composition.seed_seconds == pytest.approx(8 * 60 / 90 + 8 * 60 / 120, abs=0.01)


def test_voices_sharing_a_program_may_sound_together() -> None:
    from symusic import Note, Track

    from engine.generation.keep_seed import solo_programs

    seed = member_seeds.sax_melody(bars=2)
    assert solo_programs(profile_seed(seed)) == {65}
    chorale = Score(480)
    for low in (48, 55, 60, 67):  # four monophonic voices, all on the piano
        track = Track("voice", 0, False)
        track.notes.extend(Note(beat * 480, 480, low + beat % 3, 80) for beat in range(8))
        chorale.tracks.append(track)
    assert solo_programs(profile_seed(chorale)) == set()


def test_a_checkpoint_s_record_says_which_instruments_the_model_writes(grammar) -> None:
    from engine.generation.keep_seed import ANY_PITCHED, guide, known_programs
    from engine.model.coverage import ProgramCoverage

    record = ProgramCoverage({0: 90_000, 65: 5_000, 33: 10, -1: 3_000}, {})
    assert known_programs(record) == {0, 65, DRUMS}
    assert known_programs(None) == ANY_PITCHED  # no record: it reads any pitched program
    seed = member_seeds.band_loop(bars=4)  # drums, bass (33), keys (4)
    plan = guide(
        profile_seed(seed),
        [],
        grammar,
        bars=8,
        form="free",
        instrument=None,
        known=known_programs(record),
    )
    # Neither the bass nor the keys were learned: the model writes for the keyboard and its
    # notes are voiced onto them; the drums go on from the seed's own bars.
    assert plan.arrangement.written == {0}
    assert {p.program for p in plan.arrangement.voiced} == {33, 4}
    assert [p.program for p in plan.arrangement.continued] == [DRUMS]
