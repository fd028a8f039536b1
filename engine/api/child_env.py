"""The environment our child processes get: what they need to run, and nothing else.

The bot's environment holds its secrets (DISCORD_TOKEN, DATABASE_URL with its password, and
whatever else an operator exports). The engine, its seed reader and its fine-tune children
need none of them, and every process that holds a secret is one more place it can leak from
(a crash dump, /proc/<pid>/environ, a log of the environment). So a child gets an allow-list:
what the interpreter, the C libraries and the engine's own settings read; anything else is
left out by default, since nobody can list every secret an operator might export.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Names passed as they are.
ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",  # finding programs; per-user caches and config
        "LANG",
        "LANGUAGE",
        "TZ",  # locale and time zone (LC_* below)
        "TMPDIR",
        "TEMP",
        "TMP",  # where temporary files go
        "LD_LIBRARY_PATH",  # where an operator installed libfluidsynth or CUDA's libraries
        "VIRTUAL_ENV",
    }
)
# Families of names passed as they are: the engine's settings, Python's own, the locale, and
# what CUDA, torch and the BLAS/OpenMP thread pools read.
ALLOWED_PREFIXES = (
    "MOTIF_",
    "PYTHON",
    "LC_",
    "XDG_",
    "MPL",
    "CUDA_",
    "NVIDIA_",
    "TORCH",
    "PYTORCH_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "KMP_",
    "CUBLAS_",
    "CUDNN_",
)
# Never passed, even under an allowed prefix (MOTIF_DATABASE_URL, a *_TOKEN an operator
# invented): a name that says it is a secret is one.
SECRET_MARKERS = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "DATABASE_URL",
    "CREDENTIAL",
    "API_KEY",
    "PRIVATE_KEY",
)


def allowed(name: str) -> bool:
    upper = name.upper()
    if any(marker in upper for marker in SECRET_MARKERS):
        return False
    return upper in ALLOWED_NAMES or upper.startswith(ALLOWED_PREFIXES)


def child_environment(
    extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allowed part of `base` (default: this process's environment), then `extra`, which
    the caller chose and is passed as given."""
    source = os.environ if base is None else base
    env = {name: value for name, value in source.items() if allowed(name)}
    env.update(extra or {})
    return env
