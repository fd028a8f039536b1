"""Self-describing checkpoints: the model, its tokenizer and how it was made, in one file.

A checkpoint holds the model config, the weights (stored in half precision when shipped), the
tokenizer's parameters and a `meta` dict (data, steps, wall time, held-out NLL, and the notes
per GM program it trained on: see `Checkpoint.coverage`). The model is rebuilt from the file
alone; `tokenizer.json` and `<name>.json` beside it are for people.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.model.coverage import ProgramCoverage
from engine.model.lstm import LSTMLanguageModel, ModelConfig
from engine.model.tokenizer import MidiTokenizer

CHECKPOINT_DIR = Path(__file__).parent.parent / "checkpoints"
BASE_CHECKPOINT = CHECKPOINT_DIR / "base.pt"


@dataclass
class Checkpoint:
    model: LSTMLanguageModel
    tokenizer: MidiTokenizer
    meta: dict = field(default_factory=dict)

    @property
    def coverage(self) -> ProgramCoverage | None:
        """Training notes and pieces per GM program (-1: drums), so a caller can tell an
        instrument the model learned (`coverage.learned(65)`) from one it never saw; None for
        a checkpoint that does not record them (made before they were recorded)."""
        record = self.meta.get("programs")
        return ProgramCoverage.from_record(record) if record else None


def save_checkpoint(path: Path, ckpt: Checkpoint, *, half: bool = False) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if half and v.is_floating_point() else v).cpu()
        for k, v in ckpt.model.state_dict().items()
    }
    with tempfile.TemporaryDirectory() as tmp:
        tok_path = Path(tmp) / "tokenizer.json"
        ckpt.tokenizer.save(tok_path)
        tokenizer_params = tok_path.read_text()
    payload = {
        "format": "motif-lstm/1",
        "model_config": ckpt.model.config.to_dict(),
        "state_dict": state,
        "tokenizer": tokenizer_params,
        "meta": ckpt.meta,
    }
    tmp_path = path.with_suffix(path.suffix + ".part")
    torch.save(payload, tmp_path)
    os.replace(tmp_path, path)  # a crash never leaves half a checkpoint


def load_checkpoint(
    path: Path = BASE_CHECKPOINT,
    *,
    device: str | torch.device = "cpu",
) -> Checkpoint:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path} (run `make train` to make one)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = LSTMLanguageModel(ModelConfig(**payload["model_config"]))
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    )
    model.to(device).eval()
    tokenizer = MidiTokenizer.from_json(payload["tokenizer"])
    return Checkpoint(model=model, tokenizer=tokenizer, meta=payload.get("meta", {}))


def write_record(path: Path, meta: dict) -> None:
    """The human-readable JSON beside a checkpoint."""
    Path(path).with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
