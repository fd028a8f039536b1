"""What a jam says: each round's message, its result, the end, and /jam status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import discord

# Said under every round and in the README: members know how a vote is decided.
RULE = (
    "Most votes wins; a tie goes to the lowest-numbered candidate, and with no votes "
    "candidate 1 wins. The vote closes early once everyone who voted last round has voted."
)


def rounds_text(n: int) -> str:
    return f"{n} round{'' if n == 1 else 's'}"


def votes_text(n: int) -> str:
    return f"{n} vote{'' if n == 1 else 's'}"


def round_embed(
    base: discord.Embed, *, number: int, rounds: int, deadline: datetime | None
) -> discord.Embed:
    """/compose's embed of the round's composition, titled as the jam's round, with the time
    left (Discord shows `<t:...:R>` as "in 2 minutes" in each member's own clock)."""
    base.title = f"Jam round {number} of {rounds} · {base.title}"
    when = (
        f"Voting closes {discord.utils.format_dt(deadline, 'R')}."
        if deadline is not None
        else "The jam is paused: voting closes once it resumes."
    )
    base.description = f"{when}\n{base.description or ''}"
    base.set_footer(text=RULE)
    return base


def closed_text(
    number: int, rounds: int, position: int, votes: int, *, how: str, piece_seconds: str | None
) -> str:
    """`how`: "time is up", "everyone has voted", "skipped by ..."."""
    text = (
        f"**Round {number} of {rounds}** is closed ({how}): candidate {position} wins with "
        f"{votes_text(votes)}."
    )
    if votes == 0:
        text += " Nobody voted, so candidate 1 goes on."
    if piece_seconds is not None:
        text += f"\nThe piece so far ({rounds_text(number)}, {piece_seconds}):"
    return text


@dataclass(frozen=True, slots=True)
class Winner:
    round: int
    position: int
    votes: int


def end_text(
    *, starter_id: int, stopped_by: int | None, rounds: int, winners: Sequence[Winner]
) -> str:
    head = (
        f"**The jam is over.** Started by <@{starter_id}>, {rounds_text(len(winners))}"
        + (f" (stopped by <@{stopped_by}>)" if stopped_by is not None else "")
        + "."
    )
    if not winners:
        return head + " No round was finished, so there is no piece to hear."
    lines = [f"Round {w.round}: candidate {w.position} ({votes_text(w.votes)})" for w in winners]
    return head + "\n" + "\n".join(lines)


def status_text(
    *,
    starter_id: int,
    status: str,
    rounds: int,
    finished: int,
    open_number: int | None,
    deadline: datetime | None,
    round_minutes: float,
) -> str:
    lines = [
        f"A jam by <@{starter_id}>: {finished} of {rounds_text(rounds)} done, "
        f"{round_minutes:g} min of voting each."
    ]
    if status == "paused":
        lines.append("It is **paused**: /jam resume goes on.")
    if open_number is None:
        lines.append(f"Round {finished + 1} is being written.")
    elif deadline is not None:
        lines.append(f"Round {open_number}'s vote closes {discord.utils.format_dt(deadline, 'R')}.")
    else:
        lines.append(f"Round {open_number}'s vote waits for the jam to resume.")
    return "\n".join(lines)
