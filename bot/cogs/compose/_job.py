"""What one composition asks of the engine, and how it is stored so a reroll can repeat it."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from bot.engine_port import ComposeRequest
from engine.form import DEFAULT_FORM, FORMS
from engine.instruments import INSTRUMENTS
from engine.limits import DEFAULT_BARS, DEFAULT_CANDIDATES, DEFAULT_TEMPERATURE
from engine.metre import vocabulary_metres
from engine.params import ComposeParams
from engine.settings import WorkLimits
from engine.workload import check_request

# The instrument choice that keeps whatever the seed (or the model) plays.
AS_IN_SEED = "seed"


@dataclass(frozen=True, slots=True)
class ComposeJob:
    seed_midi: bytes | None
    seed_label: str  # shown in the embed: "saved seed "intro"", "none", ...
    seed_id: int | None = None
    parent_candidate_id: int | None = None
    bars: int = DEFAULT_BARS
    candidates: int = DEFAULT_CANDIDATES
    temperature: float = DEFAULT_TEMPERATURE
    tempo: int | None = None  # bpm; None keeps the seed's
    instrument: str = AS_IN_SEED
    include_seed: bool = False
    form: str = DEFAULT_FORM  # which bars come back: return, free, AABA, ABAB
    follow_key: bool = True
    # A fresh sampling seed per job: a reroll differs, and the stored value can replay it.
    sampling_seed: int = 0

    @property
    def program(self) -> int | None:
        return None if self.instrument == AS_IN_SEED else INSTRUMENTS[self.instrument]

    def request(
        self, *, guild_id: int, max_audio_bytes: int, checkpoint: str | None
    ) -> ComposeRequest:
        return ComposeRequest(
            seed_midi=self.seed_midi,
            bars=self.bars,
            candidates=self.candidates,
            temperature=self.temperature,
            seed=self.sampling_seed,
            tempo=float(self.tempo) if self.tempo is not None else None,
            program=self.program,
            include_seed=self.include_seed and self.seed_midi is not None,
            form=self.form,
            follow_key=self.follow_key,
            guild_id=guild_id,
            max_audio_bytes=max_audio_bytes,
            checkpoint=checkpoint,
        )

    def check_work(self, limits: WorkLimits) -> None:
        """BadSeed or BadRequest, saying what to change, when the seed or the work this job
        asks for is over the engine's limits (blocking: it reads the seed; run it in a
        thread). The engine checks again; this lets the bot refuse before it answers."""
        request = self.request(guild_id=0, max_audio_bytes=0, checkpoint=None)  # options only
        check_request(self.seed_midi, ComposeParams.of(request), limits, vocabulary_metres())

    def params(self) -> dict[str, Any]:
        """JSON stored with the composition (everything but the seed, which has columns)."""
        return {
            "bars": self.bars,
            "candidates": self.candidates,
            "temperature": self.temperature,
            "tempo": self.tempo,
            "instrument": self.instrument,
            "include_seed": self.include_seed,
            "form": self.form,
            "follow_key": self.follow_key,
            "sampling_seed": self.sampling_seed,
            "seed_label": self.seed_label,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any], **seed: Any) -> ComposeJob:
        """A new job with a stored composition's options and the given seed fields."""
        instrument = params.get("instrument", AS_IN_SEED)
        job = cls(
            bars=int(params.get("bars", DEFAULT_BARS)),
            candidates=int(params.get("candidates", DEFAULT_CANDIDATES)),
            temperature=float(params.get("temperature", DEFAULT_TEMPERATURE)),
            tempo=params.get("tempo"),
            instrument=instrument if instrument in INSTRUMENTS else AS_IN_SEED,
            include_seed=bool(params.get("include_seed", False)),
            form=params.get("form") if params.get("form") in FORMS else DEFAULT_FORM,
            follow_key=bool(params.get("follow_key", True)),
            **{"seed_label": params.get("seed_label", "unknown"), "seed_midi": None, **seed},
        )
        return job.fresh()

    def fresh(self) -> ComposeJob:
        return replace(self, sampling_seed=random.randrange(2**31))
