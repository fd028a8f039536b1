"""What a composition needs from a seed, read and tokenized: made in the seed reader's child
process (engine.serving.seed_reader) or, offline, in this one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.api.limits import MAX_SEED_NOTES
from engine.api.schema import SeedRead
from engine.api.seed_midi import SeedFacts
from engine.generation.seed_profile import SeedProfile, profile_seed

if TYPE_CHECKING:
    from engine.model.tokenizer import MidiTokenizer


@dataclass
class SeedTokens:
    """What a composition needs from a seed: its ids; its facts (the tempo and metre it ends
    in, how long it plays: what the prompt and the work check need); what a continuation
    should keep of it (its profile); and its notes as a clean MIDI file (the `material` the
    parts the model does not write go on from)."""

    ids: list[int]
    facts: SeedFacts
    profile: SeedProfile | None = None
    material: bytes | None = None
    # The ids without the drums, when the seed has drums and more: the bars a continuation
    # (which leaves drums to the arranger) may copy. None: the same as `ids`.
    pitched_ids: list[int] | None = None

    @classmethod
    def of(
        cls,
        tokenizer: MidiTokenizer,
        data: bytes,
        *,
        max_notes: int = MAX_SEED_NOTES,
        quantise: bool = False,
    ) -> SeedTokens:
        """Read and tokenize MIDI bytes in this process; BadSeed when they are unfit (over
        `max_notes` too, before tokenizing). `quantise`: snap the notes to the score grid
        first, so the continuation, its profile and the seed played back are the quantised."""
        from engine.api.seed_midi import read_seed, split_metres
        from engine.generation.quantise import quantise_score

        score = read_seed(data, max_notes=max_notes)
        if quantise:
            score = quantise_score(score)
        # The model reads bars of the metres its vocabulary holds; the seed's own metre is
        # kept for everything counted in bars a member sees (facts, profile, material).
        written = split_metres(score)
        pitched_ids = None
        drums = [t.is_drum for t in score.tracks if t.note_num()]
        if any(drums) and not all(drums):
            pitched = written.copy()
            pitched.tracks = [t for t in written.tracks if not t.is_drum]
            pitched_ids = tokenizer.encode(pitched)
        return cls(
            tokenizer.encode(written),
            SeedFacts.of(score),
            profile_seed(score),
            score.dumps_midi(),
            pitched_ids,
        )

    @property
    def copyable_ids(self) -> list[int]:
        return self.pitched_ids if self.pitched_ids is not None else self.ids

    def to_reply(self) -> SeedRead:
        """As the seed reader child sends it (engine.api.schema)."""
        facts = self.facts
        return SeedRead(
            ids=self.ids,
            tempo=facts.tempo,
            time_signature=facts.time_signature,
            quarters=facts.quarters,
            profile=None if self.profile is None else self.profile.to_record(),
            material=self.material,
            pitched_ids=self.pitched_ids,
        )

    @classmethod
    def from_reply(cls, reply: SeedRead) -> SeedTokens:
        profile = reply.profile
        return cls(
            reply.ids,
            SeedFacts(reply.tempo, reply.time_signature, reply.quarters),
            None if profile is None else SeedProfile.from_record(profile),
            reply.material,
            reply.pitched_ids,
        )
