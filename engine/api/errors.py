"""Domain errors the engine reports to callers (importable without torch).

Their text is written for a Discord member: the bot shows it as it is.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of the engine's expected failures."""


class BadSeed(EngineError):
    """The seed cannot be used; the message says why, in one sentence."""


class BadRequest(EngineError):
    """An option is out of range; the message names it and the value received."""


class EngineUnavailable(EngineError):
    """The engine process died and could not be restarted."""


class JobLost(EngineUnavailable):
    """A job taken over from a client process that died: its reply cannot come any more
    (that process had read it already, or Redis lost the job)."""
