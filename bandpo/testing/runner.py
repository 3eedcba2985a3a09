"""``check_solver`` and ``assert_solver``: run every check on a solver and diagnose what broke."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bandpo.divergences import Divergence, resolve_divergence
from bandpo.testing.adapters import SolverAdapter, SolverCallError, solver_name
from bandpo.testing.checks import (
    EndErrors,
    accuracy,
    feasibility,
    invariants,
    region_stats,
    score,
    speed,
)
from bandpo.testing.grids import (
    NEAR_ONE,
    P_ONE,
    REGIONS,
    SMALL_P,
    CaseSet,
    build_cases,
    resolve_deltas,
    round_to_dtype,
)
from bandpo.testing.report import (
    FAIL,
    FINDING_CODES,
    PASS,
    SKIP,
    WARN,
    CheckResult,
    Finding,
    SolverReport,
    fmt_err,
    fmt_p,
    fmt_val,
)
from bandpo.tolerances import TOLERANCES, Tolerance, tolerance_for

__all__ = ["assert_solver", "check_solver"]

#: log p of the tiny-p extremes (p = 1e-30 and 1e-300).
TINY_LOG_P = (math.log(1e-30), math.log(1e-300))
# Valid log p around the special value in the NaN / −inf batches.
_AROUND = (-0.6931471805599453, -4.605170185988091, -1e-3, -13.815510557964274)


def _dtype(d: Any) -> torch.dtype:
    if isinstance(d, torch.dtype):
        dt = d
    elif isinstance(d, str):
        dt = getattr(torch, d.replace("torch.", ""), None)
        if not isinstance(dt, torch.dtype):
            raise ValueError(f"dtypes: unknown dtype {d!r}")
    else:
        raise TypeError(f"dtypes must hold torch dtypes or their names, got {d!r}")
    if dt not in TOLERANCES:
        raise ValueError(
            f"dtypes: {dt} is not a floating dtype with a tolerance; use one of "
            f"{', '.join(str(k).replace('torch.', '') for k in TOLERANCES)}"
        )
    return dt


def _tolerances(
    dtypes: Sequence[torch.dtype], overrides: Mapping[Any, Any] | None
) -> dict[torch.dtype, tuple[Tolerance, str]]:
    out = {dt: (tolerance_for(dt), "") for dt in dtypes}
    for k, v in (overrides or {}).items():
        dt = _dtype(k)
        if dt not in out:
            continue
        base = tolerance_for(dt)
        if isinstance(v, Tolerance):
            tol = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            tol = Tolerance(dt, float(v), float(v) / base.eps, base.eps, base.tiny)
        else:
            raise ValueError(f"tolerances[{k!r}] must be a Tolerance or a relative error > 0")
        out[dt] = (tol, "(overridden)")
    return out


def _name(dt: torch.dtype) -> str:
    return str(dt).replace("torch.", "")


def _run_cases(
    adapter: SolverAdapter, cases: CaseSet, device: torch.device
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Call the solver once per δ on all inputs of that δ; returns (lower, upper, outputs)."""
    n = len(cases)
    lo = np.full(n, np.nan)
    up = np.full(n, np.nan)
    outs = []
    for d, idx in cases.groups():
        x = torch.as_tensor(cases.x[idx], dtype=torch.float64).to(cases.dtype).to(device)
        out = adapter(x, d)
        lo[idx], up[idx] = out.lower, out.upper
        outs.append(out)
    return lo, up, outs


def _apply_transform(cases: CaseSet, transform: Callable | None) -> None:
    cases.expected_lower = cases.lower_ref.copy()
    cases.expected_upper = cases.upper_ref.copy()
    cases.unchanged = np.ones(len(cases), dtype=bool)
    if transform is None:
        return
    dt = cases.dtype
    lo = torch.as_tensor(cases.lower_ref).to(dt)
    up = torch.as_tensor(cases.upper_ref).to(dt)
    lp = torch.as_tensor(cases.log_p).to(dt)
    new_lo, new_up = transform(lo, up, lp)
    new_lo = torch.as_tensor(new_lo).to(torch.float64).numpy()
    new_up = torch.as_tensor(new_up).to(torch.float64).numpy()
    same = lambda a, b: (a == b) | (np.isnan(a) & np.isnan(b))  # noqa: E731
    cases.unchanged = same(new_lo, cases.lower_ref) & same(new_up, cases.upper_ref)
    cases.expected_lower, cases.expected_upper = new_lo, new_up


def _accuracy_check(cases: CaseSet, err: EndErrors, got_lo, got_up, dt: str) -> CheckResult:
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


def _p1_check(cases: CaseSet, err: EndErrors, got_lo, got_up, dt: str) -> CheckResult:
    sel = cases.region == P_ONE
    if not sel.any():
        return CheckResult("p=1", "p = 1 (perspective band)", dt, SKIP, 0, 0, "not on the grid")
    bad = sel & err.fail
    i = int(np.flatnonzero(bad)[0]) if bad.any() else int(np.flatnonzero(sel)[0])
    detail = (
        f"δ={cases.delta[i]:g}: got [{fmt_val(got_lo[i])}, {fmt_val(got_up[i])}], "
        f"expected [{fmt_val(cases.expected_lower[i])}, {fmt_val(cases.expected_upper[i])}]"
    )
    return CheckResult(
        "p=1",
        "p = 1 (perspective band)",
        dt,
        FAIL if bad.any() else PASS,
        int(sel.sum()),
        int(bad.sum()),
        detail,
    )


def _tiny_p_check(
    adapter, div, deltas, dt: torch.dtype, tol: Tolerance, is_log: bool, device, transform
) -> CheckResult:
    name = _name(dt)
    usable = []
    skipped = []
    for lp in TINY_LOG_P:
        label = f"{math.exp(lp):.0e}"
        if not is_log:
            pv = round_to_dtype(math.exp(lp), dt)
            if pv < tol.tiny:
                skipped.append(label)
                continue
        usable.append(lp)
    if not usable:
        return CheckResult(
            "tiny-p",
            "tiny p (1e-30, 1e-300)",
            name,
            SKIP,
            0,
            0,
            f"p = {', '.join(skipped)} not representable as a normal {name}",
        )
    cases = build_cases(div, np.array(usable), deltas, dt, is_log=is_log)
    _apply_transform(cases, transform)
    try:
        lo, up, _ = _run_cases(adapter, cases, device)
    except SolverCallError as err:
        return CheckResult(
            "tiny-p", "tiny p (1e-30, 1e-300)", name, FAIL, len(cases), len(cases), str(err)
        )
    err = accuracy(cases, lo, up, cases.expected_lower, cases.expected_upper, tol)
    with np.errstate(invalid="ignore"):
        order_bad = ~((lo >= 0) & (lo <= 1) & (up >= 1))
    bad = err.fail | order_bad
    sc = np.maximum(err.score_lo, err.score_up)
    i = int(np.argmax(np.where(bad, sc, -1))) if bad.any() else int(np.argmax(sc))
    detail = (
        f"worst p={fmt_p(cases.p[i], cases.log_p[i])}, δ={cases.delta[i]:g}: got "
        f"[{fmt_val(lo[i])}, {fmt_val(up[i])}], expected [{fmt_val(cases.expected_lower[i])}, "
        f"{fmt_val(cases.expected_upper[i])}]"
    )
    if skipped:
        detail += f"; p = {', '.join(skipped)} skipped (not representable)"
    return CheckResult(
        "tiny-p",
        "tiny p (1e-30, 1e-300)",
        name,
        FAIL if bad.any() else PASS,
        len(cases),
        int(bad.sum()),
        detail,
    )


def _special_check(
    adapter, special: float, delta: float, dt: torch.dtype, tol: Tolerance, is_log: bool, device
) -> list[CheckResult]:
    """log p = −inf (p = 0) or NaN amid valid inputs: its own result and no leakage."""
    name = _name(dt)
    key = "nan" if math.isnan(special) else "-inf"
    title = "NaN propagation" if key == "nan" else "log p = −inf → (0, inf)"
    base = torch.tensor(_AROUND, dtype=torch.float64)
    if not is_log:
        base = torch.exp(base)
        special_in = math.nan if key == "nan" else 0.0
    else:
        special_in = special
    k = 2
    batch = torch.cat([base[:k], torch.tensor([special_in], dtype=torch.float64), base[k:]])
    try:
        ref = adapter(base.to(dt), delta)
    except SolverCallError as err:
        return [CheckResult(key, title, name, FAIL, 1, 1, f"on valid input: {err}")]
    try:
        out = adapter(batch.to(dt), delta)
    except SolverCallError as err:
        return [
            CheckResult(
                key,
                title,
                name,
                WARN,
                1,
                0,
                f"raised ({err}); callers must mask these positions before calling",
            )
        ]
    lo_s, up_s = float(out.lower[k]), float(out.upper[k])
    others_lo = np.delete(out.lower, k)
    others_up = np.delete(out.upper, k)
    leak = (np.isnan(others_lo) & ~np.isnan(ref.lower)) | (
        np.isnan(others_up) & ~np.isnan(ref.upper)
    )
    s_lo, _, _ = score(others_lo, ref.lower, tol)
    s_up, _, _ = score(others_up, ref.upper, tol)
    changed = ((s_lo > 1) | (s_up > 1)) & ~leak
    results = []
    if key == "nan":
        both = math.isnan(lo_s) and math.isnan(up_s)
        status = PASS if both else FAIL
        detail = f"NaN in → [{fmt_val(lo_s)}, {fmt_val(up_s)}]"
        results.append(
            CheckResult("nan", "NaN in gives NaN out", name, status, 1, 0 if both else 1, detail)
        )
    else:
        ok = lo_s == 0 and up_s == math.inf
        status = PASS if ok else (FAIL if (math.isnan(lo_s) or math.isnan(up_s)) else WARN)
        detail = f"{'log p' if is_log else 'p'} = {special_in} → [{fmt_val(lo_s)}, {fmt_val(up_s)}]"
        results.append(
            CheckResult("-inf", "log p = −inf → (0, inf)", name, status, 1, 0 if ok else 1, detail)
        )
    if leak.any():
        status, detail = FAIL, f"NaN at {int(leak.sum())} of {len(leak)} other positions"
    elif changed.any():
        status, detail = WARN, f"{int(changed.sum())} other positions changed beyond the bar"
    else:
        status, detail = PASS, "other positions unchanged"
    results.append(
        CheckResult(
            f"{key}-isolation",
            f"{'NaN' if key == 'nan' else '−inf'} stays at its position",
            name,
            status,
            len(leak),
            int(leak.sum() + changed.sum()),
            detail,
        )
    )
    return results


# ----------------------------------------------------------------------------- diagnosis


def _add(findings: list[Finding], code: str, message: str, dtypes: Iterable[str] = ()) -> None:
    findings.append(Finding(code, FINDING_CODES[code], message, tuple(dtypes)))


def _diagnose(per_dtype: dict[str, dict[str, Any]], report: SolverReport) -> list[Finding]:
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


# ---------------------------------------------------------------------------------- runner


def check_solver(
    fn: Callable[..., Any],
    divergence: str | Divergence = "kl",
    delta: float | Sequence[float] | str = 0.05,
    *,
    input: str = "log_prob",
    dtypes: Sequence[torch.dtype | str] = (torch.float64, torch.float32),
    device: str | torch.device = "cpu",
    grid: str | Sequence[float] | np.ndarray = "golden",
    transform: Callable | None = None,
    tolerances: Mapping[Any, Any] | None = None,
    array: str = "auto",
    call: Callable[..., Any] | None = None,
    fn_kwargs: Mapping[str, Any] | None = None,
    extremes: bool = True,
    speed_n: int | None = 2**16,
    max_feasibility: int = 256,
    n_worst: int = 6,
    **params: Any,
) -> SolverReport:
    """Check a Band solver against bandpo's golden data and the oracle.

    The band is Band_f(p, δ) = {r ∈ [0, 1/p] : g_f(p, r) ≤ δ} with
    g_f(p, r) = p·f(r) + (1 − p)·f((1 − r·p)/(1 − p))  (BandPO, arXiv 2603.04918).

    Args:
        fn: The solver: maps old log-probabilities (``input="prob"``: probabilities) and δ to
            (lower, upper).  See :mod:`bandpo.testing.adapters` for the signatures, array types
            and result shapes accepted.
        divergence: Registry name or :class:`~bandpo.divergences.Divergence`.
        delta: δ, a sequence of δ, or ``"golden"`` (every golden δ).  Golden δ use the stored
            tables; any other δ takes its references from the oracle.
        input: ``"log_prob"`` or ``"prob"``.
        dtypes: Dtypes to call the solver in (torch dtypes or names).
        device: Torch device of the inputs.
        grid: ``"golden"`` (the golden log p grid, p from 1e-12 to 1 − 1e-9 plus p = 1), or an
            array of log p values (references from the oracle at the exact input value).
        transform: ``transform(lower, upper, log_p) -> (lower, upper)`` applied to the reference,
            re-creating the caller's post-processing (see :mod:`bandpo.testing.transforms`).
        tolerances: Overrides, dtype -> :class:`~bandpo.tolerances.Tolerance` or relative error;
            the default is :data:`bandpo.tolerances.TOLERANCES`.
        array: ``"torch"``, ``"numpy"`` or ``"auto"``.
        call: ``call(fn, x, delta) -> band`` to call the solver yourself.
        fn_kwargs: Extra keyword arguments for every call.
        extremes: Check tiny p (1e-30, 1e-300), log p = −inf and NaN.
        speed_n: Elements of the speed measurement (``None`` skips it).
        max_feasibility: Most ends per dtype whose g_f(p, bound) − δ is recomputed (worst first).
        n_worst: Worst points listed per dtype.
        **params: Divergence parameters, e.g. ``alpha=0.5``.

    Returns:
        A :class:`~bandpo.testing.report.SolverReport`; ``report.passed`` is the verdict.

    Notes:
        Accuracy bars come from :mod:`bandpo.tolerances` (float64: relative 1e-12; float32:
        8 ulp), measured against the reference rounded once to the dtype.  Monotonicity allows
        twice the bar between neighbours (the true steps near p = 1 are below one float32 ulp).
        ``lower ≤ 1 ≤ upper`` is exact: a band that excludes r = 1 clips an unchanged policy.
    """
    div = resolve_divergence(divergence, **params)
    deltas = resolve_deltas(delta)
    if input not in ("log_prob", "prob"):
        raise ValueError(f"input must be 'log_prob' or 'prob', got {input!r}")
    if isinstance(dtypes, (str, torch.dtype)):
        dtypes = (dtypes,)
    dts = [_dtype(d) for d in dtypes]
    if not dts:
        raise ValueError("dtypes must name at least one dtype")
    dev = torch.device(device)
    tols = _tolerances(dts, tolerances)
    if isinstance(grid, str):
        if grid != "golden":
            raise ValueError(f"grid must be 'golden' or an array of log p, got {grid!r}")
        grid_arr = None
    else:
        grid_arr = np.asarray(grid, dtype=np.float64).ravel()
        if grid_arr.size == 0 or not (np.isfinite(grid_arr).all() and (grid_arr <= 0).all()):
            raise ValueError(
                "grid must be 'golden' or a non-empty array of finite log p <= 0 "
                "(NaN and -inf are checked separately, see extremes=)"
            )
    if speed_n is not None and (not isinstance(speed_n, int) or speed_n < 1):
        raise ValueError(f"speed_n must be a positive int or None, got {speed_n!r}")
    is_log = input == "log_prob"

    adapter = SolverAdapter(
        fn,
        input=input,
        array=array,
        call=call,
        divergence=div,
        params=div.params,
        fn_kwargs=dict(fn_kwargs or {}),
        device=dev,
    )
    if not adapter.takes_delta and len(deltas) > 1:
        raise ValueError(
            f"{solver_name(fn)} takes no delta argument, so only one delta can be checked; "
            "name its parameter 'delta' or pass call="
        )

    report = SolverReport(
        solver=solver_name(fn),
        divergence=div.display_name,
        deltas=deltas,
        grid="",
        input=input,
        adapter="",
        device=str(dev),
        dtypes=tuple(_name(d) for d in dts),
        tolerances={
            _name(dt): {"rel": t.rel, "ulp": t.ulp, "source": src} for dt, (t, src) in tols.items()
        },
        transform=getattr(transform, "__name__", repr(transform)) if transform else None,
    )
    per_dtype: dict[str, dict[str, Any]] = {}
    sources = set()
    n_changed_total = 0
    for dt in dts:
        name = _name(dt)
        tol = tols[dt][0]
        cases = build_cases(div, grid_arr, deltas, dt, is_log=is_log)
        sources.add(cases.source)
        _apply_transform(cases, transform)
        n_changed_total += int((~cases.unchanged).sum())
        d = {"cases": cases, "err": None, "lo": None, "up": None, "feas_counts": {}}
        per_dtype[name] = d
        try:
            lo, up, outs = _run_cases(adapter, cases, dev)
        except SolverCallError as err:
            report.checks.append(CheckResult("call", "solver call", name, FAIL, 1, 1, str(err)))
            continue
        d["lo"], d["up"] = lo, up
        # output conventions
        odt = {o.dtype for o in outs}
        probs = []
        if odt != {name}:
            probs.append(f"returns {'/'.join(sorted(odt))} for {name} input")
        if any(o.requires_grad for o in outs):
            probs.append("outputs require grad (bounds should be detached)")
        if adapter._mode == "torch" and any(o.device not in (str(dev), "numpy") for o in outs):
            probs.append(f"outputs on {outs[0].device}, input on {dev}")
        report.checks.append(
            CheckResult(
                "output",
                "output dtype/device/grad",
                name,
                WARN if probs else PASS,
                len(outs),
                len(probs),
                "; ".join(probs),
            )
        )
        err = accuracy(cases, lo, up, cases.expected_lower, cases.expected_upper, tol)
        d["err"] = err
        report.regions += region_stats(cases, err, name)
        report.checks.append(_accuracy_check(cases, err, lo, up, name))
        report.checks += invariants(cases, lo, up, err, tol, cases.unchanged)
        feas, worst, note, counts = feasibility(
            div, cases, lo, up, err, tol, cases.unchanged, max_feasibility, n_worst
        )
        d["feas_counts"] = counts
        report.checks.append(feas)
        report.worst += worst
        if note:
            report.notes.append(note)
        report.checks.append(_p1_check(cases, err, lo, up, name))
        if extremes:
            report.checks.append(
                _tiny_p_check(adapter, div, deltas, dt, tol, is_log, dev, transform)
            )
            report.checks += _special_check(adapter, -math.inf, deltas[0], dt, tol, is_log, dev)
            report.checks += _special_check(adapter, math.nan, deltas[0], dt, tol, is_log, dev)
        if speed_n:
            d0 = deltas[0]

            def run(x, _d0=d0):
                return adapter(x if is_log else torch.exp(x), _d0)

            try:
                report.speed.append(speed(run, dt, dev, speed_n))
            except SolverCallError as err:
                report.checks.append(
                    CheckResult("speed", "speed", name, WARN, 1, 1, f"speed run raised: {err}")
                )

    report.adapter = adapter.describe()
    n_cases = len(next(iter(per_dtype.values()))["cases"])
    where = {
        "golden": "golden tables (36-digit oracle values rounded once to each dtype)",
        "oracle": "oracle_band at the exact input value, rounded once to each dtype",
        "golden+oracle": "golden tables, and oracle_band at the exact input where not tabulated",
    }
    grid_txt = (
        "golden log p grid (p from 1e-12 to 1 − 1e-9, and p = 1)"
        if grid_arr is None
        else f"{grid_arr.size} custom log p values"
    )
    report.grid = f"{grid_txt}, {n_cases} cases per dtype; references from " + "; ".join(
        where[s] for s in sorted(sources)
    )
    if not is_log:
        report.notes.append(
            "input='prob': p is rounded to each dtype (float32 rounds p within 3e-8 of 1 to "
            "exactly 1) and every reference is the oracle at that exact p"
        )
    if transform is not None:
        report.notes.append(
            f"{n_changed_total} cases changed by the transform: compared with the transformed "
            "reference; simplex, saturation and feasibility are not checked there"
        )
    report.worst.sort(key=lambda w: (report.dtypes.index(w.dtype), -w.score))
    report.findings = _diagnose(per_dtype, report)
    return report


def assert_solver(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> SolverReport:
    """Like :func:`check_solver`, but raise ``AssertionError`` (carrying the report's table)
    when any check fails.  Returns the report when all pass.
    """
    report = check_solver(fn, *args, **kwargs)
    if not report.passed:
        names = ", ".join(sorted({f"{c.name}[{c.dtype}]" for c in report.failures}))
        raise AssertionError(
            f"{report.solver} fails bandpo.testing checks: {names}\n\n{report.render()}"
        )
    return report
