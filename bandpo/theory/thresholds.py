"""Saturation thresholds: for which (p, δ) a band end sits on the simplex boundary.

The upper end saturates (r₊ = 1/p) iff G₊(p) = g_f(p, 1/p) = p·f(1/p) + (1 − p)·f(0⁺) ≤ δ, and
the lower end (r₋ = 0) iff G₋(p) = g_f(p, 0) = p·f(0⁺) + (1 − p)·f(1/(1 − p)) ≤ δ
(THEORY.md §2, §4).  When f(0⁺) = ∞ both are ∞ and the ends never saturate.

For each end this module derives G(p) in closed form, proves (or checks) that it is monotone in p
(G₊ falls from G₊(0⁺) to 0, G₋ rises from 0 to G₋(1⁻)), solves G(p) = δ for the boundary p*(δ),
and states the condition

    upper saturates  ⟺  δ ≥ G₊(0⁺)  or  p ≥ p*(δ),
    lower saturates  ⟺  δ ≥ G₋(1⁻)  or  p ≤ p*(δ).
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from bandpo.divergences import Divergence
from bandpo.theory.calculus import limit_at
from bandpo.theory.checks import (
    Check,
    SymbolicTimeout,
    check_numeric,
    check_zero,
    domain_points,
    failed,
    not_applicable,
    proved,
    time_limit,
)
from bandpo.theory.closed_forms import End
from bandpo.theory.forms import nice, transcendental_generators
from bandpo.theory.g import g_functions
from bandpo.theory.symbols import DELTA, K, P

__all__ = ["Threshold", "thresholds"]

#: Seconds allowed to solve(G(p) = δ, p).
SOLVE_SECONDS = 2.0

_E = sp.Symbol("e", positive=True)  # δ = sup·1/(1 + e) encodes 0 < δ < sup


@dataclass(frozen=True)
class Threshold:
    """When one band end saturates.

    Attributes:
        end: ``"lower"`` (r₋ = 0) or ``"upper"`` (r₊ = 1/p).
        G: g_f at that simplex end as a function of p (``sympy.oo``: never saturates).
        never: True when the end never saturates (f(0⁺) = ∞).
        condition: The saturation condition as a SymPy boolean in p and delta
            (``sympy.false`` when it never saturates).
        p_star: Boundary p*(δ) solving G(p*) = δ, or None when ``solve`` found no closed form
            (the condition then reads G(p) ≤ δ).
        delta_all: For δ ≥ this value the end saturates at every p (``oo``: no such δ).
        monotone: "decreasing" / "increasing" direction of G in p that the condition relies on.
        reason: How it was derived.
    """

    end: End
    G: sp.Expr
    never: bool
    condition: sp.Basic
    p_star: sp.Expr | None
    delta_all: sp.Expr
    monotone: str
    reason: str

    def statement(self) -> str:
        """The condition as text, e.g. ``"upper saturates iff p >= 1/(delta + 1)"``."""
        what = "r- = 0" if self.end == "lower" else "r+ = 1/p"
        if self.never:
            return f"{self.end} end never saturates ({what} unreachable): f(0+) = oo"
        return f"{self.end} end saturates ({what}) iff {sp.sstr(self.condition, order='none')}"

    def saturates(self, p, delta) -> bool:
        """Evaluate the condition at numbers (mpmath precision) p in (0, 1), δ > 0."""
        if self.never:
            return False
        fn = sp.lambdify((P, DELTA), self.G - DELTA, modules="mpmath")
        with mpmath.workdps(80):
            return bool(fn(mpmath.mpf(p), mpmath.mpf(delta)) <= 0)


def _limit(e: sp.Expr, point: int) -> sp.Expr:
    out = limit_at(e, P, point)
    return sp.nan if out is None else out


def _range_check(end: End, G: sp.Expr, point: int, value: sp.Expr) -> Check:
    """The limit of G at ``point`` from SymPy, cross-checked against G evaluated near it."""
    stmt = f"G_{end}(p) -> {sp.sstr(value)} as p -> {point}"
    name = f"{end}.threshold.range_p->{point}"
    if value is sp.nan:
        return not_applicable(name, stmt, "sp.limit failed")
    fn = sp.lambdify(P, G, modules="mpmath")
    with mpmath.workdps(80):
        near = [
            mpmath.mpf(point) + (-1 if point == 1 else 1) * mpmath.mpf(e)
            for e in ("1e-20", "1e-40")
        ]
        v1, v2 = (fn(x) for x in near)
        if value == sp.oo:
            ok = v2 > v1 > 0
        elif value == -sp.oo:
            ok = v2 < v1 < 0
        else:
            ok = abs(v2 - mpmath.mpf(sp.N(value, 60))) <= mpmath.mpf("1e-8") * max(1, abs(v2))
    if ok:
        return proved(
            name, stmt, f"sp.limit (p = 1 - q, q -> 0+ at p -> 1); G(p) near {point} agrees"
        )
    return failed(
        name, stmt, f"sp.limit gave {value} but G at {point} -+ 1e-40 is {mpmath.nstr(v2, 8)}"
    )


def _monotone(G: sp.Expr, want: str) -> tuple[bool | None, str]:
    """Decide the sign of dG/dp on (0, 1) with SymPy's assumptions (p = 1/(1 + k))."""
    dG = sp.diff(G, P)
    try:
        with time_limit(4.0):
            dk = sp.simplify(dG.subs(P, 1 / (1 + K)))
    except SymbolicTimeout:
        return None, "dG/dp not simplified in time"
    sign = dk.is_negative if want == "decreasing" else dk.is_positive
    return sign, f"dG/dp = {sp.sstr(nice(dG))}"


def _one(div: Divergence, end: End, seed: int) -> tuple[Threshold, list[Check]]:
    G_fns = g_functions(div)
    G = G_fns.G_upper if end == "upper" else G_fns.G_lower
    name = f"{end}.threshold"
    if G == sp.oo:
        th = Threshold(
            end, sp.oo, True, sp.false, None, sp.oo, "", "f(0+) = oo, so g_f at the end is oo"
        )
        chk = proved(
            name,
            f"the {end} end never saturates: g_f(p, {'1/p' if end == 'upper' else '0'}) = oo",
            f"f(0+) = limit(f(u), u, 0, '+') = {G_fns.f0}",
        )
        return th, [chk]
    G = nice(G)
    want = "decreasing" if end == "upper" else "increasing"
    checks: list[Check] = []
    mono, how = _monotone(G, want)
    stmt = f"G_{end}(p) = {sp.sstr(G)} is {want} in p on (0, 1)"
    if mono:
        checks.append(proved(f"{end}.threshold.monotone", stmt, how + " has a fixed sign (k > 0)"))
    else:
        # numerical: the sign of dG/dp at seeded points (never marked proved)
        dfn = sp.lambdify(P, sp.diff(G, P), modules="mpmath")
        pts = domain_points(seed, 16, with_delta=False)
        with mpmath.workdps(60):
            bad = [
                mpmath.mpf(0) if (dfn(mpmath.mpf(pt[P])) < 0) == (want == "decreasing") else 1
                for pt in pts
            ]
        checks.append(
            check_numeric(
                f"{end}.threshold.monotone",
                stmt,
                bad,
                tol=0,
                method=f"SymPy could not decide the sign of {how}; sign checked at seeded points",
            )
        )
    sup_point = 0 if end == "upper" else 1
    delta_all = nice(_limit(G, sup_point))
    checks.append(_range_check(end, G, sup_point, delta_all))
    if checks[-1].status == "failed":
        delta_all = sp.nan  # do not build a condition on a wrong limit
    edge = _limit(G, 1 - sup_point)
    checks.append(
        check_zero(
            f"{end}.threshold.vanishes",
            f"G_{end} -> 0 at p -> {1 - sup_point} (the end saturates for every δ there)",
            edge,
            [],
        )
    )
    # boundary p*(δ)
    p_star = None
    note = ""
    gens = transcendental_generators(G, P)
    try:
        if len(gens) > 1:
            raise NotImplementedError(f"(not attempted: G mixes {sorted(map(str, gens))})")
        with time_limit(SOLVE_SECONDS):
            sols = sp.solve(sp.Eq(G, DELTA), P, simplify=False, check=False)
    except SymbolicTimeout:
        sols, note = [], f"solve(G = delta, p) found no root within {SOLVE_SECONDS:g} s"
    except NotImplementedError as err:
        first = str(err).splitlines()[0] if str(err) else ""
        sols, note = [], f"solve(G = delta, p): no elementary solution {first}".strip()
    cands = []
    d_probe = [mpmath.mpf("0.01"), mpmath.mpf("0.3")]
    gfn = sp.lambdify(P, G, modules="mpmath")
    for s in sols:
        fn = sp.lambdify(DELTA, s, modules="mpmath")
        ok = True
        with mpmath.workdps(60):
            for d in d_probe:
                if delta_all != sp.oo and d >= delta_all:
                    d = delta_all * mpmath.mpf("0.3")
                v = mpmath.mpmathify(fn(d))
                if mpmath.im(v) != 0 or not 0 < mpmath.re(v) < 1:
                    ok = False
                    break
                if abs(gfn(mpmath.re(v)) - d) > mpmath.mpf(10) ** -45:
                    ok = False
                    break
        if ok:
            cands.append(s)
    if cands:
        p_star = nice(cands[0])
        res = G.subs(P, p_star) - DELTA
        bounded = delta_all not in (sp.oo, sp.nan)
        domain = (
            [(f"delta = {delta_all}/(1+e), e > 0", {DELTA: delta_all / (1 + _E)})]
            if bounded
            else []
        )
        pts = [
            {DELTA: pt[DELTA]}
            for pt in domain_points(seed + 1, 8)
            if not bounded or mpmath.mpf(pt[DELTA]) < delta_all
        ]
        where = f" for 0 < delta < {delta_all}" if bounded else ""
        checks.append(
            check_zero(
                f"{end}.threshold.boundary",
                f"G_{end}(p*) = delta at p* = {sp.sstr(p_star, order='none')}{where}",
                res,
                pts,
                domain=domain,
            )
        )
        rel = P >= p_star if end == "upper" else P <= p_star
        if delta_all in (sp.oo, sp.nan):
            cond = rel
        else:
            cond = sp.Or(DELTA >= delta_all, rel, evaluate=False)
        reason = f"solve(G_{end}(p) = delta, p) with G {want} in p"
    else:
        cond = sp.Le(G, DELTA)
        reason = (
            note or "solve(G(p) = delta, p) returned no root in (0, 1): condition left as G<=delta"
        )
        checks.append(
            not_applicable(f"{end}.threshold.boundary", "closed-form boundary p*(delta)", reason)
        )
    th = Threshold(end, G, False, cond, p_star, delta_all, want, reason)
    return th, checks


def thresholds(div: Divergence, seed: int = 0) -> tuple[tuple[Threshold, Threshold], list[Check]]:
    """Saturation thresholds (lower, upper) of ``div`` and the checks behind them."""
    lo, c_lo = _one(div, "lower", seed)
    up, c_up = _one(div, "upper", seed + 7)
    return (lo, up), c_lo + c_up
