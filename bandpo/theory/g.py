"""g_f and the expressions built from it: one side of the band, the simplex ends, p = 1.

The two-point reduction (THEORY.md §2; BandPO, arXiv 2603.04918, §3):

    g_f(p, r) = p·f(r) + (1 − p)·f((1 − r·p)/(1 − p)),       0 ≤ r ≤ 1/p,

and the quantities the other modules need:

* the *branch* form of g_f on one side of r = 1 with |·| resolved (``tv`` has a kink at r = 1);
* the values at the simplex ends, G₊(p) = g_f(p, 1/p) = p·f(1/p) + (1 − p)·f(0⁺) and
  G₋(p) = g_f(p, 0) = p·f(0⁺) + (1 − p)·f(1/(1 − p)), which decide saturation;
* the perspective at p = 1, g_f(1, r) = f(r) + (1 − r)·f′(∞).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from bandpo.divergences import Divergence, U
from bandpo.theory.checks import SymbolicTimeout, time_limit
from bandpo.theory.symbols import K, P, R, X

__all__ = ["GFunctions", "g_functions"]

_NONSMOOTH = (sp.Abs, sp.sign, sp.Piecewise, sp.Heaviside, sp.Max, sp.Min)


def _resolve_on_domain(expr: sp.Expr, r_sub: sp.Expr | None, r_back: sp.Expr | None) -> sp.Expr:
    """Rewrite ``expr`` with p = 1/(1 + k) (and r = r_sub) so that |·| resolves, then map back."""
    e = expr.subs(P, 1 / (1 + K))
    if r_sub is not None:
        e = e.subs(R, r_sub)
    e = sp.cancel(sp.powsimp(e))
    if e.has(*_NONSMOOTH):
        e = sp.simplify(e)
    if e.has(*_NONSMOOTH):
        raise NotImplementedError(f"could not resolve |.| in {expr}")
    e = e.subs(K, (1 - P) / P)
    if r_back is not None:
        e = e.subs(X, r_back)
    return sp.factor(sp.cancel(e))


@dataclass(frozen=True, eq=False)
class GFunctions:
    """g_f of one divergence and the expressions derived from it (SymPy).

    Attributes:
        g: g_f(p, r) in the symbols p, r.
        smooth: False when f has a kink (|·|): then ``g_upper``/``g_lower`` resolve it.
        g_upper: g_f on r > 1 with |·| resolved (equals ``g`` when smooth).
        g_lower: g_f on r < 1 with |·| resolved.
        f0: f(0⁺) (``sympy.oo`` allowed).
        slope_inf: f′(∞) = lim f(u)/u (``sympy.oo`` allowed).
        G_upper: g_f(p, 1/p) = p·f(1/p) + (1 − p)·f(0⁺) (``oo`` when f(0⁺) = ∞).
        G_lower: g_f(p, 0) = p·f(0⁺) + (1 − p)·f(1/(1 − p)) (``oo`` when f(0⁺) = ∞).
        perspective: g_f(1, r) = f(r) + (1 − r)·f′(∞) (None when f′(∞) = ∞: only r = 1 is
            reachable at p = 1).
    """

    g: sp.Expr
    smooth: bool
    g_upper: sp.Expr
    g_lower: sp.Expr
    f0: sp.Expr
    slope_inf: sp.Expr
    G_upper: sp.Expr
    G_lower: sp.Expr
    perspective: sp.Expr | None


def _tidy(e: sp.Expr) -> sp.Expr:
    """A shorter equivalent form (falls back to ``e``: factor() can stall on r^(7071/10000))."""
    try:
        with time_limit(2.0):
            return sp.factor(sp.cancel(sp.expand_log(sp.powsimp(e), force=False)))
    except SymbolicTimeout:
        return e


@cache
def _build(div: Divergence) -> GFunctions:
    g = div.g(P, R)
    smooth = not div.f.has(*_NONSMOOTH)
    if smooth:
        g_up = g_lo = g
    else:
        g_up = _resolve_on_domain(g, 1 + X, R - 1)
        g_lo = _resolve_on_domain(g, 1 - X, 1 - R)
    f0 = div.f_at_zero
    slope = div.slope_at_infinity
    f = div.f
    if f0 in (sp.oo, sp.zoo):
        G_up = G_lo = sp.oo
    else:
        G_up = P * f.subs(U, 1 / P) + (1 - P) * f0
        G_lo = P * f0 + (1 - P) * f.subs(U, 1 / (1 - P))
        if smooth:
            G_up, G_lo = _tidy(G_up), _tidy(G_lo)
        else:
            G_up = _resolve_on_domain(G_up, None, None)
            G_lo = _resolve_on_domain(G_lo, None, None)
    persp = None if slope == sp.oo else f.subs(U, R) + (1 - R) * slope
    if persp is not None and not smooth:
        # r < 1 at p = 1: resolve the kink on that side
        persp = sp.factor(sp.simplify(persp.subs(R, 1 - X)).subs(X, 1 - R))
    return GFunctions(g, smooth, g_up, g_lo, f0, slope, G_up, G_lo, persp)


def g_functions(div: Divergence) -> GFunctions:
    """g_f and its derived expressions for ``div`` (cached per divergence object)."""
    return _build(div)
