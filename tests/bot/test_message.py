"""The composition message's pieces that need no Discord: upload budget and embed facts."""

from __future__ import annotations

from bot.cogs.compose._job import ComposeJob
from bot.cogs.compose._message import PIANOROLL_RESERVE_BYTES, audio_budget, embed
from bot.engine_port import CandidateResult, ComposeResult

TEN_MIB = 10 * 1024 * 1024


def result(*notes: str | None) -> ComposeResult:
    candidates = [
        CandidateResult(
            midi=b"MThd",
            audio=b"OggS",
            seconds=8.0,
            notes=12,
            tokens=40,
            invalid_rate=0.0,
            audio_note=note,
        )
        for note in notes
    ]
    return ComposeResult(candidates=candidates, pianoroll=b"\x89PNG")


def test_every_file_of_a_message_fits_the_upload_limit() -> None:
    for candidates in range(1, 5):
        each = audio_budget(TEN_MIB, candidates)
        assert each * candidates + PIANOROLL_RESERVE_BYTES <= TEN_MIB


def test_the_embed_states_parameters_seed_model_and_any_audio_reduction() -> None:
    job = ComposeJob(
        seed_midi=b"MThd",
        seed_label='saved seed "intro"',
        bars=8,
        tempo=96,
        instrument="flute",
        include_seed=True,
    )
    shown = embed(12, job, result(None, "shortened to fit the upload limit"), model_version_id=None)
    assert shown.title == "Composition #12"
    assert 'saved seed "intro"' in (shown.description or "")
    fields = {f.name: f.value for f in shown.fields}
    assert fields["Bars"] == "8" and fields["Tempo"] == "96 bpm"
    assert fields["Instrument"] == "flute" and fields["Model"] == "base model"
    assert fields["Audio fitted to the upload limit"] == (
        "Candidate 2: shortened to fit the upload limit"
    )
    assert shown.image.url == "attachment://pianoroll.png"


def test_the_embed_names_the_servers_model_version() -> None:
    job = ComposeJob(seed_midi=None, seed_label="none")
    shown = embed(3, job, result(None), model_version_id=17)
    assert {f.name: f.value for f in shown.fields}["Model"] == "v17"
