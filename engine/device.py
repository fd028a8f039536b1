"""Which device the engine runs on: a GPU when there is one, unless MOTIF_DEVICE says otherwise."""

from __future__ import annotations

import os

import torch

# Decoding is a chain of small matrix-vector steps: one thread runs a step in ~3.5 ms on this
# CPU, while two threads took 45-100 ms per step as soon as anything else wanted a core
# (OpenMP workers wait on each other), and the second core is better spent rendering.
DECODE_THREADS = 1


def pick_device(requested: str | None = None) -> torch.device:
    name = requested or os.environ.get("MOTIF_DEVICE") or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"MOTIF_DEVICE={name} but torch sees no CUDA device")
    return device


def configure_threads(*, decoding: bool = True) -> int:
    """Set torch's CPU threads: MOTIF_THREADS if given, else one for decoding, all for batch
    work (training, evaluation). Returns the number set."""
    default = DECODE_THREADS if decoding else (os.cpu_count() or 1)
    threads = int(os.environ.get("MOTIF_THREADS", "0")) or default
    torch.set_num_threads(threads)
    return threads
