"""Steering the sampler toward the seed: its instruments, key, dynamics, texture and groove.

The grammar (engine.generation.grammar) says which ids are *valid*; steering says which of them
*fit this seed*. Each id is described once by what it holds (programs, pitch classes, velocity
levels, positions, note starts, whether it stacks a chord), so a decode step turns every row's
wishes into one (B, V) mask and one (B, V) bias with a few matrix products:

- programs: only the ones the arrangement gives the model (a hard mask; nothing from nowhere);
- dynamics: velocities within the seed's range (hard: a ff hit in a pp seed is a wrong note);
- texture: a monophonic part writes one note at a time (hard);
- key: each pitch class outside the seed's scale costs `key_strength` nats (soft, so passing
  notes stay possible), and within the scale the ones the seed dwells on (its tonic, its
  third) gain a little over the ones it touches in passing, so the key's centre holds too;
- groove: positions the seed's onsets favour gain, the ones it never uses lose (soft);
- density: every note beyond the seed's notes per bar costs `DENSITY_COST` nats (soft).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.model.tokenizer import MidiTokenizer

DRUMS = 128
PROGRAMS = 129  # GM programs and drums
PITCH_CLASSES = 12
# Nats an out-of-scale pitch class costs at full key confidence: e^-3 makes a chromatic note
# about 20x rarer than the model wanted, rare but possible (a passing note, a blue note).
KEY_STRENGTH = 3.0
# Nats per note written beyond the seed's notes per bar (x DENSITY_SLACK): a bar may be a little
# busier than the seed's, not six times.
DENSITY_COST = 1.0
DENSITY_SLACK = 1.25
# Within the scale, log(seed's share of a pitch class / uniform share) x this x key_strength,
# clipped: a tonic the seed holds gains up to a nat, a scale note it never plays loses a little.
TONAL_CENTRE_WEIGHT = 0.4
TONAL_FLOOR, TONAL_CEILING = -1.5, 1.0
# The groove bias is log(seed's share at a position / uniform share), scaled and clipped: a
# position the seed never plays costs at most GROOVE_FLOOR nats, a favourite gains at most
# GROOVE_CEILING.
GROOVE_STRENGTH = 0.6
GROOVE_FLOOR, GROOVE_CEILING = -2.5, 1.0
# A seed's onset profile is mixed with this much of a metric prior (downbeats, beats, halves,
# quarters...) so that a four-bar seed of quarter notes does not forbid every eighth.
GROOVE_PRIOR_SHARE = 0.2


@dataclass(frozen=True)
class RowSteering:
    """What one request asks of its rows (None / empty: no steering of that kind)."""

    programs: frozenset[int] | None = None  # allowed programs (DRUMS for drums)
    scale: frozenset[int] | None = None  # pitch classes that fit; None: no key bias
    key_strength: float = 0.0  # nats per out-of-scale note
    pitch_class_shares: tuple[float, ...] | None = None  # the seed's time on each pitch class
    velocities: tuple[int, int] | None = None  # allowed MIDI velocity range
    monophonic: bool = False  # one note at a time
    notes_per_bar: float = 0.0  # density target; 0: free
    onsets: Sequence[float] | None = None  # the seed's share of onsets at each position of a bar
    positions_per_beat: int = 12


@dataclass
class SteeringTables:
    """Per-id facts (V, ...) for building masks and biases in a few tensor ops."""

    programs: torch.Tensor  # (V, 129) float: 1 where the id names that program
    pitch_classes: torch.Tensor  # (V, 12) float: pitched notes of each pitch class
    velocities: torch.Tensor  # (V, L) float: 1 where the id holds that velocity level
    velocity_values: list[int]  # the L levels' MIDI velocities
    positions: torch.Tensor  # (V, P) float: 1 where the id sets that position
    note_starts: torch.Tensor  # (V,) float: notes the id begins (its Program tokens)
    pending_note: torch.Tensor  # (V,) float: 1 when it ends on a Position (a note must follow)
    stacks: torch.Tensor  # (V,) bool: holds a note starting where the last one did (a chord)
    starts_with_program: torch.Tensor  # (V,) bool: begins a note (after a finished one: a chord)
    ends_note: torch.Tensor  # (V,) bool: its last token is a Duration (a note just finished)
    opens_bar: torch.Tensor  # (V,) bool

    @classmethod
    def build(cls, tokenizer: MidiTokenizer) -> SteeringTables:
        size = tokenizer.vocab_size
        velocity_values = sorted(int(t.split("_")[1]) for t in tokenizer.remi.vocab
                                 if t.startswith("Velocity_"))
        level = {v: i for i, v in enumerate(velocity_values)}
        max_position = max([int(t.split("_")[1]) for t in tokenizer.remi.vocab
                            if t.startswith("Position_")] or [0])
        programs = np.zeros((size, PROGRAMS), np.float32)
        pitch_classes = np.zeros((size, PITCH_CLASSES), np.float32)
        velocities = np.zeros((size, len(velocity_values)), np.float32)
        positions = np.zeros((size, max_position + 1), np.float32)
        note_starts = np.zeros(size, np.float32)
        pending = np.zeros(size, np.float32)
        stacks = np.zeros(size, bool)
        starts_with_program = np.zeros(size, bool)
        ends_note = np.zeros(size, bool)
        opens_bar = np.zeros(size, bool)
        for token_id in range(size):
            base = tokenizer.base_tokens(token_id)
            after_note = False  # a note finished and no Position came since
            for i, token in enumerate(base):
                kind, _, value = token.partition("_")
                if kind == "Program":
                    program = DRUMS if value == "-1" else int(value)
                    programs[token_id, program] = 1.0
                    note_starts[token_id] += 1
                    stacks[token_id] |= after_note
                    starts_with_program[token_id] |= i == 0
                elif kind == "Pitch":
                    pitch_classes[token_id, int(value) % PITCH_CLASSES] += 1
                elif kind == "Velocity":
                    velocities[token_id, level[int(value)]] = 1.0
                elif kind == "Position":
                    positions[token_id, int(value)] = 1.0
                    after_note = False
                elif kind == "Duration":
                    after_note = True
                elif kind == "Bar":
                    after_note = False
                    opens_bar[token_id] |= i == 0
            if base:
                last = base[-1].partition("_")[0]
                pending[token_id] = float(last == "Position")
                ends_note[token_id] = last == "Duration"
        as_tensor = torch.from_numpy
        return cls(as_tensor(programs), as_tensor(pitch_classes), as_tensor(velocities),
                   velocity_values, as_tensor(positions), as_tensor(note_starts),
                   as_tensor(pending), as_tensor(stacks), as_tensor(starts_with_program),
                   as_tensor(ends_note), as_tensor(opens_bar))

    def to(self, device: torch.device | str) -> SteeringTables:
        return SteeringTables(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                                 for k, v in vars(self).items()})

    @property
    def max_positions(self) -> int:
        return int(self.positions.shape[1])


@dataclass
class SteeringRows:
    """The rows' steering as (B, ...) tensors, kept beside the decode batch's rows.

    What does not change while a row decodes (its instruments, dynamics, key and groove) is
    folded into one (B, V) mask and one (B, V) bias when the row joins; a step only adds what
    depends on the row's state (chords in a monophonic part, notes already in the bar).
    """

    fixed_mask: torch.Tensor  # (B, V) bool: programs and velocities that fit
    fixed_bias: torch.Tensor  # (B, V) float: key and groove
    allowed_velocities: torch.Tensor  # (B, L) bool
    monophonic: torch.Tensor  # (B,) bool
    density_target: torch.Tensor  # (B,) float, 0: free
    notes_in_bar: torch.Tensor  # (B,) float: notes begun in the current bar
    after_note: torch.Tensor  # (B,) bool: the last id finished a note (no Position since)

    FIELDS = ("fixed_mask", "fixed_bias", "allowed_velocities", "monophonic",
              "density_target", "notes_in_bar", "after_note")

    @classmethod
    def of(cls, tables: SteeringTables, steering: RowSteering, rows: int,
           device: torch.device | str) -> SteeringRows:
        programs = torch.ones(PROGRAMS, dtype=torch.bool)
        if steering.programs:
            programs = torch.zeros(PROGRAMS, dtype=torch.bool)
            programs[sorted(steering.programs)] = True
        off_scale = torch.zeros(PITCH_CLASSES)  # a cost: positive is worse
        if steering.scale is not None and steering.key_strength > 0:
            centre = tonal_centre_bias(steering.pitch_class_shares)
            for pc in range(PITCH_CLASSES):
                off_scale[pc] = (steering.key_strength if pc not in steering.scale else
                                 -TONAL_CENTRE_WEIGHT * steering.key_strength * centre[pc])
        levels = torch.tensor(tables.velocity_values)
        velocities = torch.ones(len(levels), dtype=torch.bool)
        if steering.velocities is not None:
            low, high = steering.velocities
            velocities = (levels >= low) & (levels <= high)
            if not velocities.any():  # a narrow range between two levels: the nearest one
                velocities[int(torch.argmin((levels - (low + high) / 2).abs()))] = True
        groove = torch.zeros(tables.max_positions)
        if steering.onsets is not None and len(steering.onsets):
            groove[: len(steering.onsets)] = torch.from_numpy(
                groove_bias(steering.onsets, steering.positions_per_beat)).float()
        # Folded where the tables live: the few small vectors move, not the (V, ...) tables.
        at = tables.programs.device
        bad_program = (programs.logical_not().float().to(at) @ tables.programs.T) > 0
        bad_velocity = (velocities.logical_not().float().to(at) @ tables.velocities.T) > 0
        fixed_mask = ~(bad_program | bad_velocity)
        fixed_bias = (-(off_scale.to(at) @ tables.pitch_classes.T)
                      + groove.to(at) @ tables.positions.T)

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.to(device).unsqueeze(0).expand(rows, *t.shape).clone()

        return cls(
            fixed_mask=rep(fixed_mask), fixed_bias=rep(fixed_bias),
            allowed_velocities=rep(velocities),
            monophonic=torch.full((rows,), steering.monophonic, dtype=torch.bool, device=device),
            density_target=torch.full((rows,), float(steering.notes_per_bar), device=device),
            notes_in_bar=torch.zeros(rows, device=device),
            after_note=torch.zeros(rows, dtype=torch.bool, device=device))

    def cat(self, other: SteeringRows) -> SteeringRows:
        return SteeringRows(**{f: torch.cat([getattr(self, f), getattr(other, f)])
                               for f in self.FIELDS})

    def select(self, keep: torch.Tensor) -> SteeringRows:
        return SteeringRows(**{f: getattr(self, f)[keep] for f in self.FIELDS})

    def mask(self, tables: SteeringTables) -> torch.Tensor:
        """(B, V) bool: the ids that fit each row."""
        if not bool(self.monophonic.any()):
            return self.fixed_mask
        chord = tables.stacks[None, :] | (self.after_note[:, None]
                                          & tables.starts_with_program[None, :])
        return self.fixed_mask & ~(self.monophonic[:, None] & chord)

    def bias(self, tables: SteeringTables) -> torch.Tensor:
        """(B, V) float nats added to each row's scaled logits."""
        target = self.density_target[:, None] * DENSITY_SLACK
        added = (tables.note_starts + tables.pending_note)[None, :]
        current = torch.where(tables.opens_bar[None, :], torch.zeros_like(added),
                              self.notes_in_bar[:, None])
        excess = (current + added - target).clamp(min=0).minimum(added)
        return self.fixed_bias - DENSITY_COST * excess * (self.density_target[:, None] > 0)

    def advance(self, tables: SteeringTables, ids: torch.Tensor) -> None:
        starts = tables.note_starts[ids]
        self.notes_in_bar = torch.where(tables.opens_bar[ids], starts, self.notes_in_bar + starts)
        self.after_note = tables.ends_note[ids]


def tonal_centre_bias(shares: tuple[float, ...] | None) -> np.ndarray:
    """Per pitch class, log of the seed's (smoothed) share over the uniform share, clipped,
    less its mean over the seed's notes: a note drawn like the seed's gains nothing on
    average, so the bias moves notes between pitch classes without thinning them out."""
    if shares is None:
        return np.zeros(PITCH_CLASSES)
    weights = np.asarray(shares, dtype=np.float64)
    smoothed = 0.8 * weights + 0.2 / PITCH_CLASSES
    bias = np.clip(np.log(smoothed * PITCH_CLASSES), TONAL_FLOOR, TONAL_CEILING)
    return bias - float((weights * bias).sum() / max(weights.sum(), 1e-9))


def groove_bias(onsets: Sequence[float], positions_per_beat: int) -> np.ndarray:
    """Nats for each position of a bar: log of the seed's onset share (mixed with a metric
    prior) over the uniform share, scaled and clipped."""
    size = len(onsets)
    prior = metric_prior(size, positions_per_beat)
    mixed = (1 - GROOVE_PRIOR_SHARE) * np.asarray(onsets, dtype=np.float64) + (
        GROOVE_PRIOR_SHARE * prior)
    bias = GROOVE_STRENGTH * np.log(np.maximum(mixed, 1e-9) * size)
    return np.clip(bias, GROOVE_FLOOR, GROOVE_CEILING)


def metric_prior(size: int, positions_per_beat: int) -> np.ndarray:
    """A share per position that halves at each finer level: beats, halves, thirds (triplets),
    quarters, sixths... and a little for the rest."""
    weight = np.full(size, 1.0 / 64)
    for divisions, w in ((1, 1.0), (2, 0.5), (3, 0.35), (4, 0.25), (6, 0.12), (12, 0.06)):
        step = positions_per_beat // divisions
        if step >= 1 and positions_per_beat % divisions == 0:
            weight[::step] = np.maximum(weight[::step], w)
    return weight / weight.sum()
