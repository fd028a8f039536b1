"""The quality gate: a new version serves only if it is better where it should be and not
much worse elsewhere.

Better: lower NLL on the server's held-out pieces than the version serving now. Not much
worse: NLL on the base held-out sample at most BASE_TOLERANCE above the *base* model's (not
the active version's), so drift cannot add up over many runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

BASE_TOLERANCE = 0.05


@dataclass(frozen=True)
class GateFigures:
    server_nll_before: float  # bits/token of the active version on the server's held-out
    server_nll_after: float  # ... of the new version
    base_nll_reference: float  # the base model on the base held-out sample
    base_nll_after: float  # the new version on it
    base_tolerance: float = BASE_TOLERANCE

    @property
    def base_limit(self) -> float:
        return self.base_nll_reference * (1 + self.base_tolerance)

    def to_dict(self) -> dict:
        return {k: round(v, 4) for k, v in asdict(self).items()} | {
            "base_nll_limit": round(self.base_limit, 4)
        }


def judge(f: GateFigures) -> tuple[bool, str]:
    """(accepted, the reason in one sentence a server admin can read)."""
    if not f.server_nll_after < f.server_nll_before:
        return False, (
            f"it did not fit this server's held-out pieces better "
            f"({f.server_nll_before:.3f} -> {f.server_nll_after:.3f} bits/token)"
        )
    if not f.base_nll_after <= f.base_limit:
        worse = f.base_nll_after / f.base_nll_reference - 1
        return False, (
            f"it forgot too much of music in general: {worse:.1%} worse than the "
            f"base model on its held-out pieces (the limit is "
            f"{f.base_tolerance:.0%})"
        )
    return True, (
        f"better on this server's held-out pieces ({f.server_nll_before:.3f} -> "
        f"{f.server_nll_after:.3f} bits/token) and within {f.base_tolerance:.0%} "
        f"of the base model elsewhere"
    )
