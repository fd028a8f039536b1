"""Rendering with the real FluidSynth and soundfont, and OGG encoding with the real libsndfile."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import soundfile as sf
from symusic import Tempo

from engine.audio import render
from engine.audio.loudness import CEILING_DBFS, TARGET_LUFS, integrated_loudness
from engine.audio.render import (
    SAMPLE_RATE,
    EncodedAudio,
    Renderer,
    RendererUnavailable,
    encode_ogg,
)
from soundfonts import SoundfontNotFound

TOLERANCE = 0.005  # seconds; FluidSynth applies events on 64-sample blocks (1.3 ms)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if len(pcm) else 0.0


def decode(data: bytes) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(data), dtype="float32")


@pytest.mark.parametrize(
    ("piece", "end"), [("scale", 4.0), ("waltz", 7.5), ("drums", 4.0), ("band", 4.0)]
)
def test_render_lasts_the_midi_plus_tail_and_is_loud_stereo(renderer, request, piece, end):
    pcm = renderer.render(request.getfixturevalue(piece))

    assert pcm.dtype == np.float32 and pcm.ndim == 2 and pcm.shape[1] == 2
    assert len(pcm) / SAMPLE_RATE == pytest.approx(end + 1.0, abs=TOLERANCE)
    assert rms(pcm) > 0.02
    # At the loudness target (the limiter keeps peaks under the ceiling, not at it).
    assert integrated_loudness(pcm, SAMPLE_RATE) == pytest.approx(TARGET_LUFS, abs=0.2)
    assert np.abs(pcm).max() <= 10 ** (CEILING_DBFS / 20) + 1e-6
    assert not np.allclose(pcm[:, 0], pcm[:, 1])  # real stereo, not a copied channel


def test_tempo_changes_and_tail_follow_the_midi(renderer, build_score):
    score = build_score([(0, False, [(b, 1, 60) for b in range(8)])], bpm=120)
    score.tempos.append(Tempo(4 * 480, 60.0))  # 4 beats at 120, 4 at 60
    pcm = renderer.render(score, tail_seconds=0.25)
    assert len(pcm) / SAMPLE_RATE == pytest.approx(2.0 + 4.0 + 0.25, abs=TOLERANCE)


def envelope(pcm: np.ndarray, seconds: float = 0.05) -> np.ndarray:
    window = int(seconds * SAMPLE_RATE)
    frames = len(pcm) // window * window
    return np.sqrt(np.mean(np.square(pcm[:frames]).reshape(-1, window * 2), axis=1))


def test_midi_bytes_and_score_render_alike(renderer, waltz, band):
    from_score = renderer.render(waltz)
    renderer.render(band)  # whatever rings on from another render must not leak into the next
    from_bytes = renderer.render(waltz.dumps_midi())
    assert from_bytes.shape == from_score.shape
    # Not sample-identical: FluidSynth's reverb modulation keeps its phase across renders, so
    # compare loudness envelopes (50 ms windows).
    ours, theirs = envelope(from_bytes), envelope(from_score)
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99
    assert np.abs(ours - theirs).max() < 0.05


def test_drum_tracks_play_the_percussion_channel(renderer, build_score):
    hits = [(b, 0.25, pitch) for b, pitch in enumerate([36, 38, 42, 49])]
    drums = renderer.render(build_score([(0, True, hits)]))
    piano = renderer.render(build_score([(0, False, hits)]))

    assert rms(drums) > 0.02
    # Same notes on a melodic channel are piano tones; on channel 10 they are a drum kit.
    assert np.abs(drums - piano).max() > 0.2


def test_more_tracks_than_midi_channels_all_sound(renderer, build_score):
    parts = [(program, False, [(0, 1, 60)]) for program in range(19)]
    parts.append((73, False, [(6, 1, 72)]))  # the 20th track (flute) plays alone at 3 s
    pcm = renderer.render(build_score(parts))
    alone = pcm[int(3.0 * SAMPLE_RATE) : int(3.5 * SAMPLE_RATE)]
    assert rms(alone) > 0.01


def test_silence_is_not_boosted(renderer, build_score):
    renderer.render(build_score([(16, False, [(0, 1, 60)])]))  # an organ: its release rings on
    pcm = renderer.render(build_score([(0, False, [])]))
    assert len(pcm) == SAMPLE_RATE  # the tail alone
    assert np.abs(pcm).max() < 1e-3


def test_other_sample_rates_render_at_that_rate(renderer, scale):
    pcm = renderer.render(scale, sample_rate=44_100)
    assert len(pcm) / 44_100 == pytest.approx(5.0, abs=TOLERANCE)
    assert rms(pcm) > 0.02


@pytest.mark.parametrize("codec", ["vorbis", "opus"])
def test_ogg_decodes_with_its_duration_and_rate(renderer, band, codec):
    encoded = renderer.render_to_ogg(band.dumps_midi(), codec=codec)

    assert isinstance(encoded, EncodedAudio)
    assert encoded.codec == codec and encoded.note is None
    pcm, rate = decode(encoded.data)
    assert rate == SAMPLE_RATE and pcm.shape[1] == 2
    assert len(pcm) / rate == pytest.approx(5.0, abs=TOLERANCE)
    assert encoded.seconds == pytest.approx(5.0, abs=TOLERANCE)
    assert rms(pcm) > 0.02


def test_rates_opus_cannot_take_fall_back_to_vorbis(renderer, waltz):
    encoded = encode_ogg(renderer.render(waltz, sample_rate=44_100), 44_100, codec="opus")
    pcm, rate = decode(encoded.data)
    assert encoded.codec == "vorbis" and rate == 44_100
    assert len(pcm) / rate == pytest.approx(8.5, abs=TOLERANCE)


def test_max_bytes_lowers_quality_first(renderer, waltz):
    pcm = renderer.render(waltz)
    full = encode_ogg(pcm, SAMPLE_RATE)
    limit = int(len(full.data) * 0.7)

    fitted = encode_ogg(pcm, SAMPLE_RATE, max_bytes=limit)

    assert len(fitted.data) <= limit
    assert fitted.note is not None and "quality" in fitted.note and "cut" not in fitted.note
    decoded, rate = decode(fitted.data)
    assert len(decoded) / rate == pytest.approx(full.seconds, abs=TOLERANCE)


def test_max_bytes_shortens_as_last_resort(renderer, waltz):
    pcm = renderer.render(waltz)
    limit = len(encode_ogg(pcm, SAMPLE_RATE).data) // 8

    fitted = encode_ogg(pcm, SAMPLE_RATE, max_bytes=limit)

    assert len(fitted.data) <= limit
    assert fitted.note is not None and "cut" in fitted.note
    decoded, rate = decode(fitted.data)
    assert 0.5 < len(decoded) / rate < 8.0
    assert len(decoded) / rate == pytest.approx(fitted.seconds, abs=TOLERANCE)


def test_max_bytes_below_any_clip_is_an_error(renderer, scale):
    with pytest.raises(ValueError, match="max_bytes"):
        encode_ogg(renderer.render(scale), SAMPLE_RATE, max_bytes=100)


def test_missing_soundfont_is_a_clear_error(tmp_path):
    with pytest.raises(SoundfontNotFound, match="does not exist"):
        Renderer(tmp_path / "nope.sf2")


def test_missing_libfluidsynth_says_what_to_install(monkeypatch):
    render._fluidsynth.cache_clear()
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # makes `import fluidsynth` fail
    try:
        with pytest.raises(RendererUnavailable, match="apt-get install libfluidsynth3"):
            Renderer()
    finally:
        render._fluidsynth.cache_clear()


def test_long_clip_encodes(renderer, build_score):
    """libsndfile's Vorbis encoder crashed on one write of ~2.5 M frames (a 53 s clip)."""
    notes = [(beat, 1, 60 + beat % 12) for beat in range(0, 140, 2)]  # 70 s at 120 bpm
    encoded = renderer.render_to_ogg(build_score([(0, False, notes)]))
    pcm, rate = decode(encoded.data)
    assert len(pcm) / rate == pytest.approx(139 * 0.5 + 1.0, abs=TOLERANCE)
