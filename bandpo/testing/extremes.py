"""The extremes: p = 1, tiny p (1e-30, 1e-300), log p = −inf and NaN amid valid inputs.

Training batches carry all of these: tokens sampled with certainty (log p = 0), far-tail tokens,
and padded or masked positions holding −inf or NaN.  Each check calls the solver on a small batch
and compares with the oracle (tiny p), with the perspective band (p = 1), or with the convention
that p = 0 maps to (0, +inf) and NaN stays NaN at its own position only.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bandpo.testing.adapters import SolverCallError, run_cases
from bandpo.testing.checks import EndErrors, accuracy, score
from bandpo.testing.grids import P_ONE, CaseSet, build_cases, round_to_dtype
from bandpo.testing.report import FAIL, PASS, SKIP, WARN, CheckResult, fmt_p, fmt_val
from bandpo.tolerances import Tolerance

__all__ = ["TINY_LOG_P", "p1_check", "special_check", "tiny_p_check"]

#: log p of the tiny-p extremes (p = 1e-30 and 1e-300).
TINY_LOG_P = (math.log(1e-30), math.log(1e-300))
# Valid log p around the special value in the NaN / −inf batches.
_AROUND = (-0.6931471805599453, -4.605170185988091, -1e-3, -13.815510557964274)


def _name(dt: torch.dtype) -> str:
    return str(dt).replace("torch.", "")


def p1_check(cases: CaseSet, err: EndErrors, got_lo, got_up, dt: str) -> CheckResult:
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


def tiny_p_check(
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
    cases.apply_transform(transform)
    try:
        lo, up, _ = run_cases(adapter, cases, device)
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


def special_check(
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
