"""/seed add|list|play|remove; a server sees only its own seeds; removal rights."""

from __future__ import annotations

from bot.db import Composition, Seed
from bot.db.errors import DuplicateSeedContent, SeedNotFound
from bot.errors import UserFacingError
from tests.bot.helpers import (
    BOT_TEST,
    MOTIF,
    SMALL,
    WALTZ,
    assert_audible,
    count,
    counts,
    raised,
    read,
    refused_privately,
    reply,
)

pytestmark = BOT_TEST


async def test_add_list_play_and_remove_a_seed(world) -> None:
    added = await world.alice.slash(
        world.channel, "seed add", file=("motif.mid", MOTIF), name="intro"
    )
    assert reply(added).ephemeral
    assert 'Saved the seed "intro"' in reply(added).content

    again = await world.bob.slash(world.channel, "seed add", file=("copy.mid", MOTIF), name="other")
    assert reply(again).ephemeral
    assert 'already saved on this server as "intro"' in reply(again).content
    assert raised(world.env) == [DuplicateSeedContent]

    listed = await world.bob.slash(world.channel, "seed list")
    assert "intro" in (reply(listed).embeds[0].description or "")

    played = await world.bob.slash(world.channel, "seed play", name="intro")
    files = {a.filename: a for a in reply(played).attachments}
    assert set(files) == {"intro.ogg", "intro.mid"} and not reply(played).ephemeral
    assert_audible(await read(files["intro.ogg"]))
    assert await read(files["intro.mid"]) == MOTIF

    removed = await world.alice.slash(world.channel, "seed remove", name="intro")
    assert reply(removed).ephemeral and 'Removed the seed "intro"' in reply(removed).content
    assert await count(world.bot, Seed) == 0


async def test_removing_another_members_seed_needs_manage_server(world) -> None:
    await world.alice.slash(world.channel, "seed add", file=("waltz.mid", WALTZ), name="waltz")
    refused = await world.bob.slash(world.channel, "seed remove", name="waltz")
    assert reply(refused).ephemeral and "Manage Server" in reply(refused).content
    assert raised(world.env) == [UserFacingError]
    assert await count(world.bot, Seed) == 1
    removed = await world.admin.slash(world.channel, "seed remove", name="waltz")
    assert 'Removed the seed "waltz"' in reply(removed).content
    assert await count(world.bot, Seed) == 0


async def test_another_server_sees_none_of_the_first_servers_seeds(world) -> None:
    await world.alice.slash(world.channel, "seed add", file=("waltz.mid", WALTZ), name="waltz")
    other = world.env.create_guild("Elsewhere")
    hall = other.create_text_channel("hall")
    carol = other.add_member(world.env.create_user("carol"))

    listed = await carol.slash(hall, "seed list")
    assert "no seeds" in reply(listed).content and reply(listed).ephemeral
    assert await carol.autocomplete(hall, "compose", "saved_seed", "") == []
    assert await carol.autocomplete(hall, "seed play", "name", "wa") == []

    played = await carol.slash(hall, "seed play", name="waltz")
    # Refused before any public "thinking..." message: the channel saw nothing of it.
    assert refused_privately(played)
    assert 'no seed named "waltz"' in reply(played).content

    before = await counts(world.bot)
    composed = await carol.slash(hall, "compose", saved_seed="waltz", **SMALL)
    assert refused_privately(composed)
    assert 'no seed named "waltz"' in reply(composed).content
    assert await counts(world.bot) == before
    assert await count(world.bot, Composition) == 0
    assert raised(world.env) == [SeedNotFound, SeedNotFound]
    # The first server still has its seed.
    assert await world.alice.autocomplete(world.channel, "compose", "saved_seed", "") == [
        {"name": "waltz", "value": "waltz"}
    ]
