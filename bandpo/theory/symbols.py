"""The SymPy symbols of the theory layer, shared by every module (one definition each).

All are declared positive, which is true on the domain and lets SymPy drop |·| and take square
roots of squares.  The constraint p < 1 is not expressible as an assumption on p itself, so the
checks substitute p = 1/(1 + k) with k > 0 where they need it (see :mod:`bandpo.theory.checks`).
"""

from __future__ import annotations

import sympy as sp

__all__ = ["DELTA", "K", "M", "P", "R", "X"]

#: Old probability of the action, 0 < p < 1 (p = 1 is handled by the perspective of f).
P = sp.Symbol("p", positive=True)
#: Probability ratio r = π(a)/p, 0 ≤ r ≤ 1/p.
R = sp.Symbol("r", positive=True)
#: Trust-region radius δ > 0.
DELTA = sp.Symbol("delta", positive=True)
#: p = 1/(1 + k) with k = (1 − p)/p > 0 encodes 0 < p < 1 for SymPy's assumptions.
K = sp.Symbol("k", positive=True)
#: Distance of r from 1 on one side of the band: r = 1 ± x, x > 0.
X = sp.Symbol("x", positive=True)
#: Absolute upward probability margin m = p·(r₊ − 1) (limit p → 0), 0 < m ≤ 1.
M = sp.Symbol("m", positive=True)
