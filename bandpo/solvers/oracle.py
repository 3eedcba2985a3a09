"""The mpmath oracle: the Band interval of one probability at 50+ significant digits.

For an old probability p of the action, the two-point reduction (THEORY.md §2) gives

    g_f(p, r) = p·f(r) + (1 − p)·f((1 − r·p)/(1 − p)),     0 ≤ r ≤ 1/p,

convex in r with g_f(p, 1) = 0, and Band_f(p, δ) = [r₋, r₊] = {r : g_f(p, r) ≤ δ}.  The oracle
finds both roots of g_f(p, r) = δ in the variable t = ln r (so that the relative accuracy of r
equals the absolute accuracy of t, whatever the magnitude of r) with a bracketed Illinois
(regula falsi) iteration in mpmath, at ``dps`` + guard digits of working precision.

End cases are exact:

* saturation: r₊ = 1/p when g_f(p, 1/p) ≤ δ and r₋ = 0 when g_f(p, 0⁺) ≤ δ;
* p = 1: the old policy is one-hot and mass moved off its support is charged through the
  perspective of f, g_f(1, r) = f(r) + (1 − r)·f′(∞), with r ≤ 1/p = 1 (``kl``: [e^{−δ}, 1]);
* δ = +∞: [0, 1/p].

f comes from the registry's SymPy expression via ``lambdify(modules="mpmath")``: nothing here is
hand-written per divergence.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import mpmath
import sympy as sp

from bandpo.divergences import Divergence, resolve_divergence

__all__ = ["OracleBand", "OracleDetail", "oracle_band", "oracle_band_detail", "oracle_g"]

# Extra decimal digits of working precision.  1 − p at p = 1 − 1e-30 cancels 30 digits, and
# (1 − r·p) near r = 1/p cancels as many as the root's distance to 1/p; 60 covers both with margin.
_GUARD_DIGITS = 60


class OracleBand(NamedTuple):
    """The band [lower, upper] as mpmath numbers (``mpf``; ``upper`` may be ``+inf`` at p = 0)."""

    lower: Any
    upper: Any


@dataclass(frozen=True)
class OracleDetail:
    """The band together with how each end was found.

    Attributes:
        lower, upper: The band ends (mpf).
        lower_saturated: r₋ = 0 because g_f(p, 0⁺) ≤ δ.
        upper_saturated: r₊ = 1/p because g_f(p, 1/p) ≤ δ.
        lower_iterations, upper_iterations: Illinois iterations used (0 for closed/saturated ends).
        p: The probability used, as an mpf at working precision.
    """

    lower: Any
    upper: Any
    lower_saturated: bool
    upper_saturated: bool
    lower_iterations: int
    upper_iterations: int
    p: Any


def _to_mpf(x: Any, name: str) -> Any:
    if isinstance(x, bool):
        raise TypeError(f"{name} must be a real number, an mpmath number or a decimal string")
    if isinstance(x, str):
        try:
            return mpmath.mpf(x.strip())
        except (ValueError, TypeError) as err:
            raise ValueError(f"{name} must be a decimal string, got {x!r}") from err
    if isinstance(x, mpmath.mpf):
        return +x  # round to the current working precision
    if isinstance(x, numbers.Real):
        return mpmath.mpf(float(x)) if isinstance(x, float) else mpmath.mpf(x)
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars: exact as a float
        return _to_mpf(x.item(), name)
    raise TypeError(
        f"{name} must be a real number, an mpmath number or a decimal string, "
        f"got {type(x).__name__}"
    )


class _G:
    """g_f(p, ·) at one p, as a function of t = ln r, in mpmath at the current precision."""

    def __init__(self, div: Divergence, p: Any, q: Any):
        self.f = div.f_mpmath
        self.f0 = _f_at_zero(div)
        self.p, self.q = p, q

    def at_r(self, r: Any) -> Any:
        p, q = self.p, self.q
        s = (1 - r * p) / q
        if s < 0:  # r beyond 1/p only by rounding of the caller's r
            s = mpmath.mpf(0)
        return p * self._f(r) + q * self._f(s)

    def _f(self, u: Any) -> Any:
        if u == 0:
            return self.f0
        return self.f(u)


def _f_at_zero(div: Divergence) -> Any:
    v = div.f_at_zero
    return mpmath.inf if v in (sp.oo, sp.zoo) else mpmath.mpf(sp.N(v, mpmath.mp.dps))


def _slope_at_infinity(div: Divergence) -> Any:
    v = div.slope_at_infinity
    return mpmath.inf if v == sp.oo else mpmath.mpf(sp.N(v, mpmath.mp.dps))


def _illinois(h, a: Any, b: Any, ha: Any, hb: Any, tol: Any, maxiter: int = 2000) -> tuple:
    """Root of h in [a, b] with h(a)·h(b) < 0 by the Illinois method; returns (root, iterations).

    Terminates when the bracket is narrower than ``tol`` (absolute, in t = ln r) or h hits 0.
    Falls back to a bisection step whenever the secant point is not strictly inside the bracket.
    """
    side = 0
    for it in range(1, maxiter + 1):
        if abs(b - a) <= tol:
            return (a + b) / 2, it
        c = b - hb * (b - a) / (hb - ha)
        if not (min(a, b) < c < max(a, b)):
            c = (a + b) / 2
        hc = h(c)
        if hc == 0:
            return c, it
        if (hc > 0) == (hb > 0):
            b, hb = c, hc
            if side == -1:
                ha /= 2
            side = -1
        else:
            a, ha = c, hc
            if side == +1:
                hb /= 2
            side = +1
    raise RuntimeError("oracle root finder did not converge")  # pragma: no cover


def _solve_end(h, t_inner: Any, t_outer: Any, tol: Any) -> tuple:
    """Root of h(t) = g − δ between t_inner (h < 0) and t_outer (h > 0) with a robust bracket.

    Bisects first until the bracket is narrower than 1 or than a quarter of its largest |t|
    (a root at t ≈ −5e298 needs no 990 halvings), then Illinois.
    """
    a, b = t_inner, t_outer
    ha, hb = h(a), h(b)
    # a few bisection steps tame the very flat/steep ends (t → −∞ for the lower root)
    n_bisect = 0
    while abs(b - a) > max(1, abs(a) / 4, abs(b) / 4) and n_bisect < 4000:
        m = (a + b) / 2
        hm = h(m)
        if hm == 0:
            return m, n_bisect
        if hm < 0:
            a, ha = m, hm
        else:
            b, hb = m, hm
        n_bisect += 1
    root, it = _illinois(h, a, b, ha, hb, tol)
    return root, it + n_bisect


def oracle_g(p: Any, r: Any, divergence: str | Divergence = "kl", *, dps: int = 50, **params):
    """g_f(p, r) in mpmath at ``dps`` digits (p = 1 uses the perspective form).

    Args:
        p: Old probability in (0, 1] (float, mpf or decimal string).
        r: Ratio in [0, 1/p].
        divergence: Registry name or :class:`~bandpo.divergences.Divergence`.
        dps: Decimal digits of the result.

    Returns:
        mpf: the divergence of the two-point distribution, +inf outside the domain of f.
    """
    div = resolve_divergence(divergence, **params)
    with mpmath.workdps(dps + _GUARD_DIGITS):
        pm = _to_mpf(p, "p")
        rm = _to_mpf(r, "r")
        if not (0 < pm <= 1):
            raise ValueError(f"p must be in (0, 1], got {p!r}")
        # r·p may exceed 1 by the rounding of a caller's 1/p at `dps` digits
        if rm < 0 or rm * pm > 1 + mpmath.mpf(10) ** (-dps):
            raise ValueError(f"r must be in [0, 1/p], got {r!r}")
        if pm == 1:
            f0 = _f_at_zero(div)
            fr = f0 if rm == 0 else div.f_mpmath(rm)
            if rm == 1:
                return mpmath.mpf(0)
            val = fr + (1 - rm) * _slope_at_infinity(div)
        else:
            val = _G(div, pm, 1 - pm).at_r(rm)
    return +val


def oracle_band_detail(
    p: Any, delta: Any, divergence: str | Divergence = "kl", *, dps: int = 50, **params: Any
) -> OracleDetail:
    """Like :func:`oracle_band`, but also says which ends saturated and how many iterations ran."""
    div = resolve_divergence(divergence, **params)
    if not isinstance(dps, int) or isinstance(dps, bool) or dps < 15:
        raise ValueError(f"dps must be an integer >= 15, got {dps!r}")
    with mpmath.workdps(dps + _GUARD_DIGITS):
        pm = _to_mpf(p, "p")
        dm = _to_mpf(delta, "delta")
        if mpmath.isnan(pm) or not (0 < pm <= 1):
            raise ValueError(f"p must be in (0, 1], got {p!r}")
        if mpmath.isnan(dm) or not dm > 0:
            raise ValueError(f"delta must be > 0 (+inf allowed), got {delta!r}")
        # A root r = e^t with |t| up to ~δ/p (kl's lower end: ln r₋ ≈ −δ/p) needs |t| resolved
        # to 10^−(dps+10) absolute, i.e. log10(δ/p) more digits than r itself.
        ratio = dm / pm
        extra = int(mpmath.log10(ratio)) + 2 if mpmath.isfinite(ratio) and ratio > 10 else 0
    with mpmath.workdps(dps + _GUARD_DIGITS + extra):
        pm = _to_mpf(p, "p")
        dm = _to_mpf(delta, "delta")
        one = mpmath.mpf(1)
        inv_p = one / pm
        f0 = _f_at_zero(div)
        tol = mpmath.mpf(10) ** (-(dps + 10))

        if mpmath.isinf(dm):
            return OracleDetail(mpmath.mpf(0), +inv_p, True, True, 0, 0, pm)

        if pm == 1:
            # Perspective: g(1, r) = f(r) + (1 − r)·f′(∞) on [0, 1]; the upper end is 1 = 1/p.
            slope = _slope_at_infinity(div)
            if mpmath.isinf(slope):
                return OracleDetail(one, one, False, True, 0, 0, pm)

            def g1(t):
                r = mpmath.exp(t)
                return div.f_mpmath(r) + (1 - r) * slope - dm

            if f0 + slope <= dm:
                return OracleDetail(mpmath.mpf(0), one, True, True, 0, 0, pm)
            t_in, t_lo, n = _bracket_lower(g1)
            root, it = _solve_end(g1, t_in, t_lo, tol)
            return OracleDetail(mpmath.exp(root), one, False, True, it + n, 0, pm)

        q = 1 - pm
        g = _G(div, pm, q)

        def h(t):
            return g.at_r(mpmath.exp(t)) - dm

        # upper end: t in [0, ln(1/p)]
        g_top = g.at_r(inv_p)
        if g_top <= dm:
            upper, up_sat, up_it = +inv_p, True, 0
        else:
            t_top = mpmath.log(inv_p)
            root, up_it = _solve_end(h, mpmath.mpf(0), t_top, tol)
            upper, up_sat = mpmath.exp(root), False
            upper = min(upper, inv_p)
        # lower end: t in (−∞, 0]
        g_bottom = f0 if mpmath.isinf(f0) else pm * f0 + q * div.f_mpmath(one / q)
        if g_bottom <= dm:
            lower, lo_sat, lo_it = mpmath.mpf(0), True, 0
        else:
            t_in, t_lo, n = _bracket_lower(h)
            root, lo_it = _solve_end(h, t_in, t_lo, tol)
            lower, lo_sat = mpmath.exp(root), False
            lo_it += n
        return OracleDetail(+lower, +upper, lo_sat, up_sat, lo_it, up_it, pm)


def _bracket_lower(h) -> tuple:
    """Bracket the lower root in t: returns (t_inner, t_outer, doublings) with h(t_inner) ≤ 0 <
    h(t_outer), found by doubling |t| from −1 (h(0) < 0, and h(t) → g(0⁺) − δ > 0)."""
    t_inner, t = mpmath.mpf(0), mpmath.mpf(-1)
    n = 0
    while h(t) <= 0:
        t_inner, t = t, t * 2
        n += 1
        if n > 5000:  # pragma: no cover - |t| = 2^5000: g(0⁺) − δ > 0 was promised
            raise RuntimeError("oracle could not bracket the lower root")
    return t_inner, t, n


def oracle_band(
    p: Any, delta: Any, divergence: str | Divergence = "kl", *, dps: int = 50, **params: Any
) -> OracleBand:
    """The Band interval [r₋, r₊] of one probability, to ``dps`` significant digits.

    Band_f(p, δ) = {r ∈ [0, 1/p] : g_f(p, r) ≤ δ},
    g_f(p, r) = p·f(r) + (1 − p)·f((1 − r·p)/(1 − p))     (BandPO, arXiv 2603.04918, §3).

    Args:
        p: Old probability of the action, 0 < p ≤ 1.  Give a decimal string or an mpf to reach
            extremes a float cannot hold (``"1e-300"``, ``"0.999999999999999999999999999999"``);
            a float is taken at its exact binary value.
        delta: Trust-region radius δ > 0; ``float("inf")`` gives [0, 1/p].
        divergence: Registry name (``"kl"``, ``"tv"``, ..., ``"alpha"``) or a Divergence.
        dps: Significant decimal digits wanted (≥ 15).  Work runs at dps + 60 digits.
        **params: Divergence parameters, e.g. ``alpha=0.5``.

    Returns:
        OracleBand(lower, upper) of mpmath ``mpf`` at ``dps`` digits.  Saturated ends are exact:
        0 and 1/p.  At p = 1 the band is the perspective band (``kl``: [e^{−δ}, 1]).

    Raises:
        ValueError: p ∉ (0, 1], δ ≤ 0 or NaN, or an unknown divergence.
        TypeError: p or δ of a type that is not a real number.

    Notes:
        Roots are found in t = ln r by bisection down to a unit bracket, then Illinois regula
        falsi until the bracket in t is narrower than 10^−(dps+10).  Relative accuracy in r is
        therefore ≈ 10^−(dps+10), limited in practice by the evaluation of g_f at dps + 60 digits.
    """
    d = oracle_band_detail(p, delta, divergence, dps=dps, **params)
    with mpmath.workdps(dps):
        return OracleBand(+d.lower, +d.upper)
