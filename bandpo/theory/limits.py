"""Limits of the band as p → 0 and p → 1, the band at exactly p = 1, and the p → 0 margin.

Facts used (THEORY.md §4), each derived here from g_f and checked:

* p → 1, upper end: 1 ≤ r₊ ≤ 1/p, so r₊ → 1.
* p → 1, lower end: for fixed r < 1, (1 − p)·f((1 − r·p)/(1 − p)) → (1 − r)·f′(∞), so
  g_f(p, r) → g_f(1, r) = f(r) + (1 − r)·f′(∞), the perspective of f at p = 1; the limit of r₋ is
  the root ρ(δ) of f(ρ) + (1 − ρ)·f′(∞) = δ (0 when f(0⁺) + f′(∞) ≤ δ; 1 when f′(∞) = ∞).  The
  band at exactly p = 1 is [ρ(δ), 1]; the record compares the two.
* p → 0: g_f(p, R) → 0 for every fixed R > 0, so every fixed ratio is eventually inside the band:
  r₋ → 0 and r₊ → ∞ (r₋ = 0 exactly near p = 0 when f(0⁺) < ∞).
* p → 0, absolute upward margin m = p·(r₊ − 1): with r = 1 + m/p,
  g_f(p, 1 + m/p) → G₀(m) = m·f′(∞) + f(1 − m), so m → m₀(δ), the root of G₀(m₀) = δ (0 when
  f′(∞) = ∞, 1 when f′(∞) + f(0⁺) ≤ δ).  Since G₀(m) = g_f(1, 1 − m), m₀ = 1 − ρ: the margin of
  tail tokens equals the downward margin of a one-hot old policy (the mirror identity at work).
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from bandpo.divergences import Divergence, U
from bandpo.solvers.oracle import oracle_band
from bandpo.theory.calculus import limit_at
from bandpo.theory.checks import (
    Check,
    SymbolicTimeout,
    check_numeric,
    check_zero,
    not_applicable,
    proved,
    time_limit,
)
from bandpo.theory.closed_forms import ClosedForm
from bandpo.theory.forms import nice, transcendental_generators
from bandpo.theory.g import g_functions
from bandpo.theory.symbols import DELTA, M, P, R
from bandpo.theory.thresholds import Threshold

__all__ = ["Limit", "limits"]

_LIMIT_SECONDS = 5.0
_R0 = sp.Symbol("R", positive=True)  # a fixed ratio
_E = sp.Symbol("e", positive=True)
# numerical probes: δ values, and how close to the end point p goes
_DELTAS = ("0.01", "0.3", "1.7")
_NEAR_ZERO = "1e-45"


@dataclass(frozen=True)
class Limit:
    """One limit of the band.

    Attributes:
        quantity: ``"upper"``, ``"lower"`` or ``"margin"`` (p·(r₊ − 1)).
        point: ``"p->0"``, ``"p->1"`` or ``"p=1"`` (the perspective band, not a limit).
        value: The value as a SymPy expression in delta (Piecewise where saturation depends on
            δ), or None when it has no closed form (then ``equation`` defines it).
        equation: An expression E(x, δ) whose root x in (0, 1) is the value, where relevant.
        method: How it was derived.
    """

    quantity: str
    point: str
    value: sp.Expr | None
    equation: sp.Expr | None
    method: str

    def __str__(self) -> str:
        v = sp.sstr(self.value, order="none") if self.value is not None else "no closed form"
        return f"{self.quantity} at {self.point}: {v} ({self.method})"


def _limit(e: sp.Expr, var: sp.Symbol, point, direction: str) -> sp.Expr | None:
    if point is sp.oo:
        try:
            with time_limit(_LIMIT_SECONDS):
                out = sp.limit(e, var, point)
        except (SymbolicTimeout, NotImplementedError, ValueError, TypeError):
            return None
        return None if out.has(sp.Limit, sp.nan, sp.AccumBounds) else out
    return limit_at(e, var, point, seconds=_LIMIT_SECONDS)


def _solve_unit(eq: sp.Expr, var: sp.Symbol, d_cap: sp.Expr) -> sp.Expr | None:
    """The root in (0, 1) of eq(var, δ) = 0 for δ below ``d_cap``, in closed form, or None."""
    if len(transcendental_generators(eq, var)) > 1:
        return None  # mixes several log terms in var: no elementary root (solve not attempted)
    try:
        with time_limit(2.0):
            sols = sp.solve(eq, var, simplify=False, check=False)
    except (SymbolicTimeout, NotImplementedError):
        return None
    probes = [mpmath.mpf(d) for d in ("0.01", "0.2")]
    for s in sols:
        if s.has(sp.LambertW, sp.RootOf):
            continue
        fn = sp.lambdify(DELTA, s, modules="mpmath")
        efn = sp.lambdify((var, DELTA), eq, modules="mpmath")
        ok = True
        with mpmath.workdps(60):
            for d in probes:
                if d_cap != sp.oo and d >= d_cap:
                    d = mpmath.mpf(d_cap) * mpmath.mpf("0.3")
                try:
                    v = mpmath.mpmathify(fn(d))
                except (ValueError, ZeroDivisionError):
                    ok = False
                    break
                if mpmath.im(v) != 0 or not 0 < mpmath.re(v) < 1:
                    ok = False
                    break
                if abs(efn(mpmath.re(v), d)) > mpmath.mpf(10) ** -45:
                    ok = False
                    break
        if ok:
            return nice(s)
    return None


def _delta_domain(d_all: sp.Expr) -> list:
    """Substitution δ = d_all/(1 + e), e > 0: the claim is made for 0 < δ < d_all."""
    if d_all in (sp.oo, sp.nan):
        return []
    return [(f"delta = {d_all}/(1+e), e > 0", {DELTA: d_all / (1 + _E)})]


def _delta_points(d_all: sp.Expr) -> list[dict]:
    pts = []
    for d in ("0.001", "0.01", "0.1", "0.3", "0.9", "1.7", "3.5"):
        if d_all in (sp.oo, sp.nan) or mpmath.mpf(d) < d_all:
            pts.append({DELTA: d})
    return pts


def _in_domain(e: sp.Expr, d_all: sp.Expr) -> sp.Expr:
    """e with δ = d_all/(1 + e'), so that SymPy knows 0 < δ < d_all (identity if d_all = ∞)."""
    dom = _delta_domain(d_all)
    return e.subs(dom[0][1]) if dom else e


def _piecewise(sat_value, d_all: sp.Expr, value: sp.Expr | None) -> sp.Expr | None:
    if value is None:
        return None
    if d_all in (sp.oo, sp.nan):
        return value
    return sp.Piecewise((sat_value, DELTA >= d_all), (value, True))


def _num(
    name: str, statement: str, fn, value_fn, *, tol: str, method: str, deltas=_DELTAS
) -> Check:
    """Compare fn(δ) (oracle) with value_fn(δ) (the derived limit) at a few δ."""
    errs = []
    with mpmath.workdps(60):
        for d in deltas:
            a, b = fn(d), value_fn(d)
            errs.append(abs(a - b) / max(mpmath.mpf(1), abs(b)))
    return check_numeric(name, statement, errs, tol=mpmath.mpf(tol), method=method)


def _converges(name: str, statement: str, dist, var: str) -> Check:
    """Numerical evidence of a limit: dist(δ, ε) shrinks from ε = 1e-20 to ε = 1e-40.

    Convergence can be as slow as 1/ln(1/ε) (f′(∞) = ∞ for ``kl_reverse``), so a fixed tolerance
    at one ε would be wrong; the check asks for a strictly smaller distance, or < 1e-45.
    """
    bad, worst = [], mpmath.mpf(0)
    with mpmath.workdps(80):
        e1, e2 = mpmath.mpf("1e-20"), mpmath.mpf("1e-40")
        for d in _DELTAS:
            d1, d2 = dist(d, e1), dist(d, e2)
            worst = max(worst, d2)
            ok = d2 <= mpmath.mpf(10) ** -45 or d2 < d1
            bad.append(mpmath.mpf(0) if ok else mpmath.mpf(1))
    return check_numeric(
        name,
        statement,
        bad,
        tol=mpmath.mpf(0),
        method=(
            f"oracle at {var} = 1e-20 and 1e-40, delta in {_DELTAS}: distance shrinks; "
            f"largest distance at {var} = 1e-40 is {mpmath.nstr(worst, 3)}"
        ),
    )


def limits(
    div: Divergence,
    lower: ClosedForm,
    upper: ClosedForm,
    ths: tuple[Threshold, Threshold],
    seed: int,
) -> tuple[list[Limit], list[Check]]:
    """The limit records of ``div`` and their checks."""
    G = g_functions(div)
    f, slope = div.f, G.slope_inf
    th_lo, th_up = ths
    lims: list[Limit] = []
    checks: list[Check] = []

    def orc(p, d):
        return oracle_band(p, d, div, dps=50)

    # ---------------------------------------------------------------- upper end, p -> 1
    if not th_up.never:
        lims.append(Limit("upper", "p->1", sp.S.One, None, "saturated near p = 1: r+ = 1/p -> 1"))
    else:
        lims.append(Limit("upper", "p->1", sp.S.One, None, "squeeze 1 <= r+ <= 1/p -> 1"))
    checks.append(proved("limit.upper.p->1", "r+ -> 1 as p -> 1", "1 <= r+ <= 1/p and 1/p -> 1"))
    if upper.expr is not None and th_up.never:
        L = _limit(upper.expr, P, 1, "-")
        checks.append(
            check_zero(
                "limit.upper.p->1.closed_form",
                "limit of the closed-form r+ as p -> 1 is 1",
                (L if L is not None else sp.nan) - 1,
                [],
            )
            if L is not None
            else not_applicable(
                "limit.upper.p->1.closed_form", "limit of the closed-form r+", "sp.limit failed"
            )
        )
    # ---------------------------------------------------------------- lower end, p -> 1 and p = 1
    d_all_lo = th_lo.delta_all  # = f(0+) + f'(inf), the p -> 1 value of G_lower
    if G.perspective is None:
        rho = sp.S.One
        rho_how = "f'(oo) = oo: at p = 1 only r = 1 is reachable"
        persp_eq = None
    else:
        persp_eq = G.perspective - DELTA
        rho = _solve_unit(persp_eq.subs(R, R), R, d_all_lo)
        rho_how = (
            "root of the perspective f(r) + (1 - r) f'(oo) = delta"
            if rho is not None
            else "perspective f(r) + (1 - r) f'(oo) = delta has no closed-form root"
        )
    rho_pw = _piecewise(sp.S.Zero, d_all_lo, rho)
    lims.append(Limit("lower", "p=1", rho_pw, persp_eq, "band at exactly p = 1: " + rho_how))
    if rho is not None and persp_eq is not None:
        checks.append(
            check_zero(
                "p=1.lower.perspective_root",
                f"rho(delta) = {sp.sstr(rho, order='none')} solves f(r) + (1-r) f'(oo) = delta"
                f" for 0 < delta < {d_all_lo}",
                persp_eq.subs(R, rho),
                _delta_points(d_all_lo),
                domain=_delta_domain(d_all_lo),
            )
        )
    if lower.expr is not None and d_all_lo != sp.S.Zero:
        L = _limit(_in_domain(lower.expr, d_all_lo), P, 1, "-")
        if L is not None:
            L = L.subs(_E, d_all_lo / DELTA - 1) if d_all_lo not in (sp.oo, sp.nan) else L
            L = nice(L)
            if persp_eq is None:
                res = L - 1
                stmt = "limit of the closed-form r- as p -> 1 is 1 (the p = 1 band)"
            else:
                res = persp_eq.subs(R, L)
                stmt = (
                    f"limit of the closed-form r- as p -> 1, {sp.sstr(L, order='none')}, "
                    "solves the p = 1 perspective equation"
                )
            checks.append(
                check_zero(
                    "limit.lower.p->1.closed_form",
                    stmt,
                    res,
                    _delta_points(d_all_lo),
                    domain=_delta_domain(d_all_lo),
                )
            )
            lims.append(
                Limit(
                    "lower",
                    "p->1",
                    _piecewise(sp.S.Zero, d_all_lo, L),
                    persp_eq,
                    "sp.limit of the closed-form r- (0 where saturated)",
                )
            )
        else:
            lims.append(Limit("lower", "p->1", rho_pw, persp_eq, "asymptotic: g_f -> g_f(1, r)"))
    else:
        lims.append(
            Limit(
                "lower",
                "p->1",
                rho_pw,
                persp_eq,
                "asymptotic: g_f(p, r) -> f(r) + (1 - r) f'(oo) as p -> 1",
            )
        )
    # pointwise: g_f(p, r) -> g_f(1, r) for fixed r < 1 (the reason the limit is the p = 1 band)
    r_lt1 = 1 / (1 + _R0)
    L1 = _limit(G.g_lower.subs(R, r_lt1), P, 1, "-")
    stmt = "g_f(p, r) -> f(r) + (1 - r) f'(oo) as p -> 1 for every fixed r < 1"
    target = sp.oo if G.perspective is None else G.perspective.subs(R, r_lt1)
    if L1 is not None and (L1 == target == sp.oo):
        checks.append(proved("limit.lower.p->1.pointwise", stmt, "sp.limit gives oo = f'(oo)"))
    elif L1 is not None and target != sp.oo:
        checks.append(check_zero("limit.lower.p->1.pointwise", stmt, L1 - target, []))
    else:
        checks.append(not_applicable("limit.lower.p->1.pointwise", stmt, f"sp.limit gave {L1}"))
    checks.append(
        _converges(
            "limit.lower.p->1.vs_p=1",
            "the oracle band approaches the band at exactly p = 1 (perspective of f) as p -> 1",
            lambda d, eps: abs(orc(1 - eps, d).lower - orc(1, d).lower),
            "1 - p",
        )
    )
    if rho_pw is not None:
        rfn = sp.lambdify(DELTA, rho_pw, modules="mpmath")
        checks.append(
            _num(
                "p=1.lower.oracle",
                "the derived p = 1 lower end equals oracle_band(1, delta)",
                lambda d: orc(1, d).lower,
                lambda d: rfn(mpmath.mpf(d)),
                tol="1e-45",
                method=f"delta in {_DELTAS}",
            )
        )
    # ---------------------------------------------------------------- p -> 0: both ends
    pointwise = {}
    for side, gside, R_fixed in (("lower", G.g_lower, sp.Rational(1, 2)), ("upper", G.g_upper, 2)):
        L0 = _limit(gside.subs(R, _R0), P, 0, "+")
        pointwise[side] = L0
        stmt = f"g_f(p, R) -> 0 as p -> 0 for every fixed R {'< 1' if side == 'lower' else '> 1'}"
        if L0 is not None:
            checks.append(check_zero(f"limit.{side}.p->0.pointwise", stmt, L0, []))
        else:
            gfn = sp.lambdify((P, R), gside, modules="mpmath")
            with mpmath.workdps(80):
                errs = [gfn(mpmath.mpf(_NEAR_ZERO), mpmath.mpf(R_fixed))]
            checks.append(
                check_numeric(
                    f"limit.{side}.p->0.pointwise",
                    stmt,
                    errs,
                    tol=mpmath.mpf("1e-30"),
                    method=f"sp.limit failed; g_f(p = {_NEAR_ZERO}, R = {R_fixed}) evaluated",
                )
            )
    lo_how = (
        "saturated near p = 0 (G_lower -> 0): r- = 0 exactly"
        if not th_lo.never
        else "every fixed r > 0 is eventually inside the band (g_f(p, r) -> 0): r- -> 0"
    )
    lims.append(Limit("lower", "p->0", sp.S.Zero, None, lo_how))
    lims.append(
        Limit(
            "upper",
            "p->0",
            sp.oo,
            None,
            "every fixed R > 1 is eventually inside the band (g_f(p, R) -> 0): r+ -> oo",
        )
    )
    for cf, want in ((lower, sp.S.Zero), (upper, sp.oo)):
        if cf.expr is None:
            continue
        d_all = (th_lo if cf.end == "lower" else th_up).delta_all
        L = _limit(_in_domain(cf.expr, d_all), P, 0, "+")
        if L is None:
            continue
        sym = "r+" if cf.end == "upper" else "r-"
        if cf.end == "lower" and not th_lo.never:
            continue  # saturated there: the unclamped formula's limit says nothing about r-
        ok = L == want
        checks.append(
            proved(
                f"limit.{cf.end}.p->0.closed_form",
                f"limit of the closed-form {sym} is {want}",
                f"sp.limit gives {L}",
            )
            if ok
            else Check(
                f"limit.{cf.end}.p->0.closed_form",
                f"limit of {sym} is {want}",
                "failed",
                f"sp.limit gives {L}",
            )
        )
    # ---------------------------------------------------------------- margin p (r+ - 1), p -> 0
    G0 = None if slope == sp.oo else M * slope + f.subs(U, 1 - M)
    d_all_up = th_up.delta_all  # = f'(oo) + f(0+), the p -> 0 value of G_upper
    if G0 is None:
        m0 = sp.S.Zero
        m_how = "f'(oo) = oo: p f(1 + m/p) -> oo for every m > 0, so the margin -> 0"
        m_eq = None
        Lg = _limit(G.g_upper.subs(R, 1 + M / P), P, 0, "+")
        checks.append(
            proved(
                "limit.margin.p->0.asymptotic",
                "g_f(p, 1 + m/p) -> oo as p -> 0 for m > 0",
                "sp.limit gives oo",
            )
            if Lg == sp.oo
            else not_applicable(
                "limit.margin.p->0.asymptotic", "g_f(p, 1 + m/p) -> oo", f"sp.limit gave {Lg}"
            )
        )
    else:
        m_eq = G0 - DELTA
        m0 = _solve_unit(m_eq, M, d_all_up)
        m_how = (
            "root of G0(m) = m f'(oo) + f(1 - m) = delta (asymptotic form of g_f(p, 1 + m/p))"
            if m0 is not None
            else "G0(m) = m f'(oo) + f(1 - m) = delta has no closed-form root"
        )
        Lg = _limit(G.g_upper.subs(R, 1 + M / P), P, 0, "+")
        stmt = "g_f(p, 1 + m/p) -> G0(m) = m f'(oo) + f(1 - m) as p -> 0"
        if Lg is not None:
            checks.append(check_zero("limit.margin.p->0.asymptotic", stmt, Lg - G0, []))
        else:
            gfn = sp.lambdify((P, M), G.g_upper.subs(R, 1 + M / P), modules="mpmath")
            g0fn = sp.lambdify(M, G0, modules="mpmath")
            with mpmath.workdps(90):
                errs = [
                    gfn(mpmath.mpf(_NEAR_ZERO), mpmath.mpf(m)) - g0fn(mpmath.mpf(m))
                    for m in ("0.1", "0.5", "0.9")
                ]
            checks.append(
                check_numeric(
                    "limit.margin.p->0.asymptotic",
                    stmt,
                    errs,
                    tol=mpmath.mpf("1e-30"),
                    method=f"sp.limit failed; compared at p = {_NEAR_ZERO}",
                )
            )
        if G.perspective is not None:
            checks.append(
                check_zero(
                    "limit.margin.mirror",
                    "G0(m) = g_f(1, 1 - m): the p -> 0 margin is 1 - (p = 1 lower end)",
                    G0 - G.perspective.subs(R, 1 - M),
                    [],
                )
            )
    m_pw = _piecewise(sp.S.One, d_all_up, m0)
    if upper.expr is not None and d_all_up != sp.S.Zero:
        L = _limit(_in_domain(P * (upper.expr - 1), d_all_up), P, 0, "+")
        if L is not None:
            L = L.subs(_E, d_all_up / DELTA - 1) if d_all_up not in (sp.oo, sp.nan) else L
            L = nice(L)
            res = L - m0 if m_eq is None else m_eq.subs(M, L)
            checks.append(
                check_zero(
                    "limit.margin.p->0.closed_form",
                    f"limit of p (r+ - 1) from the closed form, {sp.sstr(L, order='none')}, "
                    "matches the asymptotic margin",
                    res,
                    _delta_points(d_all_up),
                    domain=_delta_domain(d_all_up),
                )
            )
    lims.append(Limit("margin", "p->0", m_pw, m_eq, m_how))
    if m_pw is not None:
        mfn = sp.lambdify(DELTA, m_pw, modules="mpmath")
        checks.append(
            _converges(
                "limit.margin.p->0.oracle",
                "p (r+ - 1) from the oracle approaches the derived margin as p -> 0",
                lambda d, eps: abs(eps * (orc(eps, d).upper - 1) - mfn(mpmath.mpf(d))),
                "p",
            )
        )
    else:
        efn = sp.lambdify((M, DELTA), m_eq, modules="mpmath")

        def dist(d, eps):
            m = eps * (orc(eps, d).upper - 1)
            if mpmath.mpf(d) >= d_all_up:  # saturated near p = 0: the margin -> 1
                return abs(m - 1)
            return abs(efn(m, mpmath.mpf(d)))

        checks.append(
            _converges(
                "limit.margin.p->0.oracle",
                "the oracle margin approaches the root of G0(m) = delta as p -> 0 "
                "(value numeric-only)",
                dist,
                "p",
            )
        )
    return lims, checks
