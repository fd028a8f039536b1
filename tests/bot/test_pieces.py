"""/piece export of long pieces (audio in parts, or cut, and always the whole MIDI), and of
pieces that do not exist. The rounds are stored directly (real database); the real engine
renders them."""

from __future__ import annotations

import io

import pytest
import soundfile
from symusic import Note, Score, Tempo, Track

from bot.db import get_piece, record_composition
from bot.db.errors import CompositionNotFound
from bot.db.queries import NewCandidate
from engine.api.config import WorkLimits
from tests.bot.helpers import BOT_TEST, assert_audible, raised, read, refused_privately, reply

pytestmark = BOT_TEST

TPQ = 480
QPM = 120.0  # a beat is half a second


def round_midi(seconds: float, *, notes_per_beat: int = 1, pitch: int = 60) -> bytes:
    """A round of whole 4/4 bars at 120 bpm, lasting `seconds`, a note on every beat."""
    score = Score(TPQ)
    score.tempos.append(Tempo(0, QPM))
    track = Track("piano", 0, False)
    beats = int(seconds / 0.5)
    step = TPQ // notes_per_beat
    for i in range(beats * notes_per_beat):
        track.notes.append(Note(i * step, step, pitch + (i % 12), 80))
    score.tracks.append(track)
    return score.dumps_midi()


async def store_piece(world, rounds: list[bytes]) -> int:
    """Compositions of one candidate each, every one continuing the last; the last's id."""
    parent = None
    async with world.bot.sessions() as session:
        for midi in rounds:
            composition = await record_composition(
                session,
                guild_id=world.guild.id,
                channel_id=world.channel.id,
                requester_id=world.alice.id,
                candidates=[NewCandidate(midi, 1.0, 1)],
                parent_candidate_id=parent,
            )
            parent = composition.candidates[0].id
        assert len(
            await get_piece(session, guild_id=world.guild.id, composition_id=composition.id)
        ) == len(rounds)
    return composition.id


def seconds_of(data: bytes) -> float:
    return float(soundfile.info(io.BytesIO(data)).duration)


async def test_a_long_piece_exports_whole_midi_first_then_audio_in_parts(world) -> None:
    # Five rounds of 140 s: 11:40 in all, over the engine's 5 minutes of audio per job.
    rounds = [round_midi(140.0, pitch=48 + 4 * i) for i in range(5)]
    last = await store_piece(world, rounds)
    exported = await world.alice.slash(world.channel, "piece export", composition=last)
    # After a deferral, Discord makes the first follow-up the response.
    first, *parts = [exported.response, *exported.followups]
    # The MIDI comes first, whole, whatever happens to the audio.
    assert [a.filename for a in first.attachments] == [f"piece-{last}.mid"]
    assert "in 3 parts" in first.content
    whole = Score.from_midi(await read(first.attachments[0]))
    assert whole.note_num() == sum(Score.from_midi(m).note_num() for m in rounds)
    # Parts of whole rounds, each within the engine's bound, together the whole piece.
    assert [p.content.split(" (")[0] for p in parts] == [
        "Part 1 of 3: rounds 1-2",
        "Part 2 of 3: rounds 3-4",
        "Part 3 of 3: round 5",
    ]
    lengths = []
    for k, part in enumerate(parts, start=1):
        (clip,) = part.attachments
        assert clip.filename == f"piece-{last}-part-{k}.ogg" and not part.ephemeral
        data = await read(clip)
        assert_audible(data)
        lengths.append(seconds_of(data))
    assert lengths[0] > 280 and lengths[1] > 280 and 140 < lengths[2] < 145
    assert all(length <= 301 for length in lengths)


@pytest.mark.parametrize("work", [WorkLimits(max_render_seconds=150)], indirect=True)
async def test_the_parts_follow_the_operators_render_bound(world) -> None:
    # MOTIF_MAX_RENDER_SECONDS=150: the same 11:40 piece comes in parts of at most 2.5 minutes.
    rounds = [round_midi(140.0, pitch=48 + 4 * i) for i in range(5)]
    last = await store_piece(world, rounds)
    exported = await world.alice.slash(world.channel, "piece export", composition=last)
    first, *parts = [exported.response, *exported.followups]
    assert "in 5 parts of whole rounds, up to 2.5 minutes each" in first.content
    assert [p.content.split(" (")[0] for p in parts] == [
        f"Part {k} of 5: round {k}" for k in range(1, 6)
    ]
    for part in parts:
        assert 140 < seconds_of(await read(part.attachments[0])) < 145


async def test_one_round_longer_than_the_bound_is_cut_and_the_member_is_told(world) -> None:
    last = await store_piece(world, [round_midi(400.0)])
    exported = await world.alice.slash(world.channel, "piece export", composition=last)
    message = reply(exported)
    files = {a.filename: a for a in message.attachments}
    assert set(files) == {f"piece-{last}.ogg", f"piece-{last}.mid"}
    assert "the audio plays its first 5:00 of 6:41" in message.content
    assert "The MIDI has all of it" in message.content
    assert 299 < seconds_of(await read(files[f"piece-{last}.ogg"])) <= 301


async def test_when_the_audio_cannot_be_made_the_midi_still_comes(world) -> None:
    # 240 notes a beat for 4 minutes (115,200): more than the engine renders in one job.
    midi = round_midi(240.0, notes_per_beat=240)
    last = await store_piece(world, [midi])
    exported = await world.alice.slash(world.channel, "piece export", composition=last)
    message = reply(exported)
    assert [a.filename for a in message.attachments] == [f"piece-{last}.mid"]
    assert "The audio could not be made" in message.content and "notes" in message.content
    sent = Score.from_midi(await read(message.attachments[0]))
    assert sent.note_num() == Score.from_midi(midi).note_num()


async def test_a_composition_that_never_existed_is_refused_privately(world) -> None:
    refused = await world.alice.slash(world.channel, "piece export", composition=99999)
    assert refused_privately(refused)
    assert reply(refused).content == "There is no composition #99999 on this server."
    assert raised(world.env) == [CompositionNotFound]
