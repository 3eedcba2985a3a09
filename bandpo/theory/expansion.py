"""The small-δ expansion of the band ends (THEORY.md §4).

Taylor-expanding g_f in r around r = 1 (smooth f):

    g_f(p, 1 + x) = 0 + 0·x + ½ f″(1) · p/(1 − p) · x² + O(x³),

hence  r± ≈ 1 ± sqrt(2 δ (1 − p) / (f″(1) p))  as δ → 0.  The coefficients are computed from the
derivatives of g_f at r = 1 and checked against the claim; where a closed form exists,
lim_{δ→0} (r± − 1)/√δ is compared with the expansion; elsewhere the oracle at δ = 10⁻³⁰ is.

When f has a kink at u = 1 (``tv``), f″(1) does not exist.  Then g_f has one-sided slopes
c± = ∂g/∂r(1±) and the expansion is first order: r± ≈ 1 ± δ/|c±|.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from bandpo.divergences import Divergence
from bandpo.solvers.oracle import oracle_band
from bandpo.theory.calculus import limit_at
from bandpo.theory.checks import (
    Check,
    check_numeric,
    check_zero,
    domain_points,
)
from bandpo.theory.closed_forms import ClosedForm
from bandpo.theory.forms import nice
from bandpo.theory.g import g_functions
from bandpo.theory.symbols import DELTA, P, R

__all__ = ["Expansion", "expansion"]

_TINY_DELTA = "1e-30"


@dataclass(frozen=True)
class Expansion:
    """Small-δ behaviour of the band.

    Attributes:
        order: 2 (square-root law, smooth f) or 1 (kinked f: linear law).
        f2_at_one: f″(1) (``nan`` for a kink).
        coefficients: Taylor coefficients of g_f(p, 1 + x) in x (order 2) or the one-sided
            slopes (c₋, c₊) (order 1), as SymPy expressions in p.
        lower, upper: The approximations r∓ ≈ ... in the symbols p and delta.
    """

    order: int
    f2_at_one: sp.Expr
    coefficients: tuple[sp.Expr, ...]
    lower: sp.Expr
    upper: sp.Expr

    def __str__(self) -> str:
        lo = sp.sstr(self.lower, order="none")
        up = sp.sstr(self.upper, order="none")
        return f"small-delta (order {self.order}): r- ~ {lo}, r+ ~ {up}"


def _limit(e, var, point, d):
    return limit_at(e, var, point)


def expansion(
    div: Divergence, lower: ClosedForm, upper: ClosedForm, seed: int
) -> tuple[Expansion, list[Check]]:
    """The small-δ expansion of ``div`` and its checks."""
    G = g_functions(div)
    f2 = div.f2_at_one
    checks: list[Check] = []
    pts = domain_points(seed + 11, 6, with_delta=False)
    if f2 is sp.nan or not G.smooth:
        # kink at r = 1: one-sided slopes of g_f (each branch is smooth)
        c_lo = nice(sp.diff(G.g_lower, R).subs(R, 1))
        c_up = nice(sp.diff(G.g_upper, R).subs(R, 1))
        approx_lo = 1 + DELTA / c_lo  # c_lo < 0
        approx_up = 1 + DELTA / c_up
        exp = Expansion(1, sp.nan, (c_lo, c_up), nice(approx_lo), nice(approx_up))
        checks.append(
            check_zero(
                "expansion.kink",
                "f has a kink at 1 (f''(1) undefined); g_f has one-sided slopes c-, c+ at r = 1 "
                f"with c- = {c_lo}, c+ = {c_up}: r -> 1 +- delta/|c|, first order",
                sp.Abs(c_lo) - sp.Abs(c_up),
                pts,
            )
        )
        ends = ((lower, approx_lo), (upper, approx_up))
    else:
        x = sp.Symbol("x")
        gx = G.g
        c0 = gx.subs(R, 1)
        c1 = sp.diff(gx, R).subs(R, 1)
        c2 = sp.diff(gx, R, 2).subs(R, 1) / 2
        want = f2 * P / (2 * (1 - P))
        for i, (c, target) in enumerate(((c0, 0), (c1, 0), (c2, want))):
            checks.append(
                check_zero(
                    f"expansion.taylor_{i}",
                    f"coefficient of (r-1)^{i} in g_f(p, r) at r = 1 is {sp.sstr(target)}",
                    c - target,
                    pts,
                )
            )
        dist = sp.sqrt(2 * DELTA * (1 - P) / (f2 * P))
        approx_lo, approx_up = 1 - dist, 1 + dist
        exp = Expansion(
            2,
            f2,
            (sp.S.Zero, sp.S.Zero, nice(want)),
            nice(approx_lo, around_one=True),
            nice(approx_up, around_one=True),
        )
        _ = x
        ends = ((lower, approx_lo), (upper, approx_up))
    # compare with the closed forms (symbolic limit) or the oracle (numerical)
    for cf, approx in ends:
        name = f"expansion.{cf.end}"
        scale = sp.sqrt(DELTA) if exp.order == 2 else DELTA
        if cf.expr is not None:
            L = _limit((cf.expr - 1) / scale, DELTA, 0, "+")
            target = sp.cancel((approx - 1) / scale)
            if L is not None:
                checks.append(
                    check_zero(
                        name,
                        f"lim_(delta->0) (r-1)/{scale} of the closed form equals the expansion's",
                        L - target,
                        pts,
                    )
                )
                continue
        d = mpmath.mpf(_TINY_DELTA)
        afn = sp.lambdify((P, DELTA), approx, modules="mpmath")
        errs = []
        with mpmath.workdps(80):
            for pt in pts:
                p = mpmath.mpf(pt[P])
                band = oracle_band(p, d, div, dps=50)
                ref = band.lower if cf.end == "lower" else band.upper
                a = afn(p, d)
                errs.append(abs((ref - 1) / (a - 1) - 1))
        # relative error of (r - 1) is O(sqrt(delta)) (order 2) or O(delta) (order 1)
        checks.append(
            check_numeric(
                name,
                f"oracle at delta = {_TINY_DELTA}: (r-1) matches the expansion to O({scale})",
                errs,
                tol=mpmath.mpf("1e-12"),
                method=f"oracle_band at {len(pts)} seeded p, relative error of r - 1",
            )
        )
    return exp, checks
