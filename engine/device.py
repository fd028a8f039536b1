"""Which device the engine runs on: a GPU when there is one, unless MOTIF_DEVICE says otherwise."""

from __future__ import annotations

import os

import torch


def pick_device(requested: str | None = None) -> torch.device:
    name = requested or os.environ.get("MOTIF_DEVICE") or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"MOTIF_DEVICE={name} but torch sees no CUDA device")
    return device


def configure_threads() -> None:
    """Use every core for the CPU maths (torch defaults to physical cores only)."""
    threads = int(os.environ.get("MOTIF_THREADS", "0")) or os.cpu_count() or 1
    torch.set_num_threads(threads)
