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
    from engine.model.checkpoint import BASE_CHECKPOINT, load_checkpoint

    return load_checkpoint(BASE_CHECKPOINT)


@pytest.fixture(scope="session")
def grammar(base_checkpoint):
    from engine.generation.grammar import Grammar

    return Grammar.build(base_checkpoint.tokenizer)


@pytest.fixture(scope="session")
def composer():
    """The real composer: shipped checkpoint, real FluidSynth, real soundfont."""
    from engine.core.composer import Composer

    return Composer()


@pytest.fixture(scope="session")
def engine_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An engine data dir with the folk corpus built (seconds): fine-tuning replays it and
    gates on its held-out split. The full corpus (with scores) takes minutes; not needed here."""
    from engine.data.corpus import build_corpus

    data_dir = tmp_path_factory.mktemp("engine-data")
    build_corpus(data_dir, scores=False)
    return data_dir


@pytest.fixture(scope="session")
def chorale_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight Bach chorales from music21's corpus as MIDI: one server's taste."""
    from engine.data.chorales import convert_chorales

    return convert_chorales(8, tmp_path_factory.mktemp("chorales"))
