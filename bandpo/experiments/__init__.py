"""CPU experiments built on bandpo's loss and solvers.

* :mod:`bandpo.experiments.entropy` – entropy collapse on a softmax bandit shaped like LLM
  decoding: PPO clip, Clip-Higher, DCPO and the Band of several divergences through one loss
  (``bandpo experiment entropy``).
"""

from __future__ import annotations

# The package re-exports exactly the public names of its experiment modules; each module's
# __all__ is the one list of them.
from bandpo.experiments import entropy
from bandpo.experiments.entropy import *  # noqa: F403

__all__ = list(entropy.__all__)
