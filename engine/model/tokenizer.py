"""MIDI <-> token ids: MidiTok REMI with programs in one stream, plus BPE.

REMI writes a bar as `Bar TimeSig Position [Tempo] Program Pitch Velocity Duration ...`, so
the metre is restated every bar and tempo changes sit at their position. BPE merges are
learned within a bar (MidiTok's `encode_ids_split="bar"`), so a learned token never spans a
bar line and a Bar can only open a token: that keeps bar counting exact while sampling.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Sequence
from pathlib import Path

from miditok import REMI, TokenizerConfig
from symusic import Score

from engine.api.metre import TIME_SIGNATURES

# Named once here; the saved tokenizer JSON is the truth for a trained checkpoint.
PITCH_RANGE = (21, 109)  # the piano's range; folk and choral music sit well inside it
BEAT_RESOLUTION = {(0, 4): 12, (4, 12): 4}  # 12 per beat keeps triplets exact in short notes
NUM_VELOCITIES = 16
NUM_TEMPOS = 32
# How the vocabulary quantises tempos: a fact of the trained model, not a limit of a request
# (a request's tempo range is engine.api.limits.TEMPO_BPM; tempos outside these are written at the
# nearest one, and the output's tempo is set after decoding anyway).
TEMPO_RANGE = (40, 250)
SPECIAL_TOKENS = ["PAD", "BOS", "EOS"]
DEFAULT_VOCAB_SIZE = 2000
TOKENIZER_FILE = "tokenizer.json"


def base_config() -> TokenizerConfig:
    return TokenizerConfig(
        pitch_range=PITCH_RANGE,
        beat_res=BEAT_RESOLUTION,
        num_velocities=NUM_VELOCITIES,
        special_tokens=SPECIAL_TOKENS,
        encode_ids_split="bar",
        use_velocities=True,
        use_programs=True,
        one_token_stream_for_programs=True,
        use_tempos=True,
        num_tempos=NUM_TEMPOS,
        tempo_range=TEMPO_RANGE,
        use_time_signatures=True,
        time_signature_range=TIME_SIGNATURES,
    )


class MidiTokenizer:
    """The one object the engine uses to turn scores into ids and back."""

    def __init__(self, remi: REMI) -> None:
        if not remi.is_trained:
            raise ValueError("the tokenizer has no BPE vocabulary: train it first")
        self.remi = remi
        self.pad_id, self.bos_id, self.eos_id = (remi[f"{t}_None"] for t in SPECIAL_TOKENS)

    @classmethod
    def train(
        cls, midi_paths: Sequence[Path], vocab_size: int = DEFAULT_VOCAB_SIZE
    ) -> MidiTokenizer:
        remi = REMI(base_config())
        remi.train(vocab_size=vocab_size, model="BPE", files_paths=list(midi_paths))
        return cls(remi)

    @classmethod
    def load(cls, path: Path) -> MidiTokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        return cls(REMI(params=path))

    def save(self, path: Path) -> None:
        path = Path(path)
        if path.suffix != ".json":
            path = path / TOKENIZER_FILE
        self.remi.save(path)

    @functools.cached_property
    def params_json(self) -> str:
        """The JSON `save` writes and `load` reads (made once: the seed reader child is sent
        it; a tokenizer is never changed once trained)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / TOKENIZER_FILE
            self.save(path)
            return path.read_text()

    @classmethod
    def from_json(cls, params: str) -> MidiTokenizer:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / TOKENIZER_FILE
            path.write_text(params)
            return cls.load(path)

    @property
    def vocab_size(self) -> int:
        return len(self.remi)

    def encode(self, score: Score) -> list[int]:
        """Ids of the whole score (no BOS/EOS)."""
        seq = self.remi.encode(score)
        if isinstance(seq, list):  # multi-stream configs only; ours is one stream
            raise TypeError("expected one token stream")
        return list(seq.ids)

    def decode(self, ids: Sequence[int]) -> Score:
        specials = (self.pad_id, self.bos_id, self.eos_id)
        ids = [i for i in ids if i not in specials]
        return self.remi.decode(ids)

    def base_tokens(self, token_id: int) -> list[str]:
        """The REMI tokens that one (possibly learned) id stands for."""
        return self.remi._vocab_learned_bytes_to_tokens[self._id_to_bytes[token_id]]

    @property
    def _id_to_bytes(self) -> dict[int, str]:
        cached = getattr(self, "_id_bytes_cache", None)
        if cached is None:
            cached = {i: b for b, i in self.remi._model.get_vocab().items()}
            self._id_bytes_cache = cached
        return cached

    def to_base(self, ids: Sequence[int]) -> list[str]:
        return [t for i in ids for t in self.base_tokens(i)]
