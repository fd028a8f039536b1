"""Fixtures shared by every test package: the shipped checkpoint and the bundled seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "engine" / "examples"


@pytest.fixture(scope="session")
def examples() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def base_checkpoint():
    """The shipped base model, loaded once (real weights, real tokenizer)."""
    from engine.checkpoint import BASE_CHECKPOINT, load_checkpoint

    return load_checkpoint(BASE_CHECKPOINT)


@pytest.fixture(scope="session")
def grammar(base_checkpoint):
    from engine.grammar import Grammar

    return Grammar.build(base_checkpoint.tokenizer)


@pytest.fixture(scope="session")
def composer():
    """The real composer: shipped checkpoint, real FluidSynth, real soundfont."""
    from engine.composer import Composer

    return Composer()
