"""Which device the engine runs on, and how many CPU threads torch takes.

Both come from the process's settings (MOTIF_DEVICE, MOTIF_THREADS; engine.api.config).
"""

from __future__ import annotations

import torch

from engine.api.limits import DECODE_THREADS, DEFAULT_DEVICE, default_batch_threads


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` ("auto", "cpu", "cuda:1", ...; None: auto): a GPU when there is one."""
    name = requested or DEFAULT_DEVICE
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"MOTIF_DEVICE={name} but torch sees no CUDA device")
    return device


def configure_threads(threads: int | None = None, *, decoding: bool = True) -> int:
    """Set torch's CPU threads: `threads` if given (MOTIF_THREADS), else one for decoding and
    every core for batch work (training, evaluation). Returns the number set."""
    threads = threads or (DECODE_THREADS if decoding else default_batch_threads())
    torch.set_num_threads(threads)
    return threads
