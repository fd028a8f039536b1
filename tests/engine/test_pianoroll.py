"""The piano-roll PNG: size, bars, the seed, the drum lane, instrument colours."""

from __future__ import annotations

import colorsys
import io

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image
from symusic import Tempo, TimeSignature

from engine.audio.pianoroll import (
    DRUM_LANE,
    DRUM_LANE_PX,
    DRUMS,
    MARGIN_PX,
    PANEL,
    PROGRAM_COLOURS,
    ROW_GAP_PX,
    ROW_PX,
    SEED_STRIP_PX,
    WIDTH_PX,
    bar_starts,
    draw_pianoroll,
    program_colour,
)

PIANO, BASS, VIOLIN, TRUMPET = 0, 33, 40, 56
PLOT = slice(MARGIN_PX["left"], WIDTH_PX - MARGIN_PX["right"])  # columns of the rows


def pixels(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        image.verify()  # a complete, uncorrupted PNG
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def rgb(colour: str) -> np.ndarray:
    return np.round(np.array(to_rgb(colour)) * 255).astype(np.uint8)


def mask(image: np.ndarray, colour: str) -> np.ndarray:
    return (image == rgb(colour)).all(axis=-1)


def has_colour(image: np.ndarray, colour: str) -> bool:
    return bool(mask(image, colour).any())


@pytest.mark.parametrize("rows", [1, 2, 4])
def test_png_is_one_row_per_candidate(band, rows):
    image = pixels(draw_pianoroll([band] * rows))
    assert image.shape == (ROW_PX * rows, WIDTH_PX, 3)


# --- bars ----------------------------------------------------------------------------------


def test_bars_follow_metre_and_tempo_changes(build_score):
    score = build_score([(PIANO, False, [(0, 1, 60)])], bpm=120)  # 4/4: a bar is 2 s
    score.time_signatures.append(TimeSignature(2 * 4 * 480, 3, 4))  # 3/4 after two bars
    score.tempos.append(Tempo(2 * 4 * 480 + 3 * 480, 60.0))  # 60 bpm after one 3/4 bar
    # Two 4/4 bars at 120 (2 s each), one 3/4 bar at 120 (1.5 s), then 3/4 bars at 60 (3 s).
    assert bar_starts(score, 12.0) == pytest.approx([0.0, 2.0, 4.0, 5.5, 8.5, 11.5])


def test_bars_of_compound_metre(waltz, build_score):
    assert bar_starts(waltz, 7.5) == pytest.approx([0.0, 1.875, 3.75, 5.625, 7.5])
    six_eight = build_score([(PIANO, False, [(0, 1, 60)])], bpm=90, metre=(6, 8))
    assert bar_starts(six_eight, 6.0) == pytest.approx([0.0, 2.0, 4.0, 6.0])  # 3 quarters


def test_score_without_metre_or_tempo_is_4_4_at_120(build_score):
    score = build_score([(PIANO, False, [(0, 1, 60)])])
    score.time_signatures.clear()
    score.tempos.clear()
    assert bar_starts(score, 5.0) == pytest.approx([0.0, 2.0, 4.0])


def test_bar_lines_are_drawn_where_bars_start(build_score):
    # Piano notes only at the very top and bottom of the range leave the middle of the row
    # empty: there, only bar lines differ from the panel.
    notes = [(0, 0.5, 48), (0, 0.5, 84), (11.5, 0.5, 48)]  # 12 beats of 3/4 at 120: 4 bars
    image = pixels(draw_pianoroll([build_score([(PIANO, False, notes)], metre=(3, 4))]))
    middle = image[ROW_PX // 2, PLOT]
    lines = np.flatnonzero(~(middle == rgb(PANEL)).all(axis=-1))
    width = PLOT.stop - PLOT.start
    expected = [round(width * t / 6.0) for t in (1.5, 3.0, 4.5)]  # bar 1's line is the edge
    found = [x for x in lines if 0 < x < width - 1]
    assert len(found) >= 3
    for x in expected:
        assert min(abs(f - x) for f in found) <= 1, (expected, found)


def row_top(rows: int, i: int) -> int:
    """The image row where candidate row i (0 = top) starts, without a seed strip."""
    plot = ROW_PX * rows - MARGIN_PX["top"] - MARGIN_PX["bottom"]
    height = (plot + ROW_GAP_PX) / rows - ROW_GAP_PX
    return round(MARGIN_PX["top"] + i * (height + ROW_GAP_PX))


def test_a_row_in_another_metre_numbers_its_own_bars(build_score):
    notes = [(b, 1, 60) for b in range(12)]
    four_four = build_score([(PIANO, False, notes)])
    three_four = build_score([(PIANO, False, notes)], metre=(3, 4))
    gap = slice(row_top(3, 1) - ROW_GAP_PX + 1, row_top(3, 1) - 1)  # above the middle row
    same = pixels(draw_pianoroll([four_four] * 3))[gap, PLOT]
    other = pixels(draw_pianoroll([four_four, three_four, four_four]))[gap, PLOT]
    assert (same == same[0, 0]).all()  # nothing between rows that share the bottom's bars
    assert not (other == other[0, 0]).all()  # the 3/4 row's numbers and metre


# --- the seed ------------------------------------------------------------------------------


def test_included_seed_is_shaded(scale, waltz):
    plain = pixels(draw_pianoroll([scale, waltz]))
    marked = pixels(draw_pianoroll([scale, waltz], seed_seconds=2.0))
    assert plain.shape == marked.shape
    changed = np.argwhere((plain != marked).any(axis=-1))
    assert len(changed) > 0
    # The shading covers the first 2 of 7.5 seconds: the right half of the plots is untouched.
    assert changed[:, 1].max() < WIDTH_PX // 2


def test_seed_not_included_is_a_strip_above_the_candidates(scale, waltz):
    image = pixels(draw_pianoroll([scale, scale], seed=waltz))
    assert image.shape == (2 * ROW_PX + SEED_STRIP_PX, WIDTH_PX, 3)
    violin = mask(image[:, PLOT], program_colour(VIOLIN))
    piano = mask(image[:, PLOT], program_colour(PIANO))
    assert violin[:SEED_STRIP_PX].any() and not violin[SEED_STRIP_PX:].any()
    assert piano[SEED_STRIP_PX:].any() and not piano[:SEED_STRIP_PX].any()


def test_included_seed_is_not_drawn_twice(scale, waltz):
    image = pixels(draw_pianoroll([scale], seed=waltz, seed_seconds=2.0))
    assert image.shape == (ROW_PX, WIDTH_PX, 3)


# --- drums ---------------------------------------------------------------------------------


def test_drums_have_their_own_lane_under_the_pitched_notes(band):
    image = pixels(draw_pianoroll([band]))[:, PLOT]
    lane_top = ROW_PX - MARGIN_PX["bottom"] - DRUM_LANE_PX["row"]
    lane = slice(lane_top, ROW_PX - MARGIN_PX["bottom"])
    hits = mask(image, DRUMS)
    assert hits[lane].any() and not hits[:lane_top].any()
    for program in (PIANO, BASS, VIOLIN):
        notes = mask(image, program_colour(program))
        assert notes[:lane_top].any() and not notes[lane].any(), program


def test_drum_hits_sit_by_kind(drums):
    # Kicks in the lane's lowest third, snares in the middle one, hi-hats on top.
    image = pixels(draw_pianoroll([drums]))[:, PLOT]
    bottom = ROW_PX - MARGIN_PX["bottom"]
    third = DRUM_LANE_PX["row"] // 3
    hits = mask(image, DRUMS)
    for k in range(3):
        assert hits[bottom - (k + 1) * third + 1 : bottom - k * third - 1].any(), k


def test_sixteenth_hi_hats_over_16_bars_stay_apart(build_score):
    # 256 hi-hats 3.6 px apart: at 1.5 points a tick they merged into one solid bar.
    hats = [(i / 4, 1 / 16, 42) for i in range(16 * 16)]
    image = pixels(draw_pianoroll([build_score([(0, True, hats)])]))[:, PLOT]
    bottom = ROW_PX - MARGIN_PX["bottom"]
    top_third = image[bottom - DRUM_LANE_PX["row"] * 5 // 6]  # amid the lane's top third
    hits = mask(top_third[None], DRUMS)[0]
    starts = np.flatnonzero(hits[1:] & ~hits[:-1]) + 1  # where a run of hit pixels begins
    assert len(starts) + hits[0] >= 0.95 * len(hats)


def test_no_lane_without_drums(scale, waltz):
    assert not has_colour(pixels(draw_pianoroll([scale, waltz])), DRUM_LANE)


# --- colours -------------------------------------------------------------------------------


def test_an_instrument_has_one_colour_in_every_post(band, waltz, build_score):
    trumpet = build_score([(TRUMPET, False, [(0, 2, 70)])])
    alone = pixels(draw_pianoroll([waltz]))
    after_others = pixels(draw_pianoroll([band, trumpet, waltz]))
    for image in (alone, after_others):
        assert has_colour(image, program_colour(VIOLIN))
    for program in (PIANO, BASS, TRUMPET):
        assert has_colour(after_others, program_colour(program))
    assert has_colour(after_others, DRUMS)


def test_families_share_a_hue_and_programs_differ():
    assert len(set(PROGRAM_COLOURS)) == 128

    def hue(program: int) -> float:
        return colorsys.rgb_to_hls(*to_rgb(program_colour(program)))[0]

    for family in range(16):
        hues = [hue(8 * family + i) for i in range(8)]
        assert max(hues) - min(hues) < 0.02, family


# --- inputs --------------------------------------------------------------------------------


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
