"""The slash commands' ranged options, shared by /compose and /jam start (and /seed add, /jam
start's own): every range is engine.api.limits', so Discord refuses what the engine would."""

from __future__ import annotations

from discord import app_commands

from engine.api.instruments import INSTRUMENTS
from engine.api.limits import (
    BARS,
    CANDIDATES,
    JAM_ROUND_MINUTES,
    JAM_ROUNDS,
    SEED_NAME_CHARS,
    TEMPERATURE,
    TEMPO_BPM,
)

# The instrument choice that keeps whatever the seed (or the model) plays.
AS_IN_SEED = "seed"

Bars = app_commands.Range[int, BARS.low, BARS.high]
Candidates = app_commands.Range[int, CANDIDATES.low, CANDIDATES.high]
Temperature = app_commands.Range[float, TEMPERATURE.low, TEMPERATURE.high]
# The tempo is whole bpm.
Tempo = app_commands.Range[int, int(TEMPO_BPM.low), int(TEMPO_BPM.high)]
SeedName = app_commands.Range[str, SEED_NAME_CHARS.low, SEED_NAME_CHARS.high]
Rounds = app_commands.Range[int, JAM_ROUNDS.low, JAM_ROUNDS.high]
RoundMinutes = app_commands.Range[int, JAM_ROUND_MINUTES.low, JAM_ROUND_MINUTES.high]

# Discord shows at most 25 choices: "as in the seed" plus the engine's short list.
INSTRUMENT_CHOICES = [app_commands.Choice(name="as in the seed", value=AS_IN_SEED)] + [
    app_commands.Choice(name=name.replace("-", " "), value=name) for name in INSTRUMENTS
][:24]
