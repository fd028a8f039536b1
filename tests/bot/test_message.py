"""The composition message's pieces that need no Discord: upload budget and embed facts."""

from __future__ import annotations

from bot.services.composing import ComposeJob
from bot.services.engine_port import (
    DRUMS,
    CandidateResult,
    ComposeResult,
    Decoding,
    EngineRestarting,
)
from bot.ui.compose_message import PIANOROLL_RESERVE_BYTES, audio_budget, embed
from bot.ui.compose_progress import describe

TEN_MIB = 10 * 1024 * 1024
EIGHT_MIB = 8 * 1024 * 1024


def candidate(
    *,
    quality_lowered: bool = False,
    cut_from: float | None = None,
    programs=(),
    bars: int | None = None,
) -> CandidateResult:
    return CandidateResult(
        midi=b"MThd",
        audio=b"OggS",
        seconds=8.0,
        notes=12,
        tokens=40,
        invalid_rate=0.0,
        # The engine's own words, which members must not see.
        audio_note="quality lowered to fit 2359296 bytes" if quality_lowered else None,
        audio_quality_lowered=quality_lowered,
        audio_cut_from=cut_from,
        programs=list(programs),
        bars=bars,
    )


def result(*candidates: CandidateResult, tempo: float | None = 120.0) -> ComposeResult:
    return ComposeResult(candidates=list(candidates), pianoroll=b"\x89PNG", tempo=tempo)


def fields_of(shown) -> dict[str, str]:
    return {f.name: f.value for f in shown.fields}


def test_every_file_of_a_message_fits_the_upload_limit() -> None:
    for candidates in range(1, 5):
        each = audio_budget(TEN_MIB, candidates)
        assert each * candidates + PIANOROLL_RESERVE_BYTES <= TEN_MIB


def test_the_embed_states_parameters_seed_model_and_any_audio_reduction() -> None:
    job = ComposeJob.of(
        b"MThd",
        'saved seed "intro"',
        bars=8,
        tempo=96,
        instrument="flute",
        include_seed=True,
    )
    shown = embed(
        12,
        job,
        result(candidate(), candidate(quality_lowered=True), candidate(cut_from=31.6)),
        model_version_id=None,
        upload_limit=EIGHT_MIB,
    )
    assert shown.title == "Composition #12"
    assert 'saved seed "intro"' in (shown.description or "")
    fields = fields_of(shown)
    assert fields["Bars"] == "8" and fields["Tempo"] == "96 bpm"
    assert fields["Instrument"] == "flute" and fields["Model"] == "base model"
    # Members read plain words about their server's limit, not the engine's byte counts.
    assert fields["Audio fitted to the upload limit"] == (
        "Candidate 2: lower audio quality to fit this server's 8 MB upload limit\n"
        "Candidate 3: lower audio quality, and shortened from 32 s to 8 s, to fit this "
        "server's 8 MB upload limit"
    )
    assert "bytes" not in str(shown.to_dict())
    assert shown.image.url == "attachment://pianoroll.png"


def test_without_a_seed_the_embed_says_what_the_composer_used() -> None:
    job = ComposeJob.of(None, "none (from scratch)")
    played = result(candidate(programs=[0, DRUMS]), candidate(programs=[33, 0]), tempo=132.0)
    fields = fields_of(embed(5, job, played, model_version_id=None, upload_limit=EIGHT_MIB))
    assert fields["Tempo"] == "132 bpm"
    assert fields["Instrument"] == "acoustic grand piano, drums, electric bass (finger)"
    assert "as in the seed" not in str(fields)


def test_with_a_seed_the_embed_says_the_tempo_is_the_seeds() -> None:
    job = ComposeJob.of(b"MThd", 'attached "a.mid"')
    fields = fields_of(
        embed(
            5, job, result(candidate(programs=[40])), model_version_id=None, upload_limit=EIGHT_MIB
        )
    )
    assert fields["Tempo"] == "120 bpm (the seed's)"
    assert fields["Instrument"] == "as in the seed"


def test_the_embed_names_the_servers_model_version() -> None:
    job = ComposeJob.of(None, "none")
    shown = embed(3, job, result(candidate()), model_version_id=17, upload_limit=EIGHT_MIB)
    assert fields_of(shown)["Model"] == "v17"


def test_the_thinking_message_says_when_the_composer_restarted() -> None:
    # The engine client's event for jobs whose engine died: they start again on a new one.
    assert describe(EngineRestarting()) == (
        "The composer restarted; your composition is starting again..."
    )
    assert describe(Decoding(40.0)) == "Composing... 40%"


def test_the_embed_says_which_candidate_stopped_before_the_bars_asked() -> None:
    job = ComposeJob.of(None, "none", bars=16)
    cut = result(candidate(bars=16), candidate(bars=3), candidate())
    shown = fields_of(embed(5, job, cut, model_version_id=None, upload_limit=EIGHT_MIB))
    assert shown["Shorter than asked"] == "Candidate 2 stopped after 3 of 16 bars"
    whole = result(candidate(bars=16), candidate(bars=16))
    assert "Shorter than asked" not in fields_of(
        embed(6, job, whole, model_version_id=None, upload_limit=EIGHT_MIB)
    )
