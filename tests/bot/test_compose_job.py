"""A ComposeJob holds the engine's ComposeRequest, and the database's JSON of its options is
written and read in one place: the stored shape stays the one compositions already have."""

from __future__ import annotations

import msgspec
import pytest

from bot.services.composing import AS_IN_SEED, ComposeJob
from bot.services.engine_port import ComposeRequest
from engine.api.errors import BadRequest
from engine.api.form import DEFAULT_FORM

SEED = b"MThd seed"


def test_a_members_options_become_the_engines_request() -> None:
    job = ComposeJob.of(SEED, "label", bars=8, tempo=96, instrument="flute", include_seed=True)
    assert isinstance(job.options, ComposeRequest)
    assert (job.options.bars, job.options.tempo, job.options.program) == (8, 96.0, 73)
    assert job.options.include_seed and job.seed_midi == SEED
    sent = job.request(guild_id=5, max_audio_bytes=1 << 20, model="5/v2")
    assert msgspec.structs.replace(sent, guild_id=None, max_audio_bytes=None, model=None) == (
        job.options
    )
    assert (sent.guild_id, sent.max_audio_bytes, sent.model) == (5, 1 << 20, "5/v2")


def test_no_instrument_and_no_seed_to_start_the_clips_with_or_quantise() -> None:
    job = ComposeJob.of(None, "none", instrument=AS_IN_SEED, include_seed=True, quantise=True)
    assert job.options.program is None and not job.options.include_seed
    assert not job.options.quantise


def test_each_job_samples_afresh() -> None:
    seeds = {ComposeJob.of(None, "none").options.seed for _ in range(8)}
    assert None not in seeds and len(seeds) > 1


def test_the_stored_options_keep_their_shape_and_come_back_as_the_same_request() -> None:
    job = ComposeJob.of(
        SEED,
        'saved seed "intro"',
        bars=12,
        candidates=3,
        temperature=0.8,
        tempo=140,
        instrument="french-horn",
        include_seed=True,
        form="AABA",
        follow_key=False,
        quantise=True,
    )
    params = job.params()
    assert params == {
        "bars": 12,
        "candidates": 3,
        "temperature": 0.8,
        "tempo": 140,
        "instrument": "french-horn",
        "include_seed": True,
        "form": "AABA",
        "follow_key": False,
        "quantise": True,
        "sampling_seed": job.options.seed,
        "seed_label": 'saved seed "intro"',
    }
    stored = msgspec.json.decode(msgspec.json.encode(params))  # as the JSON column gives it
    again = ComposeJob.from_params(stored, seed_midi=SEED, seed_id=4)
    assert again.seed_label == job.seed_label and again.seed_id == 4
    assert msgspec.structs.replace(again.options, seed=job.options.seed) == job.options


def test_stored_options_of_older_compositions_still_read() -> None:
    # Rows written before a form or follow_key existed, or with a name no longer listed.
    job = ComposeJob.from_params({"bars": 4, "instrument": "theremin", "form": "ABBA"})
    assert job.options.program is None and job.options.form == DEFAULT_FORM
    assert job.options.follow_key and job.seed_label == "unknown" and job.seed_midi is None


def test_stored_options_out_of_range_are_refused_with_the_value() -> None:
    with pytest.raises(BadRequest, match=r"bars must be within 1 and 64 \(received 80\)"):
        ComposeJob.from_params({"bars": 80})
