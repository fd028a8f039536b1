"""How the bot process stops: SIGTERM or SIGINT drains it, then it exits 0.

    python -m bot  ->  bot.serve.run(bot, token)

Draining, in `MotifBot.close()` whatever asked for it:
1. New work stops: every interaction that arrives (slash command, autocomplete, button,
   modal) gets a private "Motif is restarting" at once, from the gate below, before any cog
   sees it. The gateway stays connected meanwhile, so members get that answer instead of
   Discord's "The application did not respond".
2. Compositions in flight have `MOTIF_SHUTDOWN_GRACE_SECONDS` to be posted. Those still
   running then are cancelled (the engine frees their rows) and their "Composing..."
   message becomes a clear failure.
3. Then (app.py) fine-tuning runs are recorded as interrupted, the engine stops, the gateway
   closes with code 1000 and the database is released.

A second SIGTERM or SIGINT during the drain stops the process at once (the default action).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

import discord

from bot.errors import UserFacingError

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

RESTARTING = "Motif is restarting; try again in a minute."
NOT_FINISHED = (
    "Motif restarted before this composition was finished, so it was not posted. "
    "Please try again in a minute."
)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# After the grace: cancelling the rest and telling their members, each bounded by this.
FAIL_SECONDS = 5.0

P = ParamSpec("P")
InteractionT = TypeVar("InteractionT", bound=discord.Interaction[Any])


class Restarting(UserFacingError):
    def __init__(self) -> None:
        super().__init__(RESTARTING)


class Lifecycle:
    """The bot's drain: the interaction gate and the compositions in flight."""

    def __init__(self, bot: discord.Client, *, grace_seconds: float) -> None:
        self._bot = bot
        self.grace_seconds = grace_seconds
        self.draining = False
        self._work: dict[asyncio.Task[Any], discord.Interaction] = {}
        self._answers: set[asyncio.Task[None]] = set()
        self._drained: asyncio.Future[None] | None = None
        self._gateway: asyncio.Task[Any] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._work)

    def install_gate(self) -> None:
        """Route every INTERACTION_CREATE through `_gate`: one place answers while draining.

        discord.py hands the gateway's events to the parsers of its connection state; this
        is the one spot every interaction type passes before discord.py picks a command,
        autocomplete, view, dynamic item or modal for it.
        """
        state = self._bot._connection
        parsers = state.parsers
        dispatch = parsers["INTERACTION_CREATE"]

        def gate(data: Any) -> None:
            if not self.draining:
                dispatch(data)
                return
            interaction: discord.Interaction = discord.Interaction(data=data, state=state)
            task = asyncio.create_task(self._answer(interaction), name="motif-restarting")
            self._answers.add(task)
            task.add_done_callback(self._answers.discard)

        parsers["INTERACTION_CREATE"] = gate

    @asynccontextmanager
    async def tracking(self, interaction: discord.Interaction) -> AsyncIterator[None]:
        """Hold the drain open while a composition for `interaction` runs."""
        if self.draining:
            raise Restarting()
        task = asyncio.current_task()
        assert task is not None
        self._work[task] = interaction
        try:
            yield
        finally:
            self._work.pop(task, None)

    async def drain(self) -> None:
        """Stop taking work; let compositions in flight finish within the grace; fail the
        rest. Safe to call more than once (later calls wait for the first)."""
        if self._drained is None:
            self._drained = asyncio.ensure_future(self._drain())
        await asyncio.shield(self._drained)

    async def finish(self) -> None:
        """Wait (briefly) until every "restarting" answer has been sent, then stop reading
        the gateway. Only then may it be closed: discord.py closes a gateway that is still
        being read with code 4000 ("reconnect"), not 1000."""
        if self._answers:
            await asyncio.wait(set(self._answers), timeout=FAIL_SECONDS)
        reader, self._gateway = self._gateway, None
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait([reader])

    def reading_gateway(self, task: asyncio.Task[Any]) -> None:
        """`task` reads the gateway (bot.start()); finish() stops it."""
        self._gateway = task

    async def _drain(self) -> None:
        self.draining = True
        loop = asyncio.get_running_loop()
        if self._work:
            log.info(
                "draining: up to %.0f s for %d compositions in flight",
                self.grace_seconds,
                len(self._work),
            )
        deadline = loop.time() + self.grace_seconds
        while self._work and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._work), timeout=remaining)
        left = dict(self._work)
        if not left:
            log.info("drained: nothing left in flight")
            return
        log.warning(
            "draining: %d compositions did not finish within %.0f s; failing them",
            len(left),
            self.grace_seconds,
        )
        for task in left:
            task.cancel()
        await asyncio.wait(set(left), timeout=FAIL_SECONDS)
        await asyncio.wait(
            [asyncio.create_task(self._tell_unfinished(i)) for i in left.values()],
            timeout=FAIL_SECONDS,
        )

    async def _answer(self, interaction: discord.Interaction) -> None:
        try:
            if interaction.type is discord.InteractionType.autocomplete:
                await interaction.response.autocomplete([])
            else:
                await interaction.response.send_message(RESTARTING, ephemeral=True)
        except discord.HTTPException:
            log.warning(
                "could not tell interaction %s that Motif is restarting",
                interaction.id,
                exc_info=True,
            )
            return
        log.info("draining: answered interaction %s (%s)", interaction.id, interaction.type.name)

    @staticmethod
    async def _tell_unfinished(interaction: discord.Interaction) -> None:
        try:
            if interaction.response.is_done():
                await interaction.edit_original_response(
                    content=NOT_FINISHED, embed=None, attachments=[], view=None
                )
            else:
                await interaction.response.send_message(NOT_FINISHED, ephemeral=True)
        except discord.HTTPException:
            log.warning(
                "could not tell interaction %s that its composition stopped",
                interaction.id,
                exc_info=True,
            )


class CompositionHost(Protocol):
    """The bot as a composition flow's first argument (MotifBot)."""

    lifecycle: Lifecycle
    metrics: Metrics


B = TypeVar("B", bound=CompositionHost)


def tracked_composition(
    flow: Callable[Concatenate[B, InteractionT, P], Awaitable[None]],
) -> Callable[Concatenate[B, InteractionT, P], Awaitable[None]]:
    """For a flow called as flow(bot, interaction, ...): the drain waits for it (and fails it
    clearly past the grace), and the metrics count it and how it ended."""

    @functools.wraps(flow)
    async def run(bot: B, interaction: InteractionT, /, *args: P.args, **kwargs: P.kwargs) -> None:
        async with bot.lifecycle.tracking(interaction), bot.metrics.composition():
            await flow(bot, interaction, *args, **kwargs)

    return run
