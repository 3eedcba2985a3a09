"""Structural identities of g_f: the mirror symmetry and convexity in r (THEORY.md §2, §4).

* Mirror: g_f(p, r) = g_f(1 − p, (1 − r·p)/(1 − p)): moving mass onto the action is moving it
  off the other tokens, so the lower band of p is tied to the upper band of 1 − p.
* Convexity: ∂²g_f/∂r² = p·f″(r) + p²/(1 − p)·f″((1 − r·p)/(1 − p)), and f″ ≥ 0 on (0, ∞), so
  g_f(p, ·) is convex (both coefficients are positive for 0 < p < 1).  For a kinked f (``tv``)
  each side of r = 1 is checked separately, plus a non-negative jump of the slope at the kink.
"""

from __future__ import annotations

import random
from functools import lru_cache

import mpmath
import sympy as sp

from bandpo.divergences import Divergence, U
from bandpo.theory.checks import (
    Check,
    SymbolicTimeout,
    check_numeric,
    check_zero,
    domain_points,
    log_uniform,
    proved,
    time_limit,
)
from bandpo.theory.g import g_functions
from bandpo.theory.symbols import P, R

__all__ = ["identities"]


def _r_points(seed: int, n: int) -> list[dict]:
    """(p, r) with r in (0, 1/p), both sides of 1."""
    rng = random.Random(seed)
    pts = []
    for pt in domain_points(seed, n, with_delta=False):
        with mpmath.workdps(80):
            p = mpmath.mpf(pt[P])
            t = mpmath.mpf(rng.uniform(0.02, 0.98))
            r = t / p if rng.random() < 0.5 else t
            r = min(r, (1 - mpmath.mpf(10) ** -30) / p)
        pts.append({P: pt[P], R: mpmath.nstr(r, 60)})
    return pts


@lru_cache(maxsize=1)
def second_derivative_lemma() -> Check:
    """d²g/dr² = p·F″(r) + p²/(1 − p)·F″(s) for an arbitrary twice-differentiable F (chain rule).

    Proved once with an undefined SymPy function F, so it holds for every registered f.
    """
    F = sp.Function("F")
    s = (1 - R * P) / (1 - P)
    g = P * F(R) + (1 - P) * F(s)
    F2 = sp.Function("F2")  # stands for F''; every second derivative of F is renamed to it

    def rename(e: sp.Expr) -> sp.Expr:
        e = e.replace(
            lambda x: isinstance(x, sp.Subs) and isinstance(x.expr, sp.Derivative),
            lambda x: F2(x.point[0]) if x.expr.derivative_count == 2 else x,
        )
        return e.replace(
            lambda x: isinstance(x, sp.Derivative) and x.derivative_count == 2,
            lambda x: F2(x.variables[0]),
        )

    d2 = rename(sp.diff(g, R, 2))
    residual = d2 - (P * F2(R) + P**2 / (1 - P) * F2(s))
    return check_zero(
        "convexity.second_derivative",
        "d2g/dr2 = p f''(r) + p^2/(1-p) f''((1 - r p)/(1 - p)) for every twice-differentiable f "
        "(chain rule, undefined function F)",
        residual,
        [],
    )


def _nonneg(expr: sp.Expr, var: sp.Symbol, seed: int, name: str, statement: str) -> Check:
    """expr(var) ≥ 0 for var > 0: SymPy's assumptions, else seeded 50-digit samples."""
    e, sign = expr, expr.is_nonnegative
    for rewrite in (lambda x: sp.factor(sp.together(x)), sp.simplify):
        if sign:
            break
        try:
            with time_limit(2.0):
                e = rewrite(expr)
                sign = e.is_nonnegative
        except SymbolicTimeout:
            continue
    if sign:
        return proved(name, statement, f"SymPy: {sp.sstr(e)} is nonnegative for {var} > 0")
    rng = random.Random(seed)
    fn = sp.lambdify(var, expr, modules="mpmath")
    vals = []
    with mpmath.workdps(60):
        for _ in range(24):
            v = fn(mpmath.mpf(log_uniform(rng, 1e-6, 1e6)))
            vals.append(max(mpmath.mpf(0), -v))  # violation size
    return check_numeric(
        name,
        statement,
        vals,
        tol=mpmath.mpf(0),
        method="SymPy could not decide the sign; checked at 24 seeded log-uniform points",
    )


def identities(div: Divergence, seed: int) -> list[Check]:
    """Mirror and convexity checks for ``div``."""
    G = g_functions(div)
    g = G.g
    checks: list[Check] = []
    pts = _r_points(seed + 3, 8)
    mirror = g - div.g(1 - P, (1 - R * P) / (1 - P))
    checks.append(
        check_zero(
            "mirror",
            "g_f(p, r) = g_f(1 - p, (1 - r p)/(1 - p))",
            mirror,
            pts,
        )
    )
    f2 = sp.diff(div.f, U, 2)
    if G.smooth:
        checks.append(second_derivative_lemma())
        checks.append(
            _nonneg(f2, U, seed + 5, "convexity.f2_nonnegative", "f''(u) >= 0 for u > 0 (f convex)")
        )
    else:
        for side, gs in (("lower", G.g_lower), ("upper", G.g_upper)):
            d2 = sp.cancel(sp.diff(gs, R, 2))
            checks.append(
                check_zero(
                    f"convexity.{side}_branch",
                    f"d2g/dr2 = 0 on the {side} branch (g_f is linear there)",
                    d2,
                    [],
                )
                if d2 == 0
                else _nonneg(
                    d2.subs(P, sp.Rational(1, 2)),
                    R,
                    seed,
                    f"convexity.{side}_branch",
                    f"d2g/dr2 >= 0 on the {side} branch",
                )
            )
        jump = sp.diff(G.g_upper, R).subs(R, 1) - sp.diff(G.g_lower, R).subs(R, 1)
        jump = sp.cancel(jump.subs(P, 1 / (1 + sp.Symbol("k", positive=True))))
        stmt = "the slope of g_f jumps up at the kink r = 1 (convex across it)"
        if jump.is_nonnegative:
            checks.append(proved("convexity.kink", stmt, f"jump = {jump} >= 0 with p = 1/(1+k)"))
        else:
            checks.append(
                check_numeric("convexity.kink", stmt, [], method="SymPy could not decide")
            )
    return checks
