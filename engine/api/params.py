"""A composition's options, checked against engine.api.limits (light: no torch).

Every way in (the CLI, the engine's wire requests, tests) builds one of these, so an option
out of range is refused with the same sentence wherever it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.api.errors import BadRequest
from engine.api.form import DEFAULT_FORM, plan_form
from engine.api.limits import (
    BARS,
    CANDIDATES,
    DEFAULT_BARS,
    DEFAULT_CANDIDATES,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    PROGRAM,
    SAMPLING_SEED,
    TEMPERATURE,
    TEMPO_BPM,
    TOP_P,
)

if TYPE_CHECKING:
    from engine.api.protocol import ComposeRequest


@dataclass
class ComposeParams:
    bars: int = DEFAULT_BARS
    candidates: int = DEFAULT_CANDIDATES
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    seed: int | None = None  # sampling seed: same seed, same music
    tempo: float | None = None  # bpm; None keeps the seed's
    program: int | None = None  # GM program for the new notes; None: as the model/seed wants
    include_seed: bool = False
    form: str = DEFAULT_FORM  # which bars come back (engine.api.form)
    follow_key: bool = True  # lean toward the seed's key (passing notes stay possible)

    def __post_init__(self) -> None:
        BARS.check("bars", self.bars, BadRequest)
        CANDIDATES.check("candidates", self.candidates, BadRequest)
        TEMPERATURE.check("temperature", self.temperature, BadRequest)
        TOP_P.check("top_p", self.top_p, BadRequest)
        for name, value, allowed in (("seed", self.seed, SAMPLING_SEED),
                                     ("tempo", self.tempo, TEMPO_BPM),
                                     ("program", self.program, PROGRAM)):
            if value is not None:
                allowed.check(name, value, BadRequest)
        try:
            plan_form(self.form, bars=self.bars, seed_bars=0)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    @classmethod
    def of(cls, request: ComposeRequest) -> ComposeParams:
        """The options of a wire request (the engine's, and the bot's own check of one);
        BadRequest when one is out of range."""
        return cls(bars=request.bars, candidates=request.candidates,
                   temperature=float(request.temperature), top_p=float(request.top_p),
                   seed=request.seed,
                   tempo=None if request.tempo is None else float(request.tempo),
                   program=request.program, include_seed=request.include_seed,
                   form=request.form, follow_key=request.follow_key)
