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
# Pitch-class feedback, part by part: the notes each program has written so far are compared
# with that program's pitch-class shares in the seed, and each class gains (or loses)
# PITCH_FEEDBACK x log(seed's share / share so far) nats, clipped to +-PITCH_FEEDBACK_CAP. It
# acts on the difference, not the shares: a part already writing like the seed is left alone,
# a bass that settles on one pedal note or drifts to the dominant's centre is drawn back. It
# grows in over each part's first PITCH_FEEDBACK_WARMUP notes (a few notes say little).
PITCH_FEEDBACK = 1.0
PITCH_FEEDBACK_CAP = 2.0
PITCH_FEEDBACK_WARMUP = 12.0
PITCH_FEEDBACK_FLOOR = 0.01  # shares are floored here before the log
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
    # Per program the row writes, the shares its notes should keep (pitch-class feedback).
    part_pitch_shares: tuple[tuple[int, tuple[float, ...]], ...] = ()
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
    # Whose notes an id's pitches are: the ones before its first Program token belong to the
    # program already under way (`lead_pitch_classes`), the others to the Program before them
    # (`note_slots`: program x 12 + pitch class, one row per note, and `note_ids` their ids).
    lead_pitch_classes: torch.Tensor  # (V, 12) float
    note_ids: torch.Tensor  # (E,) long
    note_slots: torch.Tensor  # (E,) long
    note_counts: torch.Tensor  # (V, 129 * 12) uint8: the same notes as a table, for counting
    last_program: torch.Tensor  # (V,) long: the id's last Program (DRUMS for drums); -1: none

    @classmethod
    def build(cls, tokenizer: MidiTokenizer) -> SteeringTables:
        size = tokenizer.vocab_size
        velocity_values = sorted(
            int(t.split("_")[1]) for t in tokenizer.remi.vocab if t.startswith("Velocity_")
        )
        level = {v: i for i, v in enumerate(velocity_values)}
        max_position = max(
            [int(t.split("_")[1]) for t in tokenizer.remi.vocab if t.startswith("Position_")] or [0]
        )
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
        lead_pitch_classes = np.zeros((size, PITCH_CLASSES), np.float32)
        note_ids: list[int] = []
        note_slots: list[int] = []
        last_program = np.full(size, -1, np.int64)
        for token_id in range(size):
            base = tokenizer.base_tokens(token_id)
            after_note = False  # a note finished and no Position came since
            for i, token in enumerate(base):
                kind, _, value = token.partition("_")
                if kind == "Program":
                    program = DRUMS if value == "-1" else int(value)
                    programs[token_id, program] = 1.0
                    last_program[token_id] = program
                    note_starts[token_id] += 1
                    stacks[token_id] |= after_note
                    starts_with_program[token_id] |= i == 0
                elif kind == "Pitch":
                    pc = int(value) % PITCH_CLASSES
                    pitch_classes[token_id, pc] += 1
                    if last_program[token_id] < 0:
                        lead_pitch_classes[token_id, pc] += 1
                    else:
                        note_ids.append(token_id)
                        note_slots.append(int(last_program[token_id]) * PITCH_CLASSES + pc)
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
        note_counts = np.zeros((size, PROGRAMS * PITCH_CLASSES), np.uint8)
        np.add.at(note_counts, (note_ids, note_slots), 1)
        as_tensor = torch.from_numpy
        return cls(
            as_tensor(programs),
            as_tensor(pitch_classes),
            as_tensor(velocities),
            velocity_values,
            as_tensor(positions),
            as_tensor(note_starts),
            as_tensor(pending),
            as_tensor(stacks),
            as_tensor(starts_with_program),
            as_tensor(ends_note),
            as_tensor(opens_bar),
            as_tensor(lead_pitch_classes),
            torch.tensor(note_ids, dtype=torch.long),
            torch.tensor(note_slots, dtype=torch.long),
            as_tensor(note_counts),
            as_tensor(last_program),
        )

    def to(self, device: torch.device | str) -> SteeringTables:
        return SteeringTables(
            **{
                k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                for k, v in vars(self).items()
            }
        )

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
    # Pitch-class feedback, per program x pitch class (129 x 12, flat): the seed's shares
    # (all 0 for a program without feedback) and the notes written so far.
    pitch_target: torch.Tensor  # (B, 129 * 12) float
    pitch_on: torch.Tensor  # (B, 129 * 12) float: 1 on the twelve slots of a targeted program
    pitch_written: torch.Tensor  # (B, 129 * 12) float
    program_now: torch.Tensor  # (B,) long: the program the next bare Pitch belongs to; -1: none

    FIELDS = (
        "fixed_mask",
        "fixed_bias",
        "allowed_velocities",
        "monophonic",
        "density_target",
        "notes_in_bar",
        "after_note",
        "pitch_target",
        "pitch_on",
        "pitch_written",
        "program_now",
    )

    @classmethod
    def of(
        cls, tables: SteeringTables, steering: RowSteering, rows: int, device: torch.device | str
    ) -> SteeringRows:
        programs = torch.ones(PROGRAMS, dtype=torch.bool)
        if steering.programs:
            programs = torch.zeros(PROGRAMS, dtype=torch.bool)
            programs[sorted(steering.programs)] = True
        off_scale = torch.zeros(PITCH_CLASSES)  # a cost: positive is worse
        if steering.scale is not None and steering.key_strength > 0:
            centre = tonal_centre_bias(steering.pitch_class_shares)
            for pc in range(PITCH_CLASSES):
                off_scale[pc] = (
                    steering.key_strength
                    if pc not in steering.scale
                    else -TONAL_CENTRE_WEIGHT * steering.key_strength * centre[pc]
                )
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
                groove_bias(steering.onsets, steering.positions_per_beat)
            ).float()
        # Folded where the tables live: the few small vectors move, not the (V, ...) tables.
        at = tables.programs.device
        bad_program = (programs.logical_not().float().to(at) @ tables.programs.T) > 0
        bad_velocity = (velocities.logical_not().float().to(at) @ tables.velocities.T) > 0
        fixed_mask = ~(bad_program | bad_velocity)
        fixed_bias = (
            -(off_scale.to(at) @ tables.pitch_classes.T) + groove.to(at) @ tables.positions.T
        )

        pitch_target = torch.zeros(PROGRAMS, PITCH_CLASSES)
        if steering.scale is not None and steering.key_strength > 0 and PITCH_FEEDBACK > 0:
            for program, shares in steering.part_pitch_shares:
                row = torch.tensor(shares, dtype=torch.float32)
                if row.sum() > 0:
                    pitch_target[program] = row / row.sum()
        pitch_on = (
            (pitch_target.sum(dim=1, keepdim=True) > 0).float().expand(-1, PITCH_CLASSES).flatten()
        )
        pitch_target = pitch_target.flatten()

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.to(device).unsqueeze(0).expand(rows, *t.shape).clone()

        return cls(
            fixed_mask=rep(fixed_mask),
            fixed_bias=rep(fixed_bias),
            allowed_velocities=rep(velocities),
            monophonic=torch.full((rows,), steering.monophonic, dtype=torch.bool, device=device),
            density_target=torch.full((rows,), float(steering.notes_per_bar), device=device),
            notes_in_bar=torch.zeros(rows, device=device),
            after_note=torch.zeros(rows, dtype=torch.bool, device=device),
            pitch_target=rep(pitch_target),
            pitch_on=rep(pitch_on),
            pitch_written=torch.zeros(rows, PROGRAMS * PITCH_CLASSES, device=device),
            program_now=torch.full((rows,), -1, dtype=torch.long, device=device),
        )

    def cat(self, other: SteeringRows) -> SteeringRows:
        return SteeringRows(
            **{f: torch.cat([getattr(self, f), getattr(other, f)]) for f in self.FIELDS}
        )

    def select(self, keep: torch.Tensor) -> SteeringRows:
        return SteeringRows(**{f: getattr(self, f)[keep] for f in self.FIELDS})

    def mask(self, tables: SteeringTables) -> torch.Tensor:
        """(B, V) bool: the ids that fit each row."""
        if not bool(self.monophonic.any()):
            return self.fixed_mask
        chord = tables.stacks[None, :] | (
            self.after_note[:, None] & tables.starts_with_program[None, :]
        )
        return self.fixed_mask & ~(self.monophonic[:, None] & chord)

    def bias(self, tables: SteeringTables) -> torch.Tensor:
        """(B, V) float nats added to each row's scaled logits."""
        target = self.density_target[:, None] * DENSITY_SLACK
        added = (tables.note_starts + tables.pending_note)[None, :]
        current = torch.where(
            tables.opens_bar[None, :], torch.zeros_like(added), self.notes_in_bar[:, None]
        )
        excess = (current + added - target).clamp(min=0).minimum(added)
        bias = self.fixed_bias - DENSITY_COST * excess * (self.density_target[:, None] > 0)
        if not bool((self.pitch_target > 0).any()):
            return bias
        nats = self._pitch_feedback()  # (B, 129 x 12)
        now = nats.gather(1, self._slots_now()) * (self.program_now >= 0)[:, None]
        bias = torch.addmm(bias, now, tables.lead_pitch_classes.T)
        return bias.index_add(1, tables.note_ids, nats[:, tables.note_slots])

    def _slots_now(self) -> torch.Tensor:
        """(B, 12) flat slots of the program under way's twelve pitch classes."""
        classes = torch.arange(PITCH_CLASSES, device=self.program_now.device)
        return self.program_now.clamp(min=0)[:, None] * PITCH_CLASSES + classes[None, :]

    def _pitch_feedback(self) -> torch.Tensor:
        """(B, 129 x 12) nats per program and pitch class: toward the seed's shares from the
        ones written; 0 for a program without a target."""
        counts = self.pitch_written.unflatten(1, (PROGRAMS, PITCH_CLASSES))
        written = counts.sum(dim=2, keepdim=True)
        so_far = (counts / written.clamp(min=1)).flatten(1)
        floor = PITCH_FEEDBACK_FLOOR
        nats = (PITCH_FEEDBACK * torch.log((self.pitch_target + floor) / (so_far + floor))).clamp(
            -PITCH_FEEDBACK_CAP, PITCH_FEEDBACK_CAP
        )
        # Grown in over a part's first notes; nothing for a program without a target.
        ramp = (written / PITCH_FEEDBACK_WARMUP).clamp(max=1).expand(-1, -1, PITCH_CLASSES)
        return nats * ramp.flatten(1) * self.pitch_on

    def advance(self, tables: SteeringTables, ids: torch.Tensor) -> None:
        starts = tables.note_starts[ids]
        self.notes_in_bar = torch.where(tables.opens_bar[ids], starts, self.notes_in_bar + starts)
        self.after_note = tables.ends_note[ids]
        if bool((self.pitch_target > 0).any()):
            self._count_pitches(tables, ids)

    def _count_pitches(self, tables: SteeringTables, ids: torch.Tensor) -> None:
        under_way = (self.program_now >= 0)[:, None]
        written = self.pitch_written + tables.note_counts[ids]
        self.pitch_written = written.scatter_add(
            1, self._slots_now(), tables.lead_pitch_classes[ids] * under_way
        )
        last = tables.last_program[ids]
        self.program_now = torch.where(last >= 0, last, self.program_now)


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
        GROOVE_PRIOR_SHARE * prior
    )
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
