"""Findings: name the kind of defect that the checks' numbers show.

Each rule looks at where and how a solver misses (which p regions, which dtypes, absolute vs
relative size, sign of g_f − δ, the extremes) and adds a :class:`~bandpo.testing.report.Finding`
with a stable code from :data:`~bandpo.testing.report.FINDING_CODES`.  Rules are conservative:
a finding states the evidence it rests on in its message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from bandpo.testing.checks import EndErrors
from bandpo.testing.grids import NEAR_ONE, P_ONE, REGIONS, SMALL_P, CaseSet
from bandpo.testing.report import (
    FAIL,
    FINDING_CODES,
    WARN,
    CheckResult,
    Finding,
    SolverReport,
    fmt_err,
    fmt_p,
    fmt_val,
)

__all__ = ["diagnose"]


def _add(findings: list[Finding], code: str, message: str, dtypes: Iterable[str] = ()) -> None:
    findings.append(Finding(code, FINDING_CODES[code], message, tuple(dtypes)))


def diagnose(per_dtype: dict[str, dict[str, Any]], report: SolverReport) -> list[Finding]:
    findings: list[Finding] = []

    def failed(name: str) -> list[CheckResult]:
        return [c for c in report.checks if c.name == name and c.status == FAIL]

    if failed("call"):
        _add(
            findings,
            "solver-error",
            "; ".join(c.detail for c in failed("call")),
            [c.dtype for c in failed("call")],
        )

    # swapped bounds: lower > upper at most points where the band is not degenerate
    swapped = []
    for dt, d in per_dtype.items():
        c, lo, up = d["cases"], d["lo"], d["up"]
        if lo is None:  # the solver raised in this dtype
            continue
        sel = np.isfinite(c.log_p) & (c.expected_lower < c.expected_upper) & np.isfinite(lo)
        with np.errstate(invalid="ignore"):
            sw = sel & (lo > up)
        if sel.sum() and sw.sum() >= 0.5 * sel.sum():
            i = int(np.flatnonzero(sw)[0])
            swapped.append(dt)
            msg = (
                f"lower > upper at {int(sw.sum())} of {int(sel.sum())} points, e.g. "
                f"p={fmt_p(c.p[i], c.log_p[i])}, δ={c.delta[i]:g}: got "
                f"[{fmt_val(lo[i])}, {fmt_val(up[i])}], expected "
                f"[{fmt_val(c.expected_lower[i])}, {fmt_val(c.expected_upper[i])}]"
            )
    if swapped:
        _add(findings, "swapped-bounds", msg, swapped)
    elif failed("order"):
        _add(
            findings,
            "order-violated",
            failed("order")[0].detail,
            [c.dtype for c in failed("order")],
        )

    for name, code in (("finite", "non-finite"), ("simplex", "simplex-violated")):
        if failed(name):
            _add(findings, code, failed(name)[0].detail, [c.dtype for c in failed(name)])
    mono = failed("monotone-p") + failed("monotone-delta")
    if mono:
        _add(findings, "not-monotone", mono[0].detail, sorted({c.dtype for c in mono}))

    sat = failed("saturation")
    ign = [c for c in sat if c.counts.get("lower_ignored") or c.counts.get("upper_ignored")]
    spur = [c for c in sat if c.counts.get("lower_spurious") or c.counts.get("upper_spurious")]
    if ign:
        _add(findings, "saturation-ignored", ign[0].detail, [c.dtype for c in ign])
    if spur:
        _add(findings, "spurious-saturation", spur[0].detail, [c.dtype for c in spur])

    infeasible = [
        dt
        for dt, d in per_dtype.items()
        if d["feas_counts"].get("infeasible", 0) + d["feas_counts"].get("outside [0, 1/p]", 0)
    ]
    if infeasible:
        c = next(c for c in report.checks if c.name == "feasibility" and c.dtype == infeasible[0])
        _add(findings, "infeasible", c.detail, infeasible)
    conservative = [dt for dt, d in per_dtype.items() if d["feas_counts"].get("conservative", 0)]
    if conservative:
        n = sum(per_dtype[dt]["feas_counts"]["conservative"] for dt in conservative)
        _add(
            findings,
            "conservative",
            f"{n} ends over the bar lie inside the trust region (g − δ < 0): the band is "
            "narrower than it may be there, which clips updates the trust region allows",
            conservative,
        )

    # where in p the accuracy failures sit
    acc_fail = {
        dt: d
        for dt, d in per_dtype.items()
        if d["err"] is not None and (d["err"].fail & np.isfinite(d["cases"].log_p)).any()
    }
    acc_ok = [dt for dt, d in per_dtype.items() if d["err"] is not None and dt not in acc_fail]
    highest = next(
        (dt for dt in ("float64", "float32", "float16", "bfloat16") if dt in per_dtype), None
    )
    if "float64" in acc_ok and acc_fail:
        worst = {dt: report.max_rel_error(dt) for dt in acc_fail}
        _add(
            findings,
            "float64-only",
            "float64 meets its bar, but "
            + ", ".join(
                f"{dt} misses it (max rel error {fmt_err(v)}, bar "
                f"{report.tolerances[dt]['rel']:.3g})"
                for dt, v in worst.items()
            )
            + ": part of the computation runs below the input precision, or the method's "
            "accuracy does not scale with the dtype",
            list(acc_fail),
        )
    for dt, d in acc_fail.items():
        c, err = d["cases"], d["err"]
        # p = 1 has its own check; the shape of the failures over 0 < p < 1 names the defect
        fail = err.fail & np.isfinite(c.log_p) & (c.region != P_ONE)
        regs = set(c.region[fail].tolist())
        sc = np.maximum(err.score_lo, err.score_up)
        reg_max = {
            k: float(sc[c.region == k].max()) if (c.region == k).any() else 0.0
            for k in range(len(REGIONS))
        }
        n_reg = sum(1 for k in range(P_ONE) if (c.region == k).any())
        # A localised defect: the worst error in the p -> 1 (or small-p) decades is at least
        # ten times the bar and ten times the error of the well-conditioned 0.1 <= p <= 0.9.
        mid = max(reg_max[4], 1.0)
        near = [reg_max[k] for k in NEAR_ONE]
        if near[-1] > 10 * mid and near[-1] >= max(near) and near[1] >= near[0] / 2:
            _add(
                findings,
                "p-to-1-cancellation",
                f"{dt}: the worst error per decade of 1 − p grows as p → 1 ("
                + " → ".join(f"{v:.3g}×bar" for v in near)
                + f"; 0.1 ≤ p ≤ 0.9: {reg_max[4]:.3g}×bar): 1 − p formed as 1 − exp(log p) "
                "(or p rounded to 1 in the dtype) loses its digits; use −expm1(log p)",
                [dt],
            )
        small = [k for k in (*SMALL_P, 3) if reg_max[k] > 10 * mid]
        if small:
            _add(
                findings,
                "small-p",
                f"{dt}: misses the bar at small p ("
                + ", ".join(f"{REGIONS[k].label}: {reg_max[k]:.3g}×bar" for k in small)
                + f") far more than at 0.1 ≤ p ≤ 0.9 ({reg_max[4]:.3g}×bar)",
                [dt],
            )
        cancelled = any(f.code == "p-to-1-cancellation" and dt in f.dtypes for f in findings)
        loose = _abs_tolerance(findings, dt, c, err, exclude=set(NEAR_ONE) if cancelled else set())
        if not loose and dt == highest and len(regs) >= 4 and reg_max[4] > 10:
            _add(
                findings,
                "wrong-everywhere",
                f"{dt} misses the bar in {len(regs)} of {n_reg} regions of 0 < p < 1, the "
                f"well-conditioned 0.1 ≤ p ≤ 0.9 included ({reg_max[4]:.3g}×bar there; "
                f"{int(fail.sum())} of "
                f"{int(np.isfinite(c.log_p).sum())} cases): a wrong formula or constant, not a "
                "numerical edge case",
                [dt],
            )

    for name, code in (("p=1", "p-equals-1"), ("tiny-p", "tiny-p"), ("-inf", "minus-inf")):
        if failed(name):
            _add(findings, code, failed(name)[0].detail, [c.dtype for c in failed(name)])
    coupled = [
        c
        for c in report.checks
        if c.name in ("nan-isolation", "-inf-isolation") and c.status == WARN
    ]
    if coupled:
        _add(
            findings,
            "batch-coupling",
            f"{coupled[0].detail} when a {'NaN' if coupled[0].name == 'nan-isolation' else '−inf'}"
            " joined the batch: results depend on the other elements (a batch-wide stopping "
            "rule or normalisation), so the same token gets different bounds in different batches",
            sorted({c.dtype for c in coupled}),
        )
    leaks = failed("nan-isolation") + failed("-inf-isolation")
    if leaks:
        _add(
            findings,
            "nan-leak",
            leaks[0].detail + f" ({leaks[0].title})",
            sorted({c.dtype for c in leaks}),
        )
    if failed("nan"):
        _add(findings, "nan-swallowed", failed("nan")[0].detail, [c.dtype for c in failed("nan")])
    return findings


def _abs_tolerance(findings, dt, c: CaseSet, err: EndErrors, exclude: set[int]) -> bool:
    """Flag failures that are all small in absolute terms (≤ 1e-4): the relative error then
    comes from dividing a fixed absolute error by a small bound, the signature of an absolute
    stopping tolerance.  Returns whether the finding was added."""
    refs, rels, abss = [], [], []
    for ref, rel, ab, sc in (
        (c.expected_lower, err.rel_lo, err.abs_lo, err.score_lo),
        (c.expected_upper, err.rel_up, err.abs_up, err.score_up),
    ):
        sel = (sc > 1) & np.isfinite(ab) & np.isfinite(c.log_p) & (c.region != P_ONE)
        sel &= ~np.isin(c.region, list(exclude))
        refs.append(np.abs(ref[sel]))
        rels.append(rel[sel])
        abss.append(ab[sel])
    ref, rel, ab = np.concatenate(refs), np.concatenate(rels), np.concatenate(abss)
    if len(ab) < 8 or float(ab.max()) > 1e-4:
        return False
    a_max = float(ab.max())
    msg = (
        f"{dt}: every end over the bar ({len(ab)}) is within {a_max:.2g} of the reference in "
        "absolute terms"
    )
    has_rel = np.isfinite(rel) & (rel > 0)
    if has_rel.any():
        i = int(np.argmax(np.where(has_rel, rel, -1)))
        msg += f", yet the relative error reaches {rel[i]:.3g} (at a bound of {ref[i]:.3g})"
    n_zero = int((ref == 0).sum())
    if n_zero:
        msg += (
            f"; {n_zero} bounds that underflow to 0 come back as ≈{float(ab[ref == 0].max()):.2g}"
        )
    msg += (
        ": the signature of an absolute stopping tolerance (or a fixed number of bisection "
        "steps), which cannot resolve small bounds relative to their size"
    )
    _add(findings, "absolute-tolerance", msg, [dt])
    return True
