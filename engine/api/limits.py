"""Every limit and default of a request, of the engine process and of the bot's own options, in
one place (light: no torch).

The slash commands, `python -m engine compose`, the engine's wire schema (engine.api.schema)
and the tests all read these, so a range changes here or nowhere. Each default says why it is
what it is. Operators override the process settings and the work bounds through MOTIF_*
variables (engine.api.config); the ranges of a request's options are the product's, not an
operator's.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Generic, TypeVar

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class Range(Generic[N]):
    """Inclusive bounds of a number (`low_open`: the low bound itself is excluded)."""

    low: N
    high: N
    unit: str = ""  # shown after the bounds: " bpm", " s"
    low_open: bool = False

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = self.low < value if self.low_open else self.low <= value
        return above and value <= self.high

    @property
    def text(self) -> str:
        """What is allowed: "within 1 and 64", "above 0 and at most 1"."""
        if self.low_open:
            return f"above {_number(self.low)} and at most {_number(self.high)}{self.unit}"
        return f"within {_number(self.low)} and {_number(self.high)}{self.unit}"

    def check(self, name: str, value: N, error: type[Exception] = ValueError) -> N:
        """`value`, or `error` naming it, what is allowed and what was received."""
        if value not in self:
            raise error(f"{name} must be {self.text} (received {_number(value)})")
        return value


def _number(value: object) -> str:
    """1 not 1.0, 0.95 as is, 1000000 without an exponent; anything else as repr."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value}"
    return f"{value!r:.40}"


# ---- A composition's options (slash command, CLI, engine request) -------------------------

BARS = Range(1, 64)
# Four phrases of four bars: long enough to hear where a continuation goes, short enough to
# compose in a couple of seconds on a CPU.
DEFAULT_BARS = 16

# A composition's buttons have a row per kind (vote, continue, save) with one button per
# candidate (bot/ui/views.py; Discord allows five to a row), and four clips are about as many as
# a channel listens to before voting.
CANDIDATES = Range(1, 4)
DEFAULT_CANDIDATES = 4  # enough to choose between, all on one message

# The range members choose in ("lower is safer, higher is wilder"): towards 0 sampling turns
# greedy and repeats itself, far above 1 the model's least likely ids take over. The CLI and
# the engine hold the same range, so whatever one way in allows, the others do.
TEMPERATURE = Range(0.5, 1.5)
DEFAULT_TEMPERATURE = 1.0  # the model's own distribution

# Nucleus sampling: the smallest set of ids holding this much probability.
TOP_P = Range(0.0, 1.0, low_open=True)
DEFAULT_TOP_P = 0.95  # cuts the long tail of unlikely ids that make stray notes

# Beyond these no musician would call it a tempo. One range for the tempo a member asks for
# and the tempos inside a seed, so any seed can be continued at its own tempo. (The
# tokenizer's 40-250 bpm is how its vocabulary quantises tempos, a fact of the trained model,
# not a limit of a request: engine/model/tokenizer.py.)
TEMPO_BPM = Range(20.0, 400.0, " bpm")
# When neither the seed nor the member gives one: a moderate walking pace.
DEFAULT_TEMPO_BPM = 110.0

PROGRAM = Range(0, 127)  # General MIDI programs

# The sampling seed: torch's generator takes 64 bits; the bot draws from 31.
SAMPLING_SEED = Range(0, 2**63 - 1)

# ---- The bot's own options (slash commands that do not reach the engine) ----------------

# A saved seed's name as members type it; the database column holds this many characters.
SEED_NAME_CHARS = Range(1, 64)
# A jam (/jam start) is a music night: four rounds of two minutes make a piece in about ten
# minutes.
JAM_ROUNDS = Range(1, 12)
DEFAULT_JAM_ROUNDS = 4
JAM_ROUND_MINUTES = Range(1, 30, " min")
DEFAULT_JAM_ROUND_MINUTES = 2

# ---- Seeds (uploaded, saved, or a piece continued) ---------------------------------------

# A DAW's export with controller automation runs to a few hundred KB; parsing 1 MB takes
# milliseconds, and the note limit below bounds everything after parsing.
MAX_SEED_BYTES = 1_000_000
# A performed piano piece of several minutes; tokenizing this many took 2 s on this 2-core
# machine under load (before any decoding, in the engine's seed reader child).
MAX_SEED_NOTES = 20_000
MAX_SEED_SECONDS = 30 * 60  # longer is not a seed but a whole recording
# The prompt is the seed's last bars: an LSTM remembers less than this, and the prefill of
# this many ids stays around 10 ms on a CPU.
MAX_PROMPT_TOKENS = 1024

# ---- Work one request may cost (checked when the plan is made, before any decoding) -------

# The decode loop's last resort: a row ends after bars x this many ids (the grammar closes a
# bar within BAR_TOKEN_CAP + 5 ids, so well-formed rows never reach it). Bounds a candidate's
# generated ids.
MAX_TOKENS_PER_BAR = 96
# One clip. 64 bars in the widest metre the model may choose when the seed gives none (4/2)
# last 279 s at the default 110 bpm; 16 bars of 4/4 fit even at the slowest tempo (20 bpm:
# 192 s). Longer is not listened to in a channel before a vote.
DEFAULT_MAX_CLIP_SECONDS = 300.0
CLIP_SECONDS = Range(10.0, 3600.0, " s")
# All candidates of a composition together: four of those longest default clips (1,117 s)
# fit. A composition's CPU grows with its audio (decoding, rendering, encoding: about 1
# CPU-second per audio minute for a sparse seed, 4 with a 20,000-note seed included; see
# bench/work_limits.py), so this bounds a request to well under a minute of CPU, where a
# 20 bpm seed asking for 64 bars of 4/2 (102 minutes of audio) once cost eight.
DEFAULT_MAX_COMPOSITION_SECONDS = 1200.0
COMPOSITION_SECONDS = Range(10.0, 4 * 3600.0, " s")
# Generated ids of a composition, counted at the decode loop's cap (candidates x bars x
# MAX_TOKENS_PER_BAR): the default admits every option; an operator may lower it.
DEFAULT_MAX_COMPOSITION_TOKENS = CANDIDATES.high * BARS.high * MAX_TOKENS_PER_BAR
COMPOSITION_TOKENS = Range(MAX_TOKENS_PER_BAR, 1_000_000)
# Operators may lower the seed note limit (the seed reader's own cap stays MAX_SEED_NOTES).
SEED_NOTES = Range(1, MAX_SEED_NOTES)

# ---- Audio ----------------------------------------------------------------------------------

# Below this even a short, low-quality clip does not fit: a request's max_audio_bytes.
MIN_AUDIO_BYTES = 32_000

# A render job (a saved seed played, a part of an exported piece: engine.serving.render_job)
# makes at most this much audio of a whole MIDI file, whatever its length: 5 minutes of stereo float
# PCM at 48 kHz is ~115 MB in the engine (a 26-minute piece held ~600 MB before). Longer
# MIDI is cut and the result says so; the bot exports long pieces in parts of this length.
DEFAULT_MAX_RENDER_SECONDS = 300.0
RENDER_SECONDS = Range(10.0, 1800.0, " s")  # half an hour holds ~700 MB of PCM
# A render job's file: a piece of a thousand 64-bar rounds is a few MB of MIDI.
MAX_RENDER_MIDI_BYTES = 16_000_000
# Notes in the audio one render job makes: a dense piano piece plays ~40 a second, ~12,000 in
# 5 minutes; the synth's cost grows with them, whatever the length.
MAX_RENDER_NOTES = 100_000

# ---- The engine process (MOTIF_* variables; engine.api.config reads them) --------------------

DEVICES = "auto, cpu, mps, cuda or cuda:N"
DEFAULT_DEVICE = "auto"  # a GPU when torch sees one, else the CPU
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_LOG_FORMAT = "text"  # for people; "json" for log collectors (engine.api.logs)

# Rows decoding at once. A CPU step costs about linearly in rows past a few dozen; a GPU
# step costs about the same up to hundreds.
DEFAULT_MAX_ROWS = {"cpu": 64, "cuda": 256}
MAX_ROWS = Range(1, 4096)

# FluidSynth renders a clip on one core and the OGG encoders take others: on a small machine
# one render thread keeps the cores busy; a GPU host decodes faster than that.
RENDER_THREADS = Range(1, 64)


def default_render_threads() -> int:
    return max(1, (os.cpu_count() or 1) // 4)


# A 2x512 LSTM over 2,000 ids weighs ~25 MB in float32: a GB holds dozens of servers'
# models. 0 keeps only the base model (every server's model loads for each composition).
DEFAULT_MODEL_CACHE_MB = 1024
MODEL_CACHE_MB = Range(0, 1024 * 1024)

# Torch's CPU threads. Decoding is a chain of small matrix-vector steps: one thread ran a
# step in ~3.5 ms on a 2-core CPU while two took 45-100 ms as soon as anything else wanted a
# core (OpenMP workers wait on each other), and the second core is better spent rendering.
# Batch work (training, evaluation) takes every core.
DECODE_THREADS = 1
TORCH_THREADS = Range(1, 1024)


def default_batch_threads() -> int:
    return os.cpu_count() or 1


# Fine-tunes inside the engine take half the cores: decoding and rendering keep the rest.
def default_finetune_threads() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


# Steps of one fine-tune run (the engine's default is engine.finetune.defaults).
FINETUNE_STEPS = Range(1, 100_000)

# A server's fine-tuned versions whose checkpoints the engine keeps after a run: the newest
# accepted ones (what an admin may still roll back to), besides the active one and the new
# one, which are always kept. Three cover "the last few" without a server's folder (or the
# shared model store of the queue's workers, ~10-20 MB a version) growing with every run.
DEFAULT_FINETUNE_KEEP_VERSIONS = 3
FINETUNE_KEEP_VERSIONS = Range(1, 1000)
