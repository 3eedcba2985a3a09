"""bandpo: verify and use BandPO's f-divergence trust-region ratio bands (arXiv 2603.04918).

The Band operator replaces PPO's fixed ratio clip [1 − ε, 1 + ε] by the ratios reachable inside
an f-divergence trust region D_f(π ‖ π_old) ≤ δ.  bandpo computes that interval three
independent ways (SymPy closed forms, CVXPY over the full simplex, an mpmath oracle) and ships a
fast vectorized torch solver validated against all three.

Public API (see ``shared/design/ARCHITECTURE.md``)::

    bandpo.DIVERGENCES, bandpo.get_divergence(name, **params)
    bandpo.band_bounds(old_log_prob, delta, divergence="kl", **params)   # torch
    bandpo.oracle_band(p, delta, divergence="kl", dps=50, **params)      # mpmath
    bandpo.convex_band(q, action, delta, divergence="kl", **params)      # CVXPY
    bandpo.theory.derive(name, **params)                                  # SymPy
    bandpo.testing.check_solver(fn, divergence="kl", ...)                 # test kit

Heavy layers (CVXPY, the SymPy derivations, matplotlib) load on first use, so that a training
loop importing ``bandpo.band_bounds`` pays only for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from bandpo.divergences import DIVERGENCES, Divergence, divergence_names, get_divergence
from bandpo.solvers.oracle import oracle_band

__version__ = "0.1.0"

# attribute -> module that defines it (loaded lazily on first access)
_LAZY = {
    "band_bounds": "bandpo.solvers.band",
    "Band": "bandpo.solvers.band",
    "convex_band": "bandpo.solvers.convex",
    "band_policy_loss": "bandpo.loss",
}
_SUBMODULES = {"theory", "solvers", "visualize", "testing", "loss", "golden", "tolerances"}

__all__ = [
    "DIVERGENCES",
    "Divergence",
    "__version__",
    "band_bounds",
    "band_policy_loss",
    "convex_band",
    "divergence_names",
    "get_divergence",
    "oracle_band",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"bandpo.{name}")
    raise AttributeError(f"module 'bandpo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
