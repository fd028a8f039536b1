"""The piano-roll PNG: size, seed marking, instrument colours."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from engine.pianoroll import DRUMS, PALETTE, ROW_PX, WIDTH_PX, draw_pianoroll


def pixels(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        image.verify()  # a complete, uncorrupted PNG
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def has_colour(image: np.ndarray, colour: str) -> bool:
    rgb = np.round(np.array(to_rgb(colour)) * 255).astype(np.uint8)
    return bool((image == rgb).all(axis=-1).any())


@pytest.mark.parametrize("rows", [1, 2, 4])
def test_png_is_one_row_per_candidate(band, rows):
    image = pixels(draw_pianoroll([band] * rows))
    assert image.shape == (ROW_PX * rows, WIDTH_PX, 3)


def test_seed_part_is_marked(scale, waltz):
    plain = pixels(draw_pianoroll([scale, waltz]))
    marked = pixels(draw_pianoroll([scale, waltz], seed_seconds=2.0))
    assert plain.shape == marked.shape
    changed = np.argwhere((plain != marked).any(axis=-1))
    assert len(changed) > 0
    # The shading covers the first 2 of 7.5 seconds: the right half of the plots is untouched.
    assert changed[:, 1].max() < WIDTH_PX // 2


def test_instruments_get_their_own_colours(band, drums):
    image = pixels(draw_pianoroll([band, drums]))
    # band: piano, bass, violin (first three palette colours) and drums.
    for colour in (*PALETTE[:3], DRUMS):
        assert has_colour(image, colour), colour
    assert not has_colour(image, PALETTE[3])


def test_midi_bytes_draw_like_scores(waltz):
    assert np.array_equal(
        pixels(draw_pianoroll([waltz.dumps_midi()], labels=["seed"])),
        pixels(draw_pianoroll([waltz], labels=["seed"])),
    )


def test_a_candidate_without_notes_still_draws(build_score, scale):
    image = pixels(draw_pianoroll([build_score([]), scale]))
    assert image.shape == (2 * ROW_PX, WIDTH_PX, 3)


def test_bad_arguments_are_explained(scale):
    with pytest.raises(ValueError, match="at least one"):
        draw_pianoroll([])
    with pytest.raises(ValueError, match="expected 2 labels"):
        draw_pianoroll([scale, scale], labels=["only one"])
