"""``check_solver`` and ``assert_solver``: run every check on a solver, then diagnose."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bandpo.divergences import Divergence, resolve_divergence
from bandpo.testing.adapters import SolverAdapter, SolverCallError, run_cases, solver_name
from bandpo.testing.checks import (
    accuracy,
    accuracy_check,
    feasibility,
    invariants,
    region_stats,
    speed,
)
from bandpo.testing.diagnose import diagnose
from bandpo.testing.extremes import p1_check, special_check, tiny_p_check
from bandpo.testing.grids import build_cases, resolve_deltas
from bandpo.testing.report import FAIL, PASS, WARN, CheckResult, SolverReport
from bandpo.tolerances import TOLERANCES, Tolerance, tolerance_for

__all__ = ["assert_solver", "check_solver"]


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
        cases.apply_transform(transform)
        n_changed_total += int((~cases.unchanged).sum())
        d = {"cases": cases, "err": None, "lo": None, "up": None, "feas_counts": {}}
        per_dtype[name] = d
        try:
            lo, up, outs = run_cases(adapter, cases, dev)
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
        report.checks.append(accuracy_check(cases, err, lo, up, name))
        report.checks += invariants(cases, lo, up, err, tol, cases.unchanged)
        feas, worst, note, counts = feasibility(
            div, cases, lo, up, err, tol, cases.unchanged, max_feasibility, n_worst
        )
        d["feas_counts"] = counts
        report.checks.append(feas)
        report.worst += worst
        if note:
            report.notes.append(note)
        report.checks.append(p1_check(cases, err, lo, up, name))
        if extremes:
            report.checks.append(
                tiny_p_check(adapter, div, deltas, dt, tol, is_log, dev, transform)
            )
            report.checks += special_check(adapter, -math.inf, deltas[0], dt, tol, is_log, dev)
            report.checks += special_check(adapter, math.nan, deltas[0], dt, tol, is_log, dev)
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
    report.findings = diagnose(per_dtype, report)
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
