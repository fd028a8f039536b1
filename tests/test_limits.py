"""One source for every range and default: the slash commands, the CLI and the wire request
(the engine's options too: engine.api.schema.ComposeRequest) all read engine.api.limits, and
agree."""

from __future__ import annotations

import argparse

import msgspec
import pytest

from bot.cogs.compose import ComposeCog
from bot.cogs.jams import JamCog
from bot.cogs.pieces import PiecesCog
from bot.db.queries import SEED_MAX_BYTES
from bot.services.composing import ComposeJob
from engine.api.errors import BadRequest, BadSeed
from engine.api.limits import (
    BARS,
    CANDIDATES,
    DEFAULT_BARS,
    DEFAULT_CANDIDATES,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    MAX_SEED_BYTES,
    TEMPERATURE,
    TEMPO_BPM,
    TOP_P,
    Range,
)
from engine.api.schema import ComposeCommand, ComposeRequest, decode_to_engine, encode
from engine.api.seed_midi import read_seed
from engine.cli import compose as compose_cli

RANGED = {"bars": BARS, "candidates": CANDIDATES, "temperature": TEMPERATURE, "tempo": TEMPO_BPM}


def test_the_slash_commands_ranges_and_defaults_are_the_engines():
    options = {p.name: p for p in ComposeCog.compose.parameters}
    for name, allowed in RANGED.items():
        assert (options[name].min_value, options[name].max_value) == (allowed.low, allowed.high)
    defaults = {name: options[name].default for name in ("bars", "candidates", "temperature")}
    assert defaults == {
        "bars": DEFAULT_BARS,
        "candidates": DEFAULT_CANDIDATES,
        "temperature": DEFAULT_TEMPERATURE,
    }
    export = {p.name: p for p in PiecesCog.export.parameters}
    assert (export["candidate"].min_value, export["candidate"].max_value) == (
        CANDIDATES.low,
        CANDIDATES.high,
    )
    jam = {p.name: p for p in JamCog.start.parameters}
    for name in ("bars", "candidates", "temperature"):
        assert (jam[name].min_value, jam[name].max_value, jam[name].default) == (
            options[name].min_value,
            options[name].max_value,
            options[name].default,
        )


def test_every_way_in_has_the_same_defaults():
    parser = argparse.ArgumentParser()
    compose_cli.add_parser(parser.add_subparsers())
    cli = parser.parse_args(["compose"])
    expected = {
        "bars": DEFAULT_BARS,
        "candidates": DEFAULT_CANDIDATES,
        "temperature": DEFAULT_TEMPERATURE,
        "top_p": DEFAULT_TOP_P,
    }
    request = ComposeRequest()
    job = ComposeJob.of(None, "none")
    for name, value in expected.items():
        assert getattr(cli, name) == getattr(request, name) == getattr(job.options, name) == value


def _outside(allowed: Range) -> list[float]:
    step = 1 if isinstance(allowed.low, int) else 0.01
    return [allowed.low - step, allowed.high + step]


@pytest.mark.parametrize("name", [*RANGED, "top_p"])
def test_the_engine_takes_each_bound_and_refuses_beyond_with_the_value(name: str):
    allowed = TOP_P if name == "top_p" else RANGED[name]
    inside = [allowed.high] if allowed.low_open else [allowed.low, allowed.high]
    outside = [allowed.low, allowed.high + 0.01] if allowed.low_open else _outside(allowed)
    for value in inside:
        ComposeRequest(**{name: value})
        # What the engine decodes is checked by the same code as what the bot builds.
        assert decode_to_engine(
            encode(ComposeCommand(1, ComposeRequest(**{name: value})))
        ).request == ComposeRequest(**{name: value})
    for value in outside:
        with pytest.raises(BadRequest, match=rf"^{name} must be .* \(received {value:g}\)$"):
            ComposeRequest(**{name: value})
        wire = msgspec.msgpack.encode({"type": "compose", "id": 1, "request": {name: value}})
        with pytest.raises(BadRequest, match=rf"^{name} must be .* \(received {value:g}\)$"):
            decode_to_engine(wire)


def test_a_seed_has_one_size_limit():
    assert SEED_MAX_BYTES == MAX_SEED_BYTES
    with pytest.raises(BadSeed, match="1 MB"):
        read_seed(b"MThd" + bytes(MAX_SEED_BYTES))


@pytest.mark.parametrize(
    ("allowed", "value", "message"),
    [
        (Range(1, 64), 80, "bars must be within 1 and 64 (received 80)"),
        (Range(0.5, 1.5), 0.25, "bars must be within 0.5 and 1.5 (received 0.25)"),
        (
            Range(20.0, 400.0, " bpm"),
            float("inf"),
            "bars must be within 20 and 400 bpm (received inf)",
        ),
        (Range(0.0, 1.0, low_open=True), 0.0, "bars must be above 0 and at most 1 (received 0)"),
        (Range(1, 64), True, "bars must be within 1 and 64 (received True)"),
    ],
)
def test_a_range_names_what_is_allowed_and_what_was_received(allowed, value, message):
    assert value not in allowed
    with pytest.raises(ValueError) as error:
        allowed.check("bars", value)
    assert str(error.value) == message
