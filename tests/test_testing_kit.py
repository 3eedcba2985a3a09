"""bandpo.testing: every kind of broken solver is caught *and named*; a correct one passes.

The correct solvers here are independent of the golden data they are checked against: ``tv`` from
its published closed form r± = 1 ± δ/p clamped to [0, 1/p] (BandPO Prop. 4), written from log p
with 1/p = exp(−log p) and 1 − p = −expm1(log p), and ``band_bounds`` (bandpo's torch solver).
Each broken solver is that correct one with one realistic defect injected.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bandpo.testing import (
    FINDING_CODES,
    SolverReport,
    assert_solver,
    cap_upper,
    check_solver,
    union_interval,
)
from bandpo.tolerances import tolerance_for

FAST = dict(speed_n=None)


# ------------------------------------------------------------------------- correct solvers
def tv_band(old_log_prob: torch.Tensor, delta: float):
    """TV band from the closed form, stable from log p; saturation exact (0 and 1/p)."""
    inv_p = torch.exp(-old_log_prob)
    q = -torch.expm1(old_log_prob)
    lower = torch.clamp(1 - delta * inv_p, min=0)
    upper = torch.where(delta >= q, inv_p, 1 + delta * inv_p)
    return lower, upper


def tv_band_numpy(log_p: np.ndarray, delta: float):
    """The same in numpy (fails on torch tensors: exercises the numpy fallback)."""
    if not isinstance(log_p, np.ndarray):
        raise TypeError("numpy arrays only")
    with np.errstate(over="ignore"):  # log p = -inf gives 1/p = inf, as it should
        inv_p = np.exp(-log_p)
    q = -np.expm1(log_p)
    return {
        "low": np.maximum(1 - delta * inv_p, 0),
        "high": np.where(delta >= q, inv_p, 1 + delta * inv_p),
    }


# -------------------------------------------------------------------------- broken solvers
def tv_wrong_constant(old_log_prob, delta):
    """Halves δ (the ½ of TV applied twice)."""
    return tv_band(old_log_prob, delta / 2)


def tv_swapped(old_log_prob, delta):
    """Returns (upper, lower)."""
    lower, upper = tv_band(old_log_prob, delta)
    return upper, lower


def tv_no_saturation(old_log_prob, delta):
    """r± = 1 ± δ/p without clamping to [0, 1/p]."""
    inv_p = torch.exp(-old_log_prob)
    return 1 - delta * inv_p, 1 + delta * inv_p


def chi2_cancelling(old_log_prob, delta):
    """Pearson χ² closed form r± = 1 ± sqrt(δ(1 − p)/p) with 1 − p = 1 − exp(log p)."""
    p = torch.exp(old_log_prob)
    q = 1 - p  # the bug: cancels as p -> 1
    s = torch.sqrt(delta * q / p)
    lower = torch.clamp(1 - s, min=0)
    upper = torch.where(delta >= q / p, 1 / p, 1 + s)
    return lower, upper


def tv_nan_leak(old_log_prob, delta):
    """Normalises by a batch-wide maximum: one NaN (or −inf) poisons every position."""
    inv_p = torch.exp(-old_log_prob)
    m = inv_p.max()
    lower, upper = tv_band(old_log_prob, delta)
    return lower, 1 + delta * m * (upper - 1) / (delta * m)


def tv_nan_swallow(old_log_prob, delta):
    """Replaces NaN by a number (nan_to_num), hiding bad input."""
    lower, upper = tv_band(old_log_prob, delta)
    return torch.nan_to_num(lower, nan=1.0), torch.nan_to_num(upper, nan=1.0)


def tv_autocast(old_log_prob, delta):
    """float32 input is computed in bfloat16 (as inside an autocast region); float64 is right."""
    if old_log_prob.dtype == torch.float32:
        lower, upper = tv_band(old_log_prob.to(torch.bfloat16), delta)
        return lower.float(), upper.float()
    return tv_band(old_log_prob, delta)


def tv_abs_tol(old_log_prob, delta):
    """Ends only resolved to an absolute 1e-6 (the midpoint of a 1e-6-wide bracket)."""
    lower, upper = tv_band(old_log_prob, delta)
    snap = lambda r: (torch.floor(r / 1e-6) + 0.5) * 1e-6  # noqa: E731
    return torch.where(lower > 0, snap(lower), lower), upper


def _codes(report: SolverReport) -> set[str]:
    assert set(report.codes) <= set(FINDING_CODES), report.codes
    return report.codes


# ---------------------------------------------------------------------------------- tests
def test_correct_tv_passes_every_check_in_both_dtypes():
    report = check_solver(tv_band, "tv", [0.01, 0.05, 0.5], **FAST)
    assert report.passed, report.render()
    assert report.codes == set()
    # every invariant actually ran on this grid: saturated ends exist for tv at these δ
    for name in ("order", "simplex", "monotone-p", "monotone-delta", "saturation", "p=1"):
        for dt in ("float64", "float32"):
            (c,) = report.check(name, dt)
            assert c.status == "pass" and c.n_checked > 0, c
    assert {c.name for c in report.checks} >= {"tiny-p", "-inf", "nan", "nan-isolation"}
    # errors are measured, not absent: the float32 rounding shows, far below the bar
    assert 0 < report.max_rel_error("float32") <= tolerance_for(torch.float32).rel


def test_band_bounds_passes_on_all_golden_deltas():
    band_bounds = pytest.importorskip("bandpo.solvers.band").band_bounds
    report = check_solver(band_bounds, "kl", "golden", **FAST)
    assert report.passed, report.render()
    assert report.adapter.startswith("fn(old_log_prob=log p, delta=δ, divergence=")


@pytest.mark.parametrize(
    ("solver", "divergence", "expected"),
    [
        (tv_wrong_constant, "tv", {"wrong-everywhere", "conservative"}),
        (tv_swapped, "tv", {"swapped-bounds"}),
        (tv_no_saturation, "tv", {"saturation-ignored", "simplex-violated", "order-violated"}),
        (chi2_cancelling, "chi2", {"p-to-1-cancellation", "float64-only"}),
        (tv_nan_leak, "tv", {"nan-leak"}),
        (tv_nan_swallow, "tv", {"nan-swallowed"}),
        (tv_autocast, "tv", {"float64-only"}),
        (tv_abs_tol, "tv", {"absolute-tolerance"}),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_broken_solver_is_caught_and_named(solver, divergence, expected):
    report = check_solver(solver, divergence, [0.05, 0.5], **FAST)
    assert not report.passed
    codes = _codes(report)
    assert expected <= codes, (expected - codes, report.render())
    # the named defect is visible in the plain-text table too
    text = str(report)
    for code in expected:
        assert code in text
    # ...and in the JSON-ready dict
    assert set(report.to_dict()["codes"]) == codes


def test_names_do_not_overreach():
    # a float32-only defect is not "wrong everywhere"; a p -> 1 bug is not a small-p bug
    autocast = check_solver(tv_autocast, "tv", 0.05, **FAST)
    assert "wrong-everywhere" not in autocast.codes
    loose = check_solver(tv_abs_tol, "tv", 0.05, **FAST)
    assert "wrong-everywhere" not in loose.codes
    cancel = check_solver(chi2_cancelling, "chi2", 0.05, **FAST)
    assert not {"small-p", "wrong-everywhere", "swapped-bounds"} & cancel.codes
    (acc64,) = cancel.check("accuracy", "float64")
    assert acc64.status == "pass"  # float64 keeps enough digits of 1 - exp(log p) here


def test_paper_bisection_defects_are_found():
    # the worked example of the README: bandpo's paper-style bisection baseline on kl
    paper_bisection = pytest.importorskip("bandpo.solvers.baselines").paper_bisection
    report = check_solver(paper_bisection, "kl", 0.05, **FAST)
    assert not report.passed
    assert {"absolute-tolerance", "p-to-1-cancellation", "p-equals-1", "tiny-p"} <= report.codes
    assert "wrong-everywhere" not in report.codes
    # float64 and float32 agree with the oracle in the well-conditioned middle
    for r in report.regions:
        if r.region == "0.1<=p<=0.9":
            assert r.n_fail == 0


def test_swapped_bounds_report_points_at_the_swap():
    report = check_solver(tv_swapped, "tv", 0.05, extremes=False, **FAST)
    (finding,) = [f for f in report.findings if f.code == "swapped-bounds"]
    assert "lower > upper" in finding.message
    assert report.check("order", "float64")[0].status == "fail"


def test_infeasible_is_distinguished_from_conservative():
    def too_wide(old_log_prob, delta):  # upper 1e-6 too high: outside the trust region
        lower, upper = tv_band(old_log_prob, delta)
        return lower, torch.minimum(upper * (1 + 1e-6), torch.exp(-old_log_prob))

    def too_narrow(old_log_prob, delta):  # upper 1e-6 too low: inside, merely conservative
        lower, upper = tv_band(old_log_prob, delta)
        return lower, 1 + (upper - 1) * (1 - 1e-6)

    wide = check_solver(too_wide, "tv", 0.05, dtypes=("float64",), extremes=False, **FAST)
    narrow = check_solver(too_narrow, "tv", 0.05, dtypes=("float64",), extremes=False, **FAST)
    assert "infeasible" in wide.codes and "conservative" not in wide.codes
    assert "conservative" in narrow.codes and "infeasible" not in narrow.codes
    assert all(w.g_minus_delta > 0 for w in wide.worst if w.verdict == "infeasible")
    assert all(w.g_minus_delta < 0 for w in narrow.worst if w.verdict == "conservative")


@settings(max_examples=6)
@given(
    rel=st.floats(min_value=0.02, max_value=0.5),
    factor=st.sampled_from([3.0, 30.0, 3e3]),
)
def test_bar_is_the_tolerance_table(rel, factor):
    # A uniform relative error passes exactly when it is under the dtype's bar.
    bar = tolerance_for(torch.float64).rel

    def scaled(eps):
        def solver(old_log_prob, delta):
            lower, upper = tv_band(old_log_prob, delta)
            return lower, upper * (1 - eps)  # conservative, never outside [0, 1/p]

        return solver

    kw = dict(dtypes=("float64",), extremes=False, speed_n=None)
    assert check_solver(scaled(rel * bar), "tv", 0.05, **kw).check("accuracy")[0].status == "pass"
    bad = check_solver(scaled(factor * bar), "tv", 0.05, **kw)
    assert bad.check("accuracy")[0].status == "fail"
    assert math.isclose(bad.max_rel_error(), factor * bar, rel_tol=0.05)


def test_tolerance_override_is_applied_and_reported():
    def sloppy(old_log_prob, delta):
        lower, upper = tv_band(old_log_prob, delta)
        return lower, 1 + (upper - 1) * (1 - 1e-9)

    kw = dict(dtypes=("float64",), extremes=False, speed_n=None)
    assert not check_solver(sloppy, "tv", 0.05, **kw).passed
    report = check_solver(sloppy, "tv", 0.05, tolerances={torch.float64: 1e-8}, **kw)
    assert report.passed
    assert report.tolerances["float64"]["source"] == "(overridden)"


def test_assert_solver_raises_with_the_table():
    assert isinstance(assert_solver(tv_band, "tv", 0.05, **FAST), SolverReport)
    with pytest.raises(AssertionError) as info:
        assert_solver(tv_swapped, "tv", 0.05, **FAST)
    msg = str(info.value)
    assert "order[float64]" in msg and "swapped-bounds" in msg and "max rel lower" in msg


def test_numpy_solver_with_dict_output_is_adapted():
    report = check_solver(tv_band_numpy, "tv", [0.05, 0.1], **FAST)
    assert report.passed, report.render()
    assert "numpy arrays" in report.adapter
    assert report.check("output", "float32")[0].status == "pass"  # float32 arrays back


def test_probability_input_and_keyword_signature():
    def by_prob(*, prob, radius):  # keyword-only, probability input
        return tv_band(torch.log(prob), radius)

    report = check_solver(
        by_prob, "tv", 0.05, input="prob", dtypes=("float64",), extremes=False, **FAST
    )
    # log(p) of a rounded p is not the golden log p: references come from the oracle at the
    # probability actually passed, so the solver still passes
    assert report.passed, report.render()
    assert "oracle_band at the exact input" in report.grid
    with pytest.raises(ValueError, match="input='prob'"):
        check_solver(lambda p, delta: tv_band(torch.log(p), delta), "tv", 0.05, **FAST)


def test_call_hook_and_tensor_delta():
    def solver(old_log_prob, delta_tensor):
        return tv_band(old_log_prob, delta_tensor)

    report = check_solver(
        solver,
        "tv",
        0.05,
        call=lambda fn, x, d: fn(x, torch.full_like(x, d)),
        dtypes=("float64",),
        **FAST,
    )
    assert report.passed, report.render()
    assert report.adapter.startswith("call= hook")


def test_transform_reapplies_the_callers_post_processing():
    def capped(old_log_prob, delta):
        lower, upper = tv_band(old_log_prob, delta)
        return lower, torch.clamp(upper, max=3.0)

    def relaxed(old_log_prob, delta):  # union with the Clip-Higher interval
        lower, upper = tv_band(old_log_prob, delta)
        return torch.clamp(lower, max=0.8), torch.clamp(upper, min=1.28)

    kw = dict(extremes=False, **FAST)
    assert not check_solver(capped, "tv", 0.05, **kw).passed
    report = check_solver(capped, "tv", 0.05, transform=cap_upper(3.0), **kw)
    assert report.passed, report.render()
    assert report.transform == "cap_upper(3)"
    assert any("changed by the transform" in n for n in report.notes)
    assert check_solver(relaxed, "tv", 0.05, transform=union_interval(0.8, 1.28), **kw).passed


def test_custom_grid_uses_oracle_references():
    grid = np.log([1e-20, 3e-7, 0.2, 0.5, 0.999999])
    report = check_solver(tv_band, "tv", 0.05, grid=grid, extremes=False, **FAST)
    assert report.passed, report.render()
    assert sum(r.n for r in report.regions if r.dtype == "float64") == grid.size
    with pytest.raises(ValueError, match="finite log p"):
        check_solver(tv_band, "tv", 0.05, grid=[0.5], **FAST)


def test_delta_off_the_golden_grid_takes_oracle_references():
    report = check_solver(tv_band, "tv", 0.07, extremes=False, **FAST)
    assert report.passed, report.render()
    assert "oracle_band at the exact input value" in report.grid
    # the threshold p = δ of tv's lower saturation moves with δ: saturation was checked there
    assert report.check("saturation", "float64")[0].n_checked > 0


def test_solver_that_raises_is_reported_not_crashed():
    def broken(old_log_prob, delta):
        raise ZeroDivisionError("bad")

    report = check_solver(broken, "tv", 0.05, extremes=False, **FAST)
    assert not report.passed and "solver-error" in report.codes
    assert "ZeroDivisionError" in str(report)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="delta"):
        check_solver(tv_band, "tv", -1.0)
    with pytest.raises(ValueError, match="dtypes"):
        check_solver(tv_band, "tv", 0.05, dtypes=("int32",))
    with pytest.raises(ValueError, match="input"):
        check_solver(tv_band, "tv", 0.05, input="logits")
    with pytest.raises(ValueError, match="unknown divergence"):
        check_solver(tv_band, "nope", 0.05)
    with pytest.raises(TypeError, match="callable"):
        check_solver(42, "tv", 0.05)


def test_report_renders_and_serialises():
    import json

    report = check_solver(tv_band, "tv", 0.05, speed_n=2**12)
    d = report.to_dict()
    json.dumps(d, allow_nan=False)  # strict JSON: non-finite numbers are strings
    assert d["passed"] is True and d["divergence"] == "tv"
    assert {r["region"] for r in d["regions"]} >= {"p<1e-9", "1-p<1e-6", "p=1"}
    (s64, s32) = report.speed
    assert s64.n == 2**12 and s64.elements_per_s > 0 and s32.ratio_to_exp > 0
    text = str(report)
    assert "accuracy, float32" in text and "elements/s" in text and "PASS" in text
    assert "SolverReport" in repr(report)


@pytest.mark.gpu
def test_cuda_inputs_and_speed_run_on_the_device():
    report = check_solver(tv_band, "tv", 0.05, device="cuda", speed_n=2**16)
    assert report.passed, report.render()
    assert report.device.startswith("cuda") and report.speed[0].device.startswith("cuda")
