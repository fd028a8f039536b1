"""The buttons under a composition, and the custom_ids that make them survive restarts.

Each custom_id carries the database ids its click needs, so any bot process (after a
restart, or another shard) can handle it: the DynamicItem classes in the cogs parse these
templates. Layout (Discord allows 5 rows of 5): votes, continues, saves, then MIDI + reroll.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import discord

from bot.db.queries import MAX_CANDIDATES
from engine.api.limits import CANDIDATES

PREFIX = "motif"
VOTE_TEMPLATE = PREFIX + r":vote:(?P<composition>[0-9]+):(?P<candidate>[0-9]+)"
CONTINUE_TEMPLATE = PREFIX + r":continue:(?P<candidate>[0-9]+)"
SAVE_TEMPLATE = PREFIX + r":save:(?P<candidate>[0-9]+)"
MIDI_TEMPLATE = PREFIX + r":midi:(?P<composition>[0-9]+)"
REROLL_TEMPLATE = PREFIX + r":reroll:(?P<composition>[0-9]+)"

# A row per kind of button, a button per candidate: the most candidates a composition may
# have (engine.api.limits) must fit Discord's five buttons to a row.
MAX_CANDIDATE_BUTTONS = CANDIDATES.high
assert MAX_CANDIDATE_BUTTONS <= 5 and MAX_CANDIDATE_BUTTONS <= MAX_CANDIDATES


def vote_id(composition_id: int, candidate_id: int) -> str:
    return f"{PREFIX}:vote:{composition_id}:{candidate_id}"


def continue_id(candidate_id: int) -> str:
    return f"{PREFIX}:continue:{candidate_id}"


def save_id(candidate_id: int) -> str:
    return f"{PREFIX}:save:{candidate_id}"


def midi_id(composition_id: int) -> str:
    return f"{PREFIX}:midi:{composition_id}"


def reroll_id(composition_id: int) -> str:
    return f"{PREFIX}:reroll:{composition_id}"


def vote_label(position: int, votes: int) -> str:
    return f"Vote {position} · {votes}"


_VOTE_TEXT = {
    "added": "You voted for candidate {position}.",
    "moved": "Your vote moved to candidate {position}.",
    "removed": "You took your vote back.",
}


def vote_text(action: str, position: int) -> str:
    """What a member's click did (bot.db.queries.VoteResult.action), told only to them."""
    return _VOTE_TEXT[action].format(position=position)


def check_candidate_buttons(candidate_ids: Sequence[int]) -> None:
    """A message shows a button per candidate in one row of Discord's five."""
    if not 1 <= len(candidate_ids) <= MAX_CANDIDATE_BUTTONS:
        raise ValueError(
            f"a message shows 1 to {MAX_CANDIDATE_BUTTONS} candidates "
            f"(received {len(candidate_ids)})"
        )


def midi_button(composition_id: int, *, row: int) -> discord.ui.Button[discord.ui.View]:
    """The button that sends a composition's candidates as MIDI files."""
    return discord.ui.Button(
        label="MIDI",
        style=discord.ButtonStyle.secondary,
        custom_id=midi_id(composition_id),
        row=row,
    )


def composition_view(
    composition_id: int, candidate_ids: Sequence[int], tallies: Mapping[int, int]
) -> discord.ui.View:
    """The message's buttons; `candidate_ids` in position order (1, 2, ...)."""
    check_candidate_buttons(candidate_ids)
    view = discord.ui.View(timeout=None)
    for position, candidate_id in enumerate(candidate_ids, start=1):
        view.add_item(
            discord.ui.Button(
                label=vote_label(position, tallies.get(candidate_id, 0)),
                style=discord.ButtonStyle.primary,
                custom_id=vote_id(composition_id, candidate_id),
                row=0,
            )
        )
        view.add_item(
            discord.ui.Button(
                label=f"Continue {position}",
                style=discord.ButtonStyle.success,
                custom_id=continue_id(candidate_id),
                row=1,
            )
        )
        view.add_item(
            discord.ui.Button(
                label=f"Save {position}",
                style=discord.ButtonStyle.secondary,
                custom_id=save_id(candidate_id),
                row=2,
            )
        )
    view.add_item(midi_button(composition_id, row=3))
    view.add_item(
        discord.ui.Button(
            label="Reroll",
            style=discord.ButtonStyle.secondary,
            custom_id=reroll_id(composition_id),
            row=3,
        )
    )
    return view
