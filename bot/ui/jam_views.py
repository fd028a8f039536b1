"""The buttons of a jam's messages, and the custom_ids that make them work after a restart.

A round shows vote buttons (a click is a /compose vote of the round's composition, counted
only while the round is open) and MIDI; the end shows "Save the piece as a seed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import discord

from bot.ui.views import PREFIX, check_candidate_buttons, midi_button, vote_label

JAM_VOTE_TEMPLATE = PREFIX + r":jamvote:(?P<round>[0-9]+):(?P<candidate>[0-9]+)"
JAM_SAVE_TEMPLATE = PREFIX + r":jamsave:(?P<jam>[0-9]+)"


def jam_vote_id(round_id: int, candidate_id: int) -> str:
    return f"{PREFIX}:jamvote:{round_id}:{candidate_id}"


def jam_save_id(jam_id: int) -> str:
    return f"{PREFIX}:jamsave:{jam_id}"


def round_view(
    round_id: int,
    composition_id: int,
    candidate_ids: Sequence[int],
    tallies: Mapping[int, int],
    *,
    open_: bool = True,
) -> discord.ui.View:
    """A round's buttons, `candidate_ids` in position order; a closed round's votes are
    shown but cannot be pressed."""
    check_candidate_buttons(candidate_ids)
    view = discord.ui.View(timeout=None)
    for position, candidate_id in enumerate(candidate_ids, start=1):
        view.add_item(
            discord.ui.Button(
                label=vote_label(position, tallies.get(candidate_id, 0)),
                style=discord.ButtonStyle.primary,
                custom_id=jam_vote_id(round_id, candidate_id),
                disabled=not open_,
                row=0,
            )
        )
    view.add_item(midi_button(composition_id, row=1))
    return view


def end_view(jam_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(
        discord.ui.Button(
            label="Save the piece as a seed",
            style=discord.ButtonStyle.success,
            custom_id=jam_save_id(jam_id),
        )
    )
    return view
