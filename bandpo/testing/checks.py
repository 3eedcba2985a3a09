"""The checks: accuracy per region, invariants, saturation, feasibility, extremes, speed.

Each function takes the cases of one dtype (:class:`~bandpo.testing.grids.CaseSet`), the
solver's output on them and the dtype's :class:`~bandpo.tolerances.Tolerance`, and returns
:class:`~bandpo.testing.report.CheckResult` rows (and, for accuracy, per-point errors).

Error measure (the one of ``bandpo.tolerances``): against the reference rounded to the dtype,

* a normal, finite, non-zero reference: relative error |got − ref|/|ref| ≤ ``tol.rel``;
* a reference below the smallest normal (subnormal, or 0 after underflow): absolute error in
  units of the smallest subnormal, ≤ ``tol.ulp``;
* an infinite reference (1/p overflowing the dtype): ``got`` must be the same infinity.

The *score* of an end is its error divided by the bar, so a score ≤ 1 passes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import torch

from bandpo.divergences import Divergence
from bandpo.solvers.oracle import oracle_g
from bandpo.testing.grids import REGIONS, CaseSet
from bandpo.testing.report import (
    FAIL,
    PASS,
    SKIP,
    CheckResult,
    PointError,
    RegionStats,
    SpeedResult,
    fmt_err,
    fmt_p,
    fmt_val,
)
from bandpo.tolerances import Tolerance

__all__ = [
    "EndErrors",
    "accuracy",
    "accuracy_check",
    "feasibility",
    "invariants",
    "region_stats",
    "score",
    "speed",
]

# Digits for the feasibility recomputation of g_f(p, got) − δ.
FEAS_DPS = 30


def score(got: np.ndarray, ref: np.ndarray, tol: Tolerance) -> tuple[np.ndarray, ...]:
    """(score, rel, abs) of each end; score ≤ 1 passes (see the module docstring)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    with np.errstate(all="ignore"):
        abs_err = np.abs(got - ref)
        normal = np.isfinite(ref) & (np.abs(ref) >= tol.tiny)
        rel = np.where(normal, abs_err / np.abs(ref), np.nan)
        sub_unit = tol.tiny * tol.eps
        sc = np.where(normal, rel / tol.rel, abs_err / (tol.ulp * sub_unit))
        inf_ref = np.isinf(ref)
        sc = np.where(inf_ref, np.where(got == ref, 0.0, np.inf), sc)
        abs_err = np.where(inf_ref & (got == ref), 0.0, abs_err)
        sc = np.where(np.isnan(got) & ~np.isnan(ref), np.inf, sc)
        sc = np.where(np.isnan(ref) & np.isnan(got), 0.0, sc)
    return sc, rel, abs_err


@dataclass
class EndErrors:
    """Scores and errors of both ends at every case of one dtype."""

    score_lo: np.ndarray
    score_up: np.ndarray
    rel_lo: np.ndarray
    rel_up: np.ndarray
    abs_lo: np.ndarray
    abs_up: np.ndarray

    @property
    def fail(self) -> np.ndarray:
        return (self.score_lo > 1) | (self.score_up > 1)

    def at(self, end: str, i: int) -> tuple[Any, Any, Any]:
        """(score, rel, abs) of one end (``"lower"`` or ``"upper"``) at case i."""
        if end == "lower":
            return self.score_lo[i], self.rel_lo[i], self.abs_lo[i]
        return self.score_up[i], self.rel_up[i], self.abs_up[i]


def accuracy(
    cases: CaseSet,
    got_lo: np.ndarray,
    got_up: np.ndarray,
    ref_lo: np.ndarray,
    ref_up: np.ndarray,
    tol: Tolerance,
) -> EndErrors:
    """Scores of both ends against the (possibly post-processed) references."""
    s_lo, r_lo, a_lo = score(got_lo, ref_lo, tol)
    s_up, r_up, a_up = score(got_up, ref_up, tol)
    return EndErrors(s_lo, s_up, r_lo, r_up, a_lo, a_up)


def accuracy_check(cases: CaseSet, err: EndErrors, got_lo, got_up, dt: str) -> CheckResult:
    fail = err.fail & np.isfinite(cases.log_p)
    n = int(np.isfinite(cases.log_p).sum())
    if not fail.any():
        return CheckResult("accuracy", "accuracy vs reference", dt, PASS, n, 0, "")
    regs = sorted(set(cases.region[fail].tolist()))
    sc = np.maximum(err.score_lo, err.score_up)
    i = int(np.argmax(np.where(fail, sc, -1)))
    end = "lower" if err.score_lo[i] >= err.score_up[i] else "upper"
    got = (got_lo if end == "lower" else got_up)[i]
    exp = (cases.expected_lower if end == "lower" else cases.expected_upper)[i]
    rel = (err.rel_lo if end == "lower" else err.rel_up)[i]
    detail = (
        f"over the bar in: {', '.join(REGIONS[k].label for k in regs)}; worst {end} at "
        f"p={fmt_p(cases.p[i], cases.log_p[i])}, δ={cases.delta[i]:g}: {fmt_val(got)} vs "
        f"{fmt_val(exp)} ("
        + (f"abs {fmt_err(float(abs(got - exp)))}" if math.isnan(rel) else f"rel {fmt_err(rel)}")
        + ")"
    )
    res = CheckResult("accuracy", "accuracy vs reference", dt, FAIL, n, int(fail.sum()), detail)
    res.counts = {REGIONS[k].key: int((fail & (cases.region == k)).sum()) for k in regs}
    return res


def _nanmax(a: np.ndarray) -> float | None:
    a = a[~np.isnan(a)]
    return float(a.max()) if a.size else None


def region_stats(cases: CaseSet, err: EndErrors, dtype: str) -> list[RegionStats]:
    """Max relative/absolute error and failures per p-decade region."""
    out = []
    for k, reg in enumerate(REGIONS):
        sel = cases.region == k
        n = int(sel.sum())
        if n == 0:
            out.append(RegionStats(dtype, reg.key, reg.label, 0, 0, None, None, None))
            continue
        abs_all = np.concatenate([err.abs_lo[sel], err.abs_up[sel]])
        out.append(
            RegionStats(
                dtype=dtype,
                region=reg.key,
                label=reg.label,
                n=n,
                n_fail=int(err.fail[sel].sum()),
                max_rel_lower=_nanmax(err.rel_lo[sel]),
                max_rel_upper=_nanmax(err.rel_up[sel]),
                max_abs=_nanmax(np.where(np.isinf(abs_all), np.nan, abs_all))
                if not np.isinf(abs_all).any()
                else math.inf,
            )
        )
    return out


def _point(cases: CaseSet, i: int, end: str, got: float, ref: float, sc, rel, ab) -> PointError:
    return PointError(
        dtype=str(cases.dtype).replace("torch.", ""),
        end=end,
        p=float(cases.p[i]),
        log_p=float(cases.log_p[i]),
        delta=float(cases.delta[i]),
        got=float(got),
        expected=float(ref),
        rel=None if math.isnan(rel) else float(rel),
        abs=float(ab),
        score=float(sc),
        g_minus_delta=None,
        verdict="ok" if sc <= 1 else "",
    )


def g_minus_delta(div: Divergence, p_exact: Any, r: float, delta: float) -> float:
    """g_f(p, r) − δ at :data:`FEAS_DPS` digits (``+inf`` outside the domain of f)."""
    with mpmath.workdps(FEAS_DPS + 10):
        return float(oracle_g(p_exact, r, div, dps=FEAS_DPS) - mpmath.mpf(delta))


def classify(
    div: Divergence, cases: CaseSet, i: int, got: float, tol: Tolerance
) -> tuple[str, float | None]:
    """Verdict of a failing end: NaN, inf, outside [0, 1/p], infeasible or conservative."""
    if math.isnan(got):
        return "NaN", None
    if math.isinf(got):
        return "inf", None
    p = cases.p_exact[i]
    if got < 0 or got * cases.p[i] > 1 + tol.rel:
        return "outside [0, 1/p]", None
    r = min(got, float(cases.inv_p[i])) if got * cases.p[i] > 1 else got
    try:
        gd = g_minus_delta(div, p, r, float(cases.delta[i]))
    except ValueError:
        return "outside [0, 1/p]", None
    return ("infeasible" if gd > 0 else "conservative"), gd


def feasibility(
    div: Divergence,
    cases: CaseSet,
    got_lo: np.ndarray,
    got_up: np.ndarray,
    err: EndErrors,
    tol: Tolerance,
    unchanged: np.ndarray,
    max_points: int,
    n_worst: int,
) -> tuple[CheckResult, list[PointError], str | None, dict[str, int]]:
    """Recompute g_f(p, bound) − δ at high precision for the ends that miss the bar.

    Every failing end is classified (up to ``max_points`` of them, worst first); a sample of
    passing, unsaturated ends confirms g − δ ≈ 0 there.

    Returns:
        (check, worst points, note on subsampling or None, verdict counts).
    """
    dt = str(cases.dtype).replace("torch.", "")
    ends = []
    for end, ref_sc in (("lower", err.score_lo), ("upper", err.score_up)):
        for i in np.flatnonzero((ref_sc > 1) & unchanged):
            ends.append((float(ref_sc[i]), end, int(i)))
    ends.sort(key=lambda t: -t[0])
    n_fail = len(ends)
    checked = ends[:max_points]
    counts: dict[str, int] = {}
    points: list[PointError] = []
    for _, end, i in checked:
        got = float((got_lo if end == "lower" else got_up)[i])
        verdict, gd = classify(div, cases, i, got, tol)
        counts[verdict] = counts.get(verdict, 0) + 1
        pe = _point(cases, i, end, got, cases_ref(cases, end, i), *err.at(end, i))
        pe.g_minus_delta, pe.verdict = gd, verdict
        points.append(pe)

    # A sample of ends within the bar: a correctly rounded bound lies outside the trust region
    # by rounding about half the time (g − δ > 0 by a hair); reported, never failed.
    rng = np.random.default_rng(0)
    ok_lo = np.flatnonzero(
        (err.score_lo <= 1) & ~cases.lower_sat & unchanged & np.isfinite(got_lo) & (got_lo > 0)
    )
    ok_up = np.flatnonzero((err.score_up <= 1) & ~cases.upper_sat & unchanged & np.isfinite(got_up))
    n_sample, n_out = 0, 0
    for idx, got in ((ok_lo, got_lo), (ok_up, got_up)):
        for i in rng.permutation(idx)[:8]:
            try:
                gd = g_minus_delta(div, cases.p_exact[i], float(got[i]), float(cases.delta[i]))
            except ValueError:
                gd = math.inf
            n_sample += 1
            n_out += gd > 0

    n_inf = counts.get("infeasible", 0) + counts.get("outside [0, 1/p]", 0)
    n_cons = counts.get("conservative", 0)
    parts = []
    if n_fail:
        parts.append(
            f"{n_inf} infeasible (outside the trust region or [0, 1/p]), {n_cons} conservative, "
            f"{counts.get('NaN', 0) + counts.get('inf', 0)} non-finite of {len(checked)} ends "
            "over the bar"
        )
        worst_inf = [p for p in points if p.verdict == "infeasible"]
        if worst_inf:
            w = max(worst_inf, key=lambda p: p.g_minus_delta / p.delta)
            parts.append(
                f"worst: g−δ = {w.g_minus_delta:.3g} (= {w.g_minus_delta / w.delta:.2g}·δ) "
                f"at p={fmt_p(w.p, w.log_p)}, δ={w.delta:g}, {w.end}={fmt_val(w.got)}"
            )
    if n_sample:
        parts.append(f"{n_out} of {n_sample} sampled ends within the bar have g − δ > 0 (rounding)")
    status = FAIL if n_inf else PASS
    check = CheckResult(
        "feasibility",
        "feasibility g_f(p, bound) ≤ δ",
        dt,
        status,
        n_checked=len(checked) + n_sample,
        n_failed=n_inf,
        detail="; ".join(parts) or "no end over the bar",
    )
    note = None
    if n_fail > max_points:
        note = (
            f"{dt}: feasibility recomputed at {FEAS_DPS} digits for the {max_points} worst of "
            f"{n_fail} ends over the bar (subsample)"
        )
    return check, _spread(points, cases, n_worst), note, counts


def _spread(points: list[PointError], cases: CaseSet, n: int) -> list[PointError]:
    """The n worst points, taking the worst of each (region, end) first so that the list
    shows where in p the errors are, not n neighbours of one bad point."""
    from bandpo.testing.grids import region_index

    points = sorted(points, key=lambda p: -p.score)
    seen, first, rest = set(), [], []
    for p in points:
        key = (int(region_index(np.array([p.log_p]))[0]), p.end)
        (rest if key in seen else first).append(p)
        seen.add(key)
    return sorted(first[:n] + rest[: max(0, n - len(first))], key=lambda p: -p.score)


def cases_ref(cases: CaseSet, end: str, i: int) -> float:
    """The (post-processed) reference of one end."""
    return float((cases.expected_lower if end == "lower" else cases.expected_upper)[i])


def _pass_fail(
    name: str, title: str, dt: str, n_checked: int, failed: np.ndarray | int, detail: str
) -> CheckResult:
    """A check that passes exactly when nothing failed.

    ``failed`` is either the boolean mask of violations (counted here) or the count itself.
    """
    n_failed = int(failed.sum()) if isinstance(failed, np.ndarray) else int(failed)
    return CheckResult(name, title, dt, FAIL if n_failed else PASS, n_checked, n_failed, detail)


def _first_band(cases: CaseSet, bad: np.ndarray, got_lo: np.ndarray, got_up: np.ndarray) -> str:
    """``"e.g. p=…, δ=…: [lower, upper]"`` at the first flagged point, or "" when none is."""
    if not bad.any():
        return ""
    i = int(np.flatnonzero(bad)[0])
    return (
        f"e.g. p={fmt_p(cases.p[i], cases.log_p[i])}, δ={cases.delta[i]:g}: "
        f"[{fmt_val(got_lo[i])}, {fmt_val(got_up[i])}]"
    )


def invariants(
    cases: CaseSet,
    got_lo: np.ndarray,
    got_up: np.ndarray,
    err: EndErrors,
    tol: Tolerance,
    unchanged: np.ndarray,
) -> list[CheckResult]:
    """order, finite, simplex, monotone in p and δ, saturation."""
    dt = str(cases.dtype).replace("torch.", "")
    out: list[CheckResult] = []
    n = len(cases)
    valid = np.isfinite(cases.log_p)

    # ---- finite output where the band is finite
    ref_fin_lo = np.isfinite(cases.expected_lower)
    ref_fin_up = np.isfinite(cases.expected_upper)
    bad_fin = valid & ((ref_fin_lo & ~np.isfinite(got_lo)) | (ref_fin_up & ~np.isfinite(got_up)))
    detail = _first_band(cases, bad_fin, got_lo, got_up)
    out.append(_pass_fail("finite", "finite where the band is finite", dt, n, bad_fin, detail))

    # ---- order: 0 ≤ lower ≤ 1 ≤ upper (exact: r = 1 must never be clipped)
    with np.errstate(invalid="ignore"):
        fin = np.isfinite(got_lo) & ~np.isnan(got_up)
        bad = fin & ~((got_lo >= 0) & (got_lo <= 1) & (got_up >= 1))
    detail = _first_band(cases, bad, got_lo, got_up)
    swapped = int((fin & (got_lo > got_up)).sum())
    if detail and swapped:
        detail += f"; lower > upper at {swapped} points"
    out.append(_pass_fail("order", "0 ≤ lower ≤ 1 ≤ upper", dt, int(fin.sum()), bad, detail))

    # ---- simplex: upper ≤ 1/p (u·p ≤ 1 up to the bar; skipped where a transform changed it)
    with np.errstate(invalid="ignore", over="ignore"):
        sel = valid & np.isfinite(got_up) & unchanged
        prod = got_up * cases.p
        bad = sel & (prod > 1 + tol.rel)
    detail = ""
    if bad.any():
        i = int(np.flatnonzero(bad)[np.argmax(prod[bad])])
        detail = (
            f"worst: upper·p = {prod[i]:.6g} at p={fmt_p(cases.p[i], cases.log_p[i])}, "
            f"δ={cases.delta[i]:g} (upper {fmt_val(got_up[i])}, 1/p {fmt_val(cases.inv_p[i])})"
        )
    out.append(_pass_fail("simplex", "upper ≤ 1/p", dt, int(sel.sum()), bad, detail))

    # ---- monotone in p: r₋ non-decreasing, r₊ non-increasing (slack: twice the bar)
    slack = 2 * tol.rel
    abs_slack = 2 * tol.ulp * tol.tiny * tol.eps
    n_mono, n_bad, worst = 0, 0, None
    for _, idx in cases.groups():
        idx = idx[valid[idx]]
        for end, got, sign in (("lower", got_lo, +1), ("upper", got_up, -1)):
            a, b = got[idx[:-1]], got[idx[1:]]
            ok = np.isfinite(a) & np.isfinite(b) & (cases.log_p[idx[1:]] > cases.log_p[idx[:-1]])
            with np.errstate(invalid="ignore"):
                drop = sign * (a - b)  # > 0 is a violation
                lim = slack * np.maximum(np.abs(a), np.abs(b)) + abs_slack
                v = ok & (drop > lim)
            n_mono += int(ok.sum())
            n_bad += int(v.sum())
            if v.any() and worst is None:
                j = int(np.flatnonzero(v)[0])
                i0, i1 = idx[j], idx[j + 1]
                worst = (
                    f"{end} {'falls' if sign > 0 else 'rises'}: "
                    f"p={fmt_p(cases.p[i0], cases.log_p[i0])} → {fmt_val(a[j])}, "
                    f"p={fmt_p(cases.p[i1], cases.log_p[i1])} → {fmt_val(b[j])} "
                    f"(δ={cases.delta[i0]:g})"
                )
    out.append(_pass_fail("monotone-p", "monotone in p", dt, n_mono, n_bad, worst or ""))

    # ---- monotone in δ (when several δ): r₋ non-increasing, r₊ non-decreasing
    deltas = sorted(set(cases.delta.tolist()))
    if len(deltas) > 1:
        n_chk, n_bad, worst = 0, 0, None
        keys = {}
        for i in range(n):
            if valid[i]:
                keys.setdefault(cases.x[i], []).append(i)
        for idx in keys.values():
            idx = np.array(sorted(idx, key=lambda k: cases.delta[k]))
            for end, got, sign in (("lower", got_lo, -1), ("upper", got_up, +1)):
                a, b = got[idx[:-1]], got[idx[1:]]
                ok = np.isfinite(a) & np.isfinite(b)
                with np.errstate(invalid="ignore"):
                    v = ok & (sign * (a - b) > slack * np.maximum(abs(a), abs(b)) + abs_slack)
                n_chk += int(ok.sum())
                n_bad += int(v.sum())
                if v.any() and worst is None:
                    j = int(np.flatnonzero(v)[0])
                    worst = (
                        f"{end} at p={fmt_p(cases.p[idx[j]], cases.log_p[idx[j]])}: "
                        f"δ={cases.delta[idx[j]]:g} → {fmt_val(a[j])}, "
                        f"δ={cases.delta[idx[j + 1]]:g} → {fmt_val(b[j])}"
                    )
        out.append(_pass_fail("monotone-delta", "monotone in δ", dt, n_chk, n_bad, worst or ""))

    # ---- saturation: saturated ends exactly 0 (lower) / 1/p within the bar (upper)
    ls = cases.lower_sat & unchanged & valid
    us = cases.upper_sat & unchanged & valid
    ign_lo = ls & (got_lo != 0)
    ign_up = us & (err.score_up > 1)
    spur_lo = valid & unchanged & ~cases.lower_sat & (cases.expected_lower > 0) & (got_lo == 0)
    with np.errstate(invalid="ignore"):
        spur_up = (
            valid
            & unchanged
            & ~cases.upper_sat
            & (err.score_up > 1)
            & (np.abs(got_up - cases.inv_p) <= tol.rel * np.abs(cases.inv_p))
        )
    n_sat = int(ls.sum() + us.sum())
    parts = []
    if ign_lo.any():
        i = int(np.flatnonzero(ign_lo)[0])
        parts.append(
            f"lower not 0 at {int(ign_lo.sum())}/{int(ls.sum())} saturated ends "
            f"(p={fmt_p(cases.p[i], cases.log_p[i])}, δ={cases.delta[i]:g}: {fmt_val(got_lo[i])})"
        )
    if ign_up.any():
        i = int(np.flatnonzero(ign_up)[0])
        parts.append(
            f"upper not 1/p at {int(ign_up.sum())}/{int(us.sum())} saturated ends "
            f"(p={fmt_p(cases.p[i], cases.log_p[i])}, δ={cases.delta[i]:g}: "
            f"{fmt_val(got_up[i])} vs 1/p={fmt_val(cases.inv_p[i])})"
        )
    if spur_lo.any() or spur_up.any():
        parts.append(
            f"saturated where the band is not: {int(spur_lo.sum())} lower, "
            f"{int(spur_up.sum())} upper"
        )
    n_bad = int(ign_lo.sum() + ign_up.sum() + spur_lo.sum() + spur_up.sum())
    out.append(
        CheckResult(
            "saturation",
            "saturation exact (0, 1/p)",
            dt,
            FAIL if n_bad else (PASS if n_sat else SKIP),
            n_sat,
            n_bad,
            "; ".join(parts) if parts else ("" if n_sat else "no saturated end on this grid"),
        )
    )
    out[-1].counts = {
        "lower_ignored": int(ign_lo.sum()),
        "upper_ignored": int(ign_up.sum()),
        "lower_spurious": int(spur_lo.sum()),
        "upper_spurious": int(spur_up.sum()),
    }
    return out


def speed(
    call: Callable[[torch.Tensor], Any],
    dtype: torch.dtype,
    device: torch.device,
    n: int,
    min_time: float = 0.15,
) -> SpeedResult:
    """Wall time of ``call`` on n log p values, and its ratio to ``torch.exp`` on the same tensor.

    The input is log p uniform in [ln 1e-12, 0) (seeded), i.e. every decade equally often.  One
    warm-up call (compilation, caches), then repeats until ``min_time`` seconds have been spent
    (at least one).  Each repeat is bracketed by ``torch.exp`` timings (best of three, before and
    after), and the ratio is taken per repeat, so that a machine whose load drifts still gives a
    fair ratio; the reported ratio is the median over repeats, the time the best repeat.
    """
    gen = torch.Generator().manual_seed(0)
    lp = -torch.rand(n, generator=gen, dtype=torch.float64) * 27.631021
    x = lp.to(dtype).to(device)

    def once(f) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        f()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    def exp_time() -> float:
        return min(once(lambda: torch.exp(x)) for _ in range(3))

    call(x)  # warm-up
    torch.exp(x)
    best, best_exp, total, ratios = math.inf, math.inf, 0.0, []
    while not ratios or (total < min_time and len(ratios) < 50):
        before = exp_time()
        t = once(lambda: call(x))
        after = exp_time()
        t_exp = min(before, after)
        best, best_exp, total = min(best, t), min(best_exp, t_exp), total + t
        ratios.append(t / t_exp if t_exp > 0 else math.inf)
    return SpeedResult(
        dtype=str(dtype).replace("torch.", ""),
        device=str(device),
        n=n,
        seconds=best,
        elements_per_s=n / best if best > 0 else math.inf,
        exp_seconds=best_exp,
        ratio_to_exp=float(np.median(ratios)),
        threads=torch.get_num_threads(),
    )
