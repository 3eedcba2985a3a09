"""``derive``: the SymPy derivation record of one divergence, every claim in it checked.

    derive("chi2").upper            # 1 + sqrt(delta*(1 - p)/p)
    derive("alpha", alpha=2)        # parametric divergences take their parameters
    derive_all()                    # every registered divergence (alpha at 0.5, 2 and -1)

The record holds g_f(p, r), the closed-form band ends r∓(p, δ) (or None with the reason), the
saturation thresholds of both ends, the limits p → 0 and p → 1 (with the band at exactly p = 1
and the upward margin p·(r₊ − 1) as p → 0), the small-δ expansion, the mirror identity and the
convexity of g_f in r.  Each claim is a :class:`~bandpo.theory.checks.Check`: "proved" only when a
symbolic residual reduced to 0; "numerical" when only the 50-digit check passed.

Records are cached per (name, parameters) in-process (``functools.lru_cache``): a derivation is a
pure function of the registry entry, so reuse is exact.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple

import mpmath
import sympy as sp

from bandpo.divergences import Divergence, divergence_names, resolve_divergence
from bandpo.solvers.oracle import oracle_band_detail
from bandpo.theory.checks import Check, check_numeric, check_zero, log_uniform
from bandpo.theory.closed_forms import ClosedForm, End, closed_forms
from bandpo.theory.expansion import Expansion, expansion
from bandpo.theory.g import g_functions
from bandpo.theory.identities import identities
from bandpo.theory.limits import Limit, limits
from bandpo.theory.symbols import DELTA, P, R
from bandpo.theory.thresholds import Threshold, thresholds

__all__ = [
    "ORACLE_DIGITS",
    "Derivation",
    "SummaryRow",
    "derive",
    "derive_all",
    "summary_table",
]

#: Closed forms must agree with the oracle (dps = 60) to at least this many digits.
ORACLE_DIGITS = 40
#: Extra α values that :func:`derive_all` derives besides the registry default.
EXTRA_ALPHAS = (2.0, -1.0)

_E = sp.Symbol("e", positive=True)


class SummaryRow(NamedTuple):
    """One row of the per-divergence summary table."""

    divergence: str
    lower_closed: bool
    upper_closed: bool
    thresholds: str
    proved: int
    numerical: int
    not_applicable: int
    failed: int
    numeric_only: str
    seconds: float


@dataclass(frozen=True, eq=False)
class Derivation:
    """The derivation record of one divergence (see module docstring).

    Attributes:
        divergence: The registry :class:`~bandpo.divergences.Divergence`.
        g: g_f(p, r) in the symbols p, r (:data:`bandpo.theory.symbols.P`, ``R``).
        lower, upper: Closed-form ends r∓(p, δ) in the symbols p, delta (unclamped: valid where
            the end does not saturate), or None.
        lower_reason, upper_reason: How each was found, or why there is none.
        thresholds: (lower, upper) :class:`~bandpo.theory.thresholds.Threshold`.
        limits: The :class:`~bandpo.theory.limits.Limit` records (p → 0, p → 1, margin, p = 1).
        expansion: The small-δ :class:`~bandpo.theory.expansion.Expansion`.
        checks: Every :class:`~bandpo.theory.checks.Check` made.
        seconds: Wall time of the derivation (first call; later calls hit the cache).
    """

    divergence: Divergence
    g: sp.Expr
    lower: sp.Expr | None
    upper: sp.Expr | None
    lower_reason: str
    upper_reason: str
    thresholds: tuple[Threshold, Threshold]
    limits: tuple[Limit, ...]
    expansion: Expansion
    checks: tuple[Check, ...] = field(repr=False)
    seconds: float = 0.0

    # ----------------------------------------------------------------------- summaries
    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(c.passed for c in self.checks)

    @property
    def symbols(self) -> tuple[sp.Symbol, sp.Symbol, sp.Symbol]:
        """The symbols (p, r, delta) the expressions use."""
        return P, R, DELTA

    def counts(self) -> dict[str, int]:
        """Number of checks per status."""
        out = {"proved": 0, "numerical": 0, "not_applicable": 0, "failed": 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    def summary_row(self) -> SummaryRow:
        """The row of :func:`summary_table` for this divergence."""
        th = []
        for t in self.thresholds:
            if t.never:
                th.append(f"{t.end[:2]}: never")
            elif t.p_star is not None:
                th.append(f"{t.end[:2]}: p*(δ)")
            else:
                th.append(f"{t.end[:2]}: G(p)≤δ")
        n = self.counts()
        numeric = ", ".join(c.name for c in self.checks if c.status == "numerical")
        return SummaryRow(
            self.divergence.display_name,
            self.lower is not None,
            self.upper is not None,
            "; ".join(th),
            n["proved"],
            n["numerical"],
            n["not_applicable"],
            n["failed"],
            numeric,
            self.seconds,
        )

    def formula(self, end: End) -> str:
        """``"r+ = 1 + sqrt(delta*(1 - p)/p)"`` style text (or the reason there is none)."""
        expr = self.upper if end == "upper" else self.lower
        sym = "r+" if end == "upper" else "r-"
        if expr is None:
            reason = self.upper_reason if end == "upper" else self.lower_reason
            return f"{sym}: no closed form ({reason})"
        return f"{sym} = {sp.sstr(expr, order='none')}"

    def report(self) -> str:
        """A multi-line plain-text report of the record and every check."""
        lines = [f"{self.divergence.display_name}: f(u) = {self.divergence.f}"]
        lines.append(f"  g_f(p, r) = {self.g}")
        lines += [f"  {self.formula('lower')}", f"  {self.formula('upper')}"]
        lines += [f"  {t.statement()}" for t in self.thresholds]
        lines += [f"  {lim}" for lim in self.limits]
        lines.append(f"  {self.expansion}")
        lines += [f"  {c}" for c in self.checks]
        return "\n".join(lines)

    # ----------------------------------------------------------------------- evaluation
    def lower_func(self, module: str = "mpmath") -> Callable[[Any, Any], Any]:
        """The closed-form r₋(p, δ) lambdified for ``module`` ("mpmath", "numpy", "torch", ...)."""
        return self._func("lower", module)

    def upper_func(self, module: str = "mpmath") -> Callable[[Any, Any], Any]:
        """The closed-form r₊(p, δ) lambdified for ``module`` ("mpmath", "numpy", "torch", ...)."""
        return self._func("upper", module)

    def _func(self, end: End, module: str) -> Callable[[Any, Any], Any]:
        expr = self.lower if end == "lower" else self.upper
        if expr is None:
            reason = self.lower_reason if end == "lower" else self.upper_reason
            raise NotImplementedError(
                f"{self.divergence.display_name} has no closed-form {end} end: {reason}"
            )
        return _lambdify(expr, module)

    def band(self, p: Any, delta: Any, *, dps: int = 60) -> tuple[Any, Any]:
        """The band [r₋, r₊] at one (p, δ) from the closed forms and the derived thresholds.

        Saturated ends are exact (0 and 1/p); p = 1 is not covered (use the oracle there).

        Raises:
            NotImplementedError: an end that does not saturate here has no closed form.
        """
        with mpmath.workdps(dps + 20):
            pm, dm = mpmath.mpf(p), mpmath.mpf(delta)
            if not 0 < pm < 1 or not dm > 0:
                raise ValueError(f"band needs 0 < p < 1 and delta > 0, got p={p}, delta={delta}")
            lo_t, up_t = self.thresholds
            lo = mpmath.mpf(0) if lo_t.saturates(pm, dm) else self.lower_func()(pm, dm)
            up = 1 / pm if up_t.saturates(pm, dm) else self.upper_func()(pm, dm)
            return +mpmath.re(lo), +mpmath.re(up)


@cache
def _lambdify(expr: sp.Expr, module: str) -> Callable[[Any, Any], Any]:
    return sp.lambdify((P, DELTA), expr, modules=module)


# ----------------------------------------------------------------------------- closed-form checks


def _residual_check(div: Divergence, cf: ClosedForm, th: Threshold, seed: int) -> Check:
    """g_f(p, r∓(p, δ)) − δ = 0 where the end does not saturate."""
    g = g_functions(div).g
    res = g.subs(R, cf.expr) - DELTA
    pts = []
    rng = random.Random(seed)
    while len(pts) < 8:
        pt = _random_point(rng)
        if not th.saturates(pt[P], pt[DELTA]):
            pts.append(pt)
    domain = []
    if th.delta_all not in (sp.oo, sp.nan) and not th.never:
        domain.append((f"delta = {th.delta_all}/(1+e), e > 0", {DELTA: th.delta_all / (1 + _E)}))
    sym = "r+" if cf.end == "upper" else "r-"
    return check_zero(
        f"{cf.end}.closed_form.residual",
        f"g_f(p, {sym}(p, delta)) = delta where the {cf.end} end does not saturate",
        res,
        pts,
        scale=DELTA,
        domain=domain,
    )


def _random_point(rng: random.Random) -> dict:
    if rng.random() < 0.5:
        p = log_uniform(rng, 1e-8, 0.5)
    else:
        with mpmath.workdps(80):
            p = mpmath.nstr(1 - mpmath.mpf(log_uniform(rng, 1e-8, 0.5)), 50)
    return {P: p, DELTA: log_uniform(rng, 1e-4, 3.0)}


def _straddle_points(ths: Iterable[Threshold]) -> list[dict]:
    """(p, δ) just inside and just outside each closed-form saturation boundary p*(δ)."""
    pts = []
    for th in ths:
        if th.never or th.p_star is None:
            continue
        fn = sp.lambdify(DELTA, th.p_star, modules="mpmath")
        for d in ("0.001", "0.05", "0.5", "1.5"):
            with mpmath.workdps(80):
                ps = mpmath.re(fn(mpmath.mpf(d)))
                if not 0 < ps < 1:
                    continue
                for fac in ("0.99", "1.01"):
                    p = ps * mpmath.mpf(fac)
                    if 0 < p < 1:
                        pts.append({P: mpmath.nstr(p, 60), DELTA: d})
    return pts


def _oracle_check(rec: Derivation, seed: int, n_random: int = 10) -> Check:
    """The closed-form band (with the derived thresholds) against the oracle at dps = 60."""
    div = rec.divergence
    rng = random.Random(seed)
    pts = [_random_point(rng) for _ in range(n_random)] + _straddle_points(rec.thresholds)
    errors = []
    n_sat = 0
    flag_mismatch = 0
    for pt in pts:
        od = oracle_band_detail(pt[P], pt[DELTA], div, dps=60)
        lo, up = rec.band(pt[P], pt[DELTA], dps=60)
        sat = (
            rec.thresholds[0].saturates(pt[P], pt[DELTA]),
            rec.thresholds[1].saturates(pt[P], pt[DELTA]),
        )
        n_sat += sum(sat)
        flag_mismatch += (sat[0] != od.lower_saturated) + (sat[1] != od.upper_saturated)
        with mpmath.workdps(80):
            for mine, ref in ((lo, od.lower), (up, od.upper)):
                if ref == 0:
                    errors.append(abs(mine))
                else:
                    errors.append(abs(mine - ref) / abs(ref))
    tol = mpmath.mpf(10) ** -ORACLE_DIGITS
    if flag_mismatch:
        errors.append(mpmath.inf)
    worst = max(errors)
    digits = math.inf if worst == 0 else float(-mpmath.log10(worst))
    return check_numeric(
        "closed_form.oracle",
        f"closed-form band agrees with oracle_band(dps=60) to >= {ORACLE_DIGITS} digits on both "
        "sides of every saturation threshold",
        errors,
        tol=tol,
        method=(
            f"{len(pts)} points (seeded random + 0.99/1.01 x p*(delta)), {n_sat} saturated ends, "
            f"{flag_mismatch} saturation-flag mismatches, min agreement {digits:.1f} digits"
        ),
    )


# ------------------------------------------------------------------------------------ derive


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


@cache
def _derive_cached(name: str, key: tuple) -> Derivation:
    t0 = time.perf_counter()
    div = resolve_divergence(name, **dict(key))
    seed = sum(map(ord, div.key))
    lo_cf, up_cf = closed_forms(div)
    ths, th_checks = thresholds(div, seed)
    checks: list[Check] = list(th_checks)
    for cf, th in ((lo_cf, ths[0]), (up_cf, ths[1])):
        if cf.expr is not None:
            checks.append(_residual_check(div, cf, th, seed + (cf.end == "upper")))
    lims, lim_checks = limits(div, lo_cf, up_cf, ths, seed)
    exp, exp_checks = expansion(div, lo_cf, up_cf, seed)
    checks += lim_checks + exp_checks + identities(div, seed)
    rec = Derivation(
        divergence=div,
        g=g_functions(div).g,
        lower=lo_cf.expr,
        upper=up_cf.expr,
        lower_reason=lo_cf.reason,
        upper_reason=up_cf.reason,
        thresholds=ths,
        limits=tuple(lims),
        expansion=exp,
        checks=(),
    )
    if lo_cf.expr is not None and up_cf.expr is not None:
        checks.append(_oracle_check(rec, seed))
    return Derivation(
        divergence=div,
        g=rec.g,
        lower=rec.lower,
        upper=rec.upper,
        lower_reason=rec.lower_reason,
        upper_reason=rec.upper_reason,
        thresholds=ths,
        limits=rec.limits,
        expansion=exp,
        checks=tuple(checks),
        seconds=time.perf_counter() - t0,
    )


def derive(name: str | Divergence, **params: Any) -> Derivation:
    """Derive and check the band theory of one divergence.

    Args:
        name: Registry name (``"kl"``, ``"tv"``, ..., ``"alpha"``) or a
            :class:`~bandpo.divergences.Divergence`.
        **params: Divergence parameters, e.g. ``alpha=2``.

    Returns:
        The :class:`Derivation` record (cached per name and parameters).

    Raises:
        ValueError: unknown name (the message lists the valid ones) or a bad parameter.
        TypeError: a parameter the divergence does not take.
    """
    div = resolve_divergence(name, **params)
    return _derive_cached(div.name, _key(dict(div.params)))


def derive_all(alphas: Iterable[float] = EXTRA_ALPHAS) -> list[Derivation]:
    """:func:`derive` for every registered divergence, plus ``alpha`` at each of ``alphas``."""
    out = [derive(n) for n in divergence_names()]
    seen = {d.divergence.key for d in out}
    for a in alphas:
        rec = derive("alpha", alpha=a)
        if rec.divergence.key not in seen:
            out.append(rec)
            seen.add(rec.divergence.key)
    return out


def summary_table(records: Iterable[Derivation]) -> str:
    """A Markdown table, one row per derivation (closed forms, thresholds, check counts)."""
    head = (
        "| divergence | closed r- | closed r+ | thresholds | proved | numerical only | n/a "
        "| failed | checked numerically only | s |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for rec in records:
        r = rec.summary_row()
        rows.append(
            f"| {r.divergence} | {'yes' if r.lower_closed else 'no'} | "
            f"{'yes' if r.upper_closed else 'no'} | {r.thresholds} | {r.proved} | {r.numerical} "
            f"| {r.not_applicable} | {r.failed} | {r.numeric_only or '-'} | {r.seconds:.2f} |"
        )
    return "\n".join(rows)
