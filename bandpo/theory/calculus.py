"""Time-limited one-sided limits, robust at p → 1.

SymPy 1.14 gets some limits at p → 1⁻ wrong for a positive symbol p, e.g.
``limit(1/sqrt(1 - p), p, 1, '-')`` returns ``-oo``.  Every limit towards 1 is therefore taken as
q → 0⁺ after p = 1 − q with q > 0, where SymPy's series expansion sees a positive variable.
"""

from __future__ import annotations

import sympy as sp

from bandpo.theory.checks import SymbolicTimeout, time_limit

__all__ = ["limit_at"]

_Q = sp.Symbol("q", positive=True)


def limit_at(expr: sp.Expr, var: sp.Symbol, point, *, seconds: float = 5.0) -> sp.Expr | None:
    """lim expr as var → point from inside (0, 1) (or from above 0 for point 0; δ → 0⁺).

    Returns:
        The limit, or None when SymPy fails, times out, or returns an unevaluated/undefined
        result (``Limit``, ``nan``, ``AccumBounds``).
    """
    try:
        with time_limit(seconds):
            if point == 1:
                out = sp.limit(expr.subs(var, 1 - _Q), _Q, 0, "+")
            else:
                out = sp.limit(expr, var, point, "+")
    except (SymbolicTimeout, NotImplementedError, ValueError, TypeError, RecursionError):
        return None
    if out.has(sp.Limit, sp.nan, sp.AccumBounds, sp.zoo):
        return None
    return out
