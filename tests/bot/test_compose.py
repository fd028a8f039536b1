"""/compose through SimCord with the real engine: one message with clips, image and buttons."""

from __future__ import annotations

import asyncio
import re

import discord
import pytest
import simcord

from bot.cogs.compose import NotPosted
from bot.db import Composition, get_composition
from bot.errors import UserFacingError
from bot.services import composing
from engine.api.config import WorkLimits
from engine.api.errors import BadRequest, BadSeed
from engine.api.limits import BARS, CANDIDATES, TEMPERATURE, TEMPO_BPM
from tests.bot.helpers import (
    BOT_TEST,
    MOTIF,
    SMALL,
    WALTZ,
    assert_audible,
    counts,
    labels,
    public_edits,
    raised,
    read,
    refused_privately,
    reply,
)

pytestmark = BOT_TEST


async def check_composition_message(world, result: simcord.InteractionResult, n: int) -> None:
    assert result.acknowledged
    message = result.response
    assert message is not None and not message.ephemeral
    clips = [a for a in message.attachments if a.filename.endswith(".ogg")]
    assert [a.filename for a in clips] == [f"candidate-{i}.ogg" for i in range(1, n + 1)]
    for clip in clips:
        assert_audible(await read(clip))
    assert any(a.filename == "pianoroll.png" for a in message.attachments)
    (embed,) = message.embeds
    assert embed.image.url and embed.image.url.endswith("pianoroll.png")
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Bars"] == "4" and fields["Model"] == "base model"
    buttons = labels(message)
    assert [f"Vote {i} · 0" for i in range(1, n + 1)] == buttons[:n]
    assert {"MIDI", "Reroll", *(f"Continue {i}" for i in range(1, n + 1))} <= set(buttons)
    # The stored composition points at this message.
    composition_id = int(embed.title.removeprefix("Composition #"))
    async with world.bot.sessions() as session:
        stored = await get_composition(
            session, guild_id=world.guild.id, composition_id=composition_id
        )
    assert stored.message_id == message.id and len(stored.candidates) == n


async def test_compose_without_a_seed(world) -> None:
    result = await world.alice.slash(world.channel, "compose", **SMALL)
    await check_composition_message(world, result, 2)
    embed = result.response.embeds[0]
    assert "none" in (embed.description or "")
    # There is no seed to be "as in": the message says what the composer really used.
    fields = {f.name: f.value for f in embed.fields}
    assert re.fullmatch(r"\d+ bpm", fields["Tempo"]), fields["Tempo"]
    assert fields["Instrument"] and "seed" not in fields["Instrument"]
    # While the engine worked, the "thinking..." message showed its progress.
    shown = [
        (r.json or {}).get("content") or ""
        for r in world.env.http_requests
        if r.method == "PATCH" and r.path.endswith("/messages/@original")
    ]
    assert any(text.startswith(("Waiting for the composer", "Composing")) for text in shown)


async def test_compose_with_an_attached_seed(world) -> None:
    result = await world.alice.slash(
        world.channel,
        "compose",
        seed=("motif.mid", MOTIF),
        bars=4,
        candidates=1,
        instrument="violin",
        temperature=0.8,
    )
    await check_composition_message(world, result, 1)
    embed = result.response.embeds[0]
    assert 'attached "motif.mid"' in (embed.description or "")
    assert {f.name: f.value for f in embed.fields}["Instrument"] == "violin"


async def test_compose_with_a_saved_seed(world) -> None:
    added = await world.alice.slash(
        world.channel, "seed add", file=("waltz.mid", WALTZ), name="waltz"
    )
    assert reply(added).ephemeral
    choices = await world.bob.autocomplete(world.channel, "compose", "saved_seed", "wa")
    assert [c["value"] for c in choices] == ["waltz"]
    result = await world.bob.slash(
        world.channel, "compose", saved_seed="waltz", include_seed=True, **SMALL
    )
    await check_composition_message(world, result, 2)
    assert 'saved seed "waltz"' in (result.response.embeds[0].description or "")


@pytest.mark.parametrize(
    ("filename", "data", "says", "error_type"),
    [
        ("notes.txt", b"these are not notes" * 10, "not a MIDI file", UserFacingError),
        ("notes.mid", b"these are not notes" * 10, "not a MIDI file", BadSeed),
        ("broken.mid", MOTIF[:40], "broken or truncated", BadSeed),
        ("huge.mid", b"MThd" + bytes(5_000_000), "5.0 MB", UserFacingError),
    ],
    ids=["text-file", "not-midi", "broken-midi", "5-MB"],
)
async def test_a_bad_seed_gets_a_private_refusal_and_no_rows(
    world, filename, data, says, error_type
) -> None:
    before = await counts(world.bot)
    result = await world.alice.slash(world.channel, "compose", seed=(filename, data), **SMALL)
    # Refused privately from the first word: no public "thinking..." (nor a public "This did
    # not work out.") ever showed in the channel.
    assert refused_privately(result) and says in result.response.content
    assert public_edits(world.env) == []
    assert await counts(world.bot) == before
    added = await world.alice.slash(world.channel, "seed add", file=(filename, data), name="x")
    assert reply(added).ephemeral and says in reply(added).content
    assert await counts(world.bot) == before
    assert raised(world.env) == [error_type, error_type]


async def test_a_file_name_shows_as_it_is_named_not_as_markdown_or_a_mention(world) -> None:
    name = "**@everyone** look_at_this_" + "x" * 80 + ".mid"
    result = await world.alice.slash(world.channel, "compose", seed=(name, MOTIF), **SMALL)
    description = result.response.embeds[0].description or ""
    assert "\\*\\*@\u200beveryone\\*\\* look\\_at\\_this\\_" in description
    assert "**" not in description.replace("\\*", "") and "@everyone" not in description
    # The name is cut to a bounded length.
    assert "…" in description and len(description) < 120


async def test_form_key_and_quantise_options_are_kept_for_a_reroll(world) -> None:
    result = await world.alice.slash(
        world.channel,
        "compose",
        seed=("motif.mid", MOTIF),
        form="AABA",
        follow_key=False,
        quantise=True,
        **SMALL,
    )
    await check_composition_message(world, result, 2)
    composition_id = int(result.response.embeds[0].title.removeprefix("Composition #"))
    async with world.bot.sessions() as session:
        stored = await get_composition(
            session, guild_id=world.guild.id, composition_id=composition_id
        )
    assert stored.params["form"] == "AABA" and stored.params["follow_key"] is False
    assert stored.params["quantise"] is True
    assert (
        composing.ComposeJob.from_params(stored.params, seed_midi=MOTIF)
        .request(guild_id=world.guild.id, max_audio_bytes=None, model=None)
        .quantise
    )


async def test_a_request_over_the_engines_work_limits_is_refused_privately(world) -> None:
    from tests.engine.test_workload import SLOW, refusal

    before = await counts(world.bot)
    result = await world.alice.slash(world.channel, "compose", seed=("slow.mid", SLOW), bars=64)
    # Refused privately from the first word, saying what to ask for instead ("...: ask for
    # at most 12 bars"), before the engine got any of it.
    assert refused_privately(result) and refusal(SLOW, bars=64) in result.response.content
    assert "ask for at most 12 bars" in result.response.content
    assert public_edits(world.env) == []
    assert await counts(world.bot) == before
    assert raised(world.env) == [BadRequest]
    assert (await world.bot.engine.stats()).jobs == 0


@pytest.mark.parametrize("work", [WorkLimits(max_seed_notes=3)], indirect=True)
async def test_an_operators_lower_seed_note_limit_holds_in_the_bot(world) -> None:
    # MOTIF_MAX_SEED_NOTES=3: the bot refuses such seeds itself (compose and seed add alike).
    before = await counts(world.bot)
    result = await world.alice.slash(world.channel, "compose", seed=("motif.mid", MOTIF), **SMALL)
    assert refused_privately(result)
    assert re.search(
        r"the seed has \d+ notes; seeds may have at most 3$", result.response.content.rstrip(".")
    )
    added = await world.alice.slash(world.channel, "seed add", file=("motif.mid", MOTIF), name="x")
    assert "seeds may have at most 3" in reply(added).content
    assert await counts(world.bot) == before
    assert raised(world.env) == [BadSeed, BadSeed]


@pytest.mark.parametrize(
    "options",
    [
        {"bars": BARS.high + 1},
        {"bars": BARS.low - 1},
        {"candidates": CANDIDATES.high + 1},
        {"temperature": TEMPERATURE.high + 0.1},
        {"tempo": int(TEMPO_BPM.high) + 1},
        {"tempo": int(TEMPO_BPM.low) - 1},
        {"form": "rondo"},
    ],
    ids=["bars-high", "bars-low", "candidates", "temperature", "tempo-high", "tempo-low", "form"],
)
async def test_out_of_range_options_are_refused_by_discord(world, options) -> None:
    with pytest.raises(simcord.OptionError):
        await world.alice.slash(world.channel, "compose", **options)
    assert (await counts(world.bot))[Composition.__name__] == 0


async def test_a_composition_discord_will_not_post_is_not_kept_and_the_member_is_told(
    world,
) -> None:
    before = await counts(world.bot)
    # Discord refuses every edit of the "thinking..." message, the final one included.
    world.env.inject_error("PATCH", "/webhooks/*/messages/@original", status=500, times=None)
    result = await world.alice.slash(world.channel, "compose", **SMALL)
    # The follow-up is the only way left to tell the member (it takes the place of the
    # "thinking..." message Discord would not let the bot edit).
    told = reply(result)
    assert "nothing of it was kept" in told.content
    # No composition row stays behind that nobody can see, vote on or continue.
    assert await counts(world.bot) == before
    # By name: a bot closed earlier in the session unloaded the cog modules, so this file's
    # NotPosted may be an older import of the class the bot raised.
    assert [error.__name__ for error in raised(world.env)] == [NotPosted.__name__]


async def test_a_seed_slower_to_fetch_than_discord_waits_still_composes_or_is_refused(
    world, monkeypatch
) -> None:
    # Discord's CDN stalls: the attachment takes 5 s to download, longer than the bot may
    # wait before its first answer, so it defers first.
    download = discord.Attachment.read

    async def stalled(self, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.sleep(5)
        return await download(self, **kwargs)

    monkeypatch.setattr(discord.Attachment, "read", stalled)
    result = await world.alice.slash(world.channel, "compose", seed=("motif.mid", MOTIF), **SMALL)
    await check_composition_message(world, result, 2)
    refused = await world.alice.slash(
        world.channel, "compose", seed=("broken.mid", MOTIF[:40]), **SMALL
    )
    # This refusal comes after the bot deferred (the channel saw "thinking..."): it still
    # reaches the member, privately, and the thinking message is removed.
    told = reply(refused)
    assert told.ephemeral and "broken or truncated" in told.content
    assert refused.response is None
    assert raised(world.env) == [BadSeed]
