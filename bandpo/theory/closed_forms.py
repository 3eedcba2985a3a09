"""Closed-form band ends: the roots of g_f(p, r) = δ found by SymPy's ``solve``.

On each side of r = 1 the band end is the unique root of g_f(p, r) = δ (g_f is convex in r, zero
at r = 1), unless the end saturates (THEORY.md §2).  This module asks SymPy for all roots of
g_f(p, r) = δ (of g_f with |·| resolved on that side when f has a kink, and in the variable
a = r^(1/n) when r appears under an n-th root) and keeps the candidate that is real, on the right
side of 1 and a root of g_f − δ to 45 digits at every probe point of the unsaturated region.
The result is the *unclamped* root r∓(p, δ), valid where that end does not saturate.

Reference: BandPO (arXiv 2603.04918), Prop. 4 gives the TV and Pearson χ² forms; the others are
derived here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import mpmath
import sympy as sp

from bandpo.divergences import Divergence
from bandpo.theory.checks import SymbolicTimeout, time_limit
from bandpo.theory.forms import nice
from bandpo.theory.g import GFunctions, g_functions
from bandpo.theory.symbols import DELTA, P, R

__all__ = ["ClosedForm", "End", "closed_forms"]

End = Literal["lower", "upper"]

#: Seconds allowed to one ``sympy.solve`` call.
SOLVE_SECONDS = 2.5

# r^(k/n) with n above this makes g_f = δ a polynomial of degree ≥ n in r^(1/n): not attempted
_MAX_ROOT_INDEX = 4
# solutions larger than this (count_ops) are general-formula radicals, useless to a reader
_MAX_OPS = 300
_A = sp.Symbol("a", positive=True)  # a = r^(1/n) when g_f holds r under an n-th root
# probe points p of the selection (δ is then chosen inside the unsaturated region)
_PROBE_P = ("0.05", "0.3", "0.5", "0.71", "0.93")


@dataclass(frozen=True)
class ClosedForm:
    """One band end in closed form, or the honest reason there is none.

    Attributes:
        end: ``"lower"`` or ``"upper"``.
        expr: r∓(p, δ) as a SymPy expression in the symbols p and delta (unclamped: valid where
            this end does not saturate), or None.
        reason: How the root was found, or why there is no closed form.
        candidates: Number of roots ``solve`` returned for this side's equation.
    """

    end: End
    expr: sp.Expr | None
    reason: str
    candidates: int = 0


def _root_exponent_lcm(expr: sp.Expr) -> int | None:
    """n such that r appears only as r^(k/n); None for an irrational or symbolic exponent."""
    n = 1
    for pw in expr.atoms(sp.Pow):
        if pw.base != R:
            continue
        if not pw.exp.is_Rational:
            return None
        n = math.lcm(n, int(pw.exp.q))
    return n


def _solve(gside: sp.Expr) -> tuple[list[sp.Expr], int, str]:
    """Solutions a of gside(r = a^n) = δ that ``solve`` finds, n, and a note on how."""
    n = _root_exponent_lcm(gside)
    if n is None:
        return [], 1, "r appears with an irrational exponent; solve() was not attempted"
    if n > _MAX_ROOT_INDEX:
        return (
            [],
            n,
            (
                f"r appears as r^(k/{n}): g_f = delta is a polynomial equation of degree >= {n} in "
                f"r^(1/{n}) (no solution by radicals in general); solve() was not attempted"
            ),
        )
    var, eq = (R, gside) if n == 1 else (_A, gside.subs(R, _A**n))
    try:
        with time_limit(SOLVE_SECONDS):
            sols = sp.solve(sp.Eq(eq, DELTA), var, simplify=False, check=False)
    except SymbolicTimeout:
        return [], n, f"solve() found no solution within {SOLVE_SECONDS:g} s"
    except NotImplementedError as err:
        first = str(err).splitlines()[0] if str(err) else "NotImplementedError"
        return [], n, f"solve() found no elementary solution (NotImplementedError: {first})"
    elementary = [s for s in sols if not s.has(sp.RootOf, sp.CRootOf, sp.LambertW)]
    how = "solve(g_f(p, r) = delta, r)" if n == 1 else f"solve in a = r^(1/{n}), r = a^{n}"
    if not sols:
        return [], n, f"{how} returned no solution"
    if not elementary:
        return [], n, f"solve() returned only non-elementary roots ({type(sols[0]).__name__})"
    return elementary, n, how


def _probe_points(G_end: sp.Expr) -> list[tuple[mpmath.mpf, mpmath.mpf]]:
    """(p, δ) with δ inside the unsaturated region of this end at each probe p."""
    pts = []
    fn = None if G_end == sp.oo else sp.lambdify(P, G_end, modules="mpmath")
    with mpmath.workdps(60):
        for ps in _PROBE_P:
            p = mpmath.mpf(ps)
            cap = mpmath.inf if fn is None else fn(p)
            for frac in ("0.01", "0.37"):
                d = mpmath.mpf(frac) * (min(cap, mpmath.mpf(2)))
                pts.append((p, d))
    return pts


def _valid_on(expr: sp.Expr, g: sp.Expr, end: End, pts) -> bool:
    f_r = sp.lambdify((P, DELTA), expr, modules="mpmath")
    f_g = sp.lambdify((P, R), g, modules="mpmath")
    with mpmath.workdps(60):
        for p, d in pts:
            try:
                v = mpmath.mpmathify(f_r(p, d))
            except (ZeroDivisionError, ValueError, TypeError):
                return False
            if not mpmath.isfinite(v) or abs(mpmath.im(v)) > mpmath.mpf(10) ** -50:
                return False
            v = mpmath.re(v)
            side_ok = (0 <= v < 1) if end == "lower" else (1 < v <= 1 / p)
            if not side_ok:
                return False
            if abs(f_g(p, v) - d) > mpmath.mpf(10) ** -45 * max(1, d):
                return False
    return True


def _pick(
    sols: list[sp.Expr], n: int, gside: sp.Expr, end: End, G_end: sp.Expr, how: str
) -> ClosedForm:
    pts = _probe_points(G_end)
    big = [a for a in sols if sp.count_ops(a) > _MAX_OPS or a.has(sp.Piecewise)]
    if big and len(big) == len(sols):
        return ClosedForm(
            end,
            None,
            f"{how}: the {len(sols)} radical solutions have {min(map(sp.count_ops, big))}+ "
            f"operations (general cubic/quartic formulas; > {_MAX_OPS}): not published as a "
            "closed form",
            len(sols),
        )
    sols = [a for a in sols if a not in big]
    real = [a for a in sols if not a.has(sp.I)]
    good = [a for a in real if _valid_on(a**n, gside, end, pts)]
    if not good:
        if not sols:
            return ClosedForm(end, None, how, 0)
        if not real:
            return ClosedForm(
                end,
                None,
                f"{how}: all {len(sols)} solutions need complex intermediate quantities (the "
                "casus irreducibilis of the cubic); no real closed form is published",
                len(sols),
            )
        return ClosedForm(
            end,
            None,
            f"{how}: none of the {len(sols)} solutions is real, on the {end} side of 1 and a "
            f"root of g_f = δ to 45 digits at the {len(pts)} probe points",
            len(sols),
        )
    # tidy a = r^(1/n) (it reads 1 ± distance), then raise to the n-th power
    expr = nice(good[0], around_one=True)
    if n > 1:
        expr = sp.Pow(expr, n, evaluate=False)
    side = "≤ 1" if end == "lower" else "≥ 1"
    return ClosedForm(
        end,
        expr,
        f"{how}; picked the root {side} that solves g_f = δ at 45 digits at "
        f"{len(pts)} probe points of the unsaturated region",
        len(sols),
    )


def closed_forms(div: Divergence) -> tuple[ClosedForm, ClosedForm]:
    """The closed-form (lower, upper) band ends of ``div``, each possibly with expr None."""
    G: GFunctions = g_functions(div)
    if G.smooth:
        sols, n, how = _solve(G.g)
        lo = _pick(sols, n, G.g, "lower", G.G_lower, how)
        up = _pick(sols, n, G.g, "upper", G.G_upper, how)
    else:
        s_lo, n_lo, how_lo = _solve(G.g_lower)
        s_up, n_up, how_up = _solve(G.g_upper)
        lo = _pick(s_lo, n_lo, G.g_lower, "lower", G.G_lower, how_lo + " on the branch r < 1")
        up = _pick(s_up, n_up, G.g_upper, "upper", G.G_upper, how_up + " on the branch r > 1")
    return lo, up
