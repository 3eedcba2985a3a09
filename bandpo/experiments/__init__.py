"""CPU experiments built on bandpo's loss and solvers.

* :mod:`bandpo.experiments.entropy` – entropy collapse on a softmax bandit shaped like LLM
  decoding: PPO clip, Clip-Higher, DCPO and the Band of several divergences through one loss
  (``bandpo experiment entropy``).
"""

from __future__ import annotations

from bandpo.experiments.entropy import (
    DEFAULT_METHODS,
    EntropyConfig,
    EntropyResult,
    Method,
    MethodSummary,
    make_method,
    plot_entropy_experiment,
    run_entropy_experiment,
)

__all__ = [
    "DEFAULT_METHODS",
    "EntropyConfig",
    "EntropyResult",
    "Method",
    "MethodSummary",
    "make_method",
    "plot_entropy_experiment",
    "run_entropy_experiment",
]
