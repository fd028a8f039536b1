"""`engine.client`, the name the design's contract gives the bot's side of the engine: it
lives in engine.api.client (the torch-free package); this module only hands its names on."""

from __future__ import annotations

from engine.api.client import *  # noqa: F403
from engine.api.client import __all__  # noqa: F401
