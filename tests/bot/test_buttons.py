"""Continue, reroll, MIDI and save-as-seed on a composition; a piece of two rounds exported."""

from __future__ import annotations

import io
import math

import pytest
import soundfile
from symusic import Score

from bot.db import Composition, Seed, get_composition, get_piece, list_seeds
from tests.bot.helpers import (
    BOT_TEST,
    SMALL,
    assert_audible,
    composition_id,
    count,
    read,
    reply,
)

pytestmark = BOT_TEST


def bar_seconds(midi: bytes) -> float:
    """A MIDI file's length in whole bars, in seconds: each round of a piece starts on the bar
    line after the previous one. (Every round here has the same tempo and metre.)"""
    score = Score.from_midi(midi)
    ts = score.time_signatures[-1] if len(score.time_signatures) else None
    numerator, denominator = (ts.numerator, ts.denominator) if ts else (4, 4)
    bar = score.ticks_per_quarter * 4 * numerator // denominator
    ticks = max(1, math.ceil(score.end() / bar)) * bar
    qpm = score.tempos[0].qpm if len(score.tempos) else 120.0
    return ticks / score.ticks_per_quarter * 60.0 / qpm


async def test_continue_makes_a_second_round_and_the_piece_exports_whole(world) -> None:
    first = (await world.alice.slash(world.channel, "compose", **SMALL)).response
    result = await world.bob.click(first, label="Continue 2")
    second = result.response
    assert second is not None and second.id != first.id and not second.ephemeral
    assert "continues candidate 2" in (second.embeds[0].description or "")
    clips = [a for a in second.attachments if a.filename.endswith(".ogg")]
    assert len(clips) == 2
    assert_audible(await read(clips[0]))

    async with world.bot.sessions() as session:
        rounds = await get_piece(
            session, guild_id=world.guild.id, composition_id=composition_id(second)
        )
        last = await get_composition(
            session,
            guild_id=world.guild.id,
            composition_id=composition_id(second),
            with_midi=True,
        )
    assert [r.composition.id for r in rounds] == [composition_id(first), composition_id(second)]
    assert rounds[0].continued is not None and rounds[0].continued.position == 2

    exported = await world.alice.slash(
        world.channel, "piece export", composition=composition_id(second), candidate=1
    )
    files = {a.filename: a for a in reply(exported).attachments}
    name = f"piece-{composition_id(second)}"
    assert set(files) == {f"{name}.ogg", f"{name}.mid"}
    piece = await read(files[f"{name}.mid"])
    audio = await read(files[f"{name}.ogg"])
    assert_audible(audio)
    # The clip plays the whole piece (FluidSynth adds a release tail after the last note).
    piece_seconds = Score.from_midi(piece).to("second").end()
    assert soundfile.info(io.BytesIO(audio)).duration >= piece_seconds - 0.05
    rounds_midi = [rounds[0].continued.midi, last.candidates[0].midi]
    assert bar_seconds(piece) == pytest.approx(sum(bar_seconds(m) for m in rounds_midi))
    assert Score.from_midi(piece).note_num() == sum(
        Score.from_midi(m).note_num() for m in rounds_midi
    )


async def test_reroll_posts_a_new_composition_with_the_same_options(world) -> None:
    first = (await world.alice.slash(world.channel, "compose", bars=4, candidates=1)).response
    second = (await world.bob.click(first, label="Reroll")).response
    assert second is not None and composition_id(second) != composition_id(first)
    assert [f.value for f in second.embeds[0].fields][:2] == ["4", "1"]
    assert await count(world.bot, Composition) == 2


async def test_midi_button_sends_every_candidates_midi_to_the_clicker_only(world) -> None:
    posted = (await world.alice.slash(world.channel, "compose", **SMALL)).response
    result = await world.bob.click(posted, label="MIDI")
    answer = result.response
    assert answer is not None and answer.ephemeral
    files = [a for a in answer.attachments if a.filename.endswith(".mid")]
    assert len(files) == 2
    for file in files:
        assert Score.from_midi(await read(file)).note_num() > 0


async def test_save_as_seed_asks_a_name_and_saves_the_candidate(world) -> None:
    posted = (await world.alice.slash(world.channel, "compose", **SMALL)).response
    shown = await world.bob.click(posted, label="Save 1")
    assert shown.modal is not None
    text_input = shown.modal["components"][0]["components"][0]["custom_id"]
    saved = await world.bob.submit_modal(shown, {text_input: "  bright idea "})
    assert saved.response is not None and saved.response.ephemeral
    assert 'Saved as the seed "bright idea"' in saved.response.content
    async with world.bot.sessions() as session:
        (seed,) = await list_seeds(session, guild_id=world.guild.id)
    assert seed.name == "bright idea" and seed.uploader_id == world.bob.id
    assert await count(world.bot, Seed) == 1
