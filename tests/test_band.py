"""band_bounds against the golden tables and the mpmath oracle, its extremes and its contract.

References: the golden tables (``scripts/make_golden.py``: ``oracle_band`` at 50 digits, stored
with 36) and, for points off the grid, ``oracle_band`` at the exact input value.  Bars come from
``bandpo.tolerances`` only.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from bandpo.divergences import divergence_names, get_divergence
from bandpo.golden import GOLDEN_DELTAS, golden_divergences, load_golden
from bandpo.solvers._band_closed import closed_match
from bandpo.solvers.band import Band, band_bounds
from bandpo.solvers.oracle import oracle_band
from bandpo.tolerances import tolerance_for

GOLDEN = golden_divergences()
IDS = [d.key for d in GOLDEN]

# Known gap, measured and reported (see README "band_bounds" / known gaps): the generic root
# finder evaluates g_f through the registry's float64 f_torch, whose absolute rounding near
# f(0⁺) limits r₋ right at the lower-end saturation threshold of a finite-f(0⁺) divergence.
# kl_reverse at p = δ = 1e-4 (exactly its threshold, up to the float32 rounding of log p) is
# 2.6e-12 off, above the 1e-12 bar.  The test stays strict and is expected to fail there.
KNOWN_FLOAT64_GAPS = {"kl_reverse"}


def _solve_table(div, dtype):
    """band_bounds on a whole golden table, one call per δ (a Python-number δ, as in training)."""
    t = load_golden(div)
    lo = np.zeros(len(t))
    up = np.zeros(len(t))
    for d in GOLDEN_DELTAS:
        m = t.delta == d
        b = band_bounds(torch.tensor(t.log_p[m], dtype=dtype), d, div)
        lo[m] = b.lower.double().numpy()
        up[m] = b.upper.double().numpy()
    return t, lo, up


def _rel_errors(got, ref, tiny):
    m = np.isfinite(ref) & (np.abs(ref) >= tiny)
    return np.abs(got[m] - ref[m]) / np.abs(ref[m]), m


@pytest.mark.parametrize(
    "div",
    [
        pytest.param(d, marks=pytest.mark.xfail(strict=True, reason="known near-threshold gap"))
        if d.key in KNOWN_FLOAT64_GAPS
        else d
        for d in GOLDEN
    ],
    ids=IDS,
)
def test_golden_float64(div):
    tol = tolerance_for(torch.float64)
    t, lo, up = _solve_table(div, torch.float64)
    for got, ref, ref_str in ((lo, t.lower, t.lower_str), (up, t.upper, t.upper_str)):
        rel, _ = _rel_errors(got, ref, tol.tiny)
        assert rel.max() <= tol.rel, f"worst relative error {rel.max():.3g}"
        # bounds that underflow float64 come out exactly 0; +inf only where the reference is
        zero = ref == 0
        assert np.all(got[zero] == 0), "a bound below the float64 range must be 0"
        assert np.all(np.isinf(got) == np.isinf(ref))
        # the string column is the truth: ref == 0 only where the true value underflows
        assert all(mpmath.mpf(s) < 1e-300 for s, z in zip(ref_str, zero, strict=True) if z)


@pytest.mark.parametrize("div", GOLDEN, ids=IDS)
def test_golden_float32_ulp(div):
    """float32 in, float32 out: within 8 ulp of the reference rounded once to float32."""
    tol = tolerance_for(torch.float32)
    t, lo, up = _solve_table(div, torch.float32)
    ref_lo, ref_up = t.reference(torch.float32)
    for got, ref in ((lo, ref_lo), (up, ref_up)):
        ref = ref.astype(np.float64)
        m = np.isfinite(ref) & (np.abs(ref) >= tol.tiny)
        ulps = np.abs(got[m] - ref[m]) / np.spacing(np.abs(ref[m]).astype(np.float32))
        assert ulps.max() <= tol.ulp, f"worst error {ulps.max():.2f} ulp"
        # below float32's normal range the reference rounds to 0 or a subnormal: so must we
        small = np.isfinite(ref) & (np.abs(ref) < tol.tiny)
        assert np.all(
            np.abs(got[small] - ref[small]) <= float(np.finfo(np.float32).smallest_subnormal)
        )
        assert np.all(np.isinf(got) == np.isinf(ref))


@pytest.mark.parametrize("div", GOLDEN, ids=IDS)
def test_golden_saturation_exact(div):
    """Saturated ends are exactly 0 and exactly 1/p (the dtype's rounding of 1/p)."""
    t, lo, up = _solve_table(div, torch.float64)
    assert np.all(lo[t.lower_saturated] == 0.0)
    inv_p = torch.exp(-torch.tensor(t.log_p)).numpy()
    assert np.all(up[t.upper_saturated] == inv_p[t.upper_saturated])
    # unsaturated ends stay inside (they may round to 1/p, as the reference does near p = 1)
    unsat = ~t.upper_saturated & (t.log_p < 0)
    assert np.all(up[unsat] <= inv_p[unsat])
    at_cap = unsat & (up == inv_p)
    assert np.all(np.abs(t.upper[at_cap] - inv_p[at_cap]) <= 2 * np.spacing(inv_p[at_cap]))


# ------------------------------------------------------------------ both sides of thresholds


def _p_of(lp: float):
    """p = exp(lp) of a float log p at 60 digits (the oracle's exact input value)."""
    with mpmath.workdps(60):
        return mpmath.exp(mpmath.mpf(lp))


def _threshold_log_p(div, delta, end):
    """log p where the end starts to saturate, by bisection on the oracle's saturation flag."""
    from bandpo.solvers.oracle import oracle_band_detail

    lo_lp, hi_lp = mpmath.mpf(-40), mpmath.mpf("-1e-12")

    def sat(lp):
        with mpmath.workdps(60):
            d = oracle_band_detail(mpmath.exp(lp), delta, div, dps=30)
        return d.lower_saturated if end == "lower" else d.upper_saturated

    s_lo, s_hi = sat(lo_lp), sat(hi_lp)
    if s_lo == s_hi:
        return None
    with mpmath.workdps(40):
        for _ in range(60):
            mid = (lo_lp + hi_lp) / 2
            if sat(mid) == s_lo:
                lo_lp = mid
            else:
                hi_lp = mid
    return float(lo_lp)


SAT_CASES = [
    (d, delta, end)
    for d in golden_divergences()
    if math.isfinite(float(d.f_at_zero))
    for delta, end in ((0.05, "lower"), (0.5, "upper"))
]


@pytest.mark.parametrize("div,delta,end", SAT_CASES, ids=[f"{d.key}-{e}" for d, _, e in SAT_CASES])
def test_both_sides_of_saturation_threshold(div, delta, end):
    """Points just below and just above each saturation threshold match the oracle."""
    lp_star = _threshold_log_p(div, delta, end)
    if lp_star is None:
        pytest.skip("this end does not saturate for this δ on the tested range")
    tol = tolerance_for(torch.float64)
    closed = closed_match(div) is not None
    steps = (-1e-3, -1e-6, -1e-9, 1e-9, 1e-6, 1e-3)
    lps = [lp_star * (1 + s) for s in steps]
    got = band_bounds(torch.tensor(lps, dtype=torch.float64), delta, div)
    for i, (lp, s) in enumerate(zip(lps, steps, strict=True)):
        ref = oracle_band(_p_of(lp), delta, div, dps=40)
        # The closed forms keep the bar right up to the threshold.  The root finder evaluates
        # g_f in float64, so at relative distance s from the threshold r₋'s relative accuracy is
        # conditioning-limited to ~eps/s (known gap, reported); the bar applies from s = 1e-3.
        bar = tol.rel if closed else max(tol.rel, 16 * tol.eps / abs(s))
        for g, r in ((got.lower[i].item(), ref.lower), (got.upper[i].item(), ref.upper)):
            r = float(r)
            if r == 0:
                assert g == 0, (lp, g)
            else:
                assert abs(g - r) <= bar * abs(r), (lp, s, g, r)


# -------------------------------------------------------------------------------- extremes


@pytest.mark.parametrize("name", divergence_names())
def test_p_equal_one_is_the_perspective_band(name):
    div = get_divergence(name)
    for delta in (1e-3, 0.05, 2.0):
        b = band_bounds(torch.zeros(3, dtype=torch.float64), delta, name)
        ref = oracle_band(1, delta, div)
        assert torch.all(b.upper == 1)
        assert b.lower[0].item() == pytest.approx(float(ref.lower), rel=1e-12, abs=0)
    if name == "kl":
        assert b.lower[0].item() == pytest.approx(math.exp(-2.0), rel=1e-14)


@pytest.mark.parametrize("name", ["kl", "tv", "js"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_minus_inf_nan_and_isolation(name, dtype):
    lp = torch.tensor([-0.5, -math.inf, math.nan, -2.0, 0.0], dtype=dtype)
    b = band_bounds(lp, 0.1, name)
    assert b.lower[1] == 0 and b.upper[1] == math.inf
    assert torch.isnan(b.lower[2]) and torch.isnan(b.upper[2])
    clean = band_bounds(lp[[0, 3, 4]], 0.1, name)
    assert torch.equal(b.lower[[0, 3, 4]], clean.lower)
    assert torch.equal(b.upper[[0, 3, 4]], clean.upper)


@pytest.mark.parametrize("name", ["kl", "chi2", "js"])
def test_delta_infinite_gives_whole_simplex(name):
    lp = torch.tensor([-3.0, -0.1, 0.0], dtype=torch.float64)
    b = band_bounds(lp, math.inf, name)
    assert torch.all(b.lower == 0)
    assert torch.equal(b.upper, torch.exp(-lp))


def test_bad_input_raises_naming_the_argument():
    lp = torch.tensor([-0.1, 0.2])
    with pytest.raises(ValueError, match="old_log_prob"):
        band_bounds(lp, 0.1)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="delta"):
            band_bounds(torch.tensor([-0.1]), bad)
    with pytest.raises(ValueError, match="delta"):
        band_bounds(torch.tensor([-0.1, -0.2]), torch.tensor([0.1, 0.0]))
    with pytest.raises(TypeError, match="old_log_prob"):
        band_bounds(torch.tensor([-1, -2]), 0.1)
    with pytest.raises(TypeError, match="old_log_prob"):
        band_bounds([-0.1], 0.1)
    with pytest.raises(TypeError, match="delta"):
        band_bounds(torch.tensor([-0.1]), "0.1")
    with pytest.raises(ValueError, match="valid names"):
        band_bounds(torch.tensor([-0.1]), 0.1, "nope")
    # validate=False: no check, positive log p is NaN at its own position
    b = band_bounds(lp, 0.1, validate=False)
    assert torch.isnan(b.lower[1]) and not torch.isnan(b.lower[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precisions_are_float32_rounded_once(dtype):
    lp = torch.linspace(-12, 0, 101).to(dtype)
    b = band_bounds(lp, 0.05, "kl")
    ref = band_bounds(lp.to(torch.float64), 0.05, "kl")
    assert b.lower.dtype == dtype and b.upper.dtype == dtype
    assert torch.equal(b.lower, ref.lower.to(dtype))
    assert torch.equal(b.upper, ref.upper.to(dtype))


def test_outputs_never_require_grad_and_keep_shape():
    lp = torch.log(torch.rand(2, 3, 4, dtype=torch.float64)).requires_grad_()
    b = band_bounds(lp, 0.05)
    assert isinstance(b, Band)
    assert b.lower.shape == (2, 3, 4) and not b.lower.requires_grad
    assert not b.upper.requires_grad
    assert band_bounds(torch.empty(0), 0.05).lower.shape == (0,)
    s = band_bounds(torch.tensor(-0.3), 0.05)
    assert s.lower.shape == () and s.lower.dtype == torch.float32


def test_delta_tensor_broadcasts():
    lp = torch.log(torch.tensor([[0.01], [0.3]], dtype=torch.float64))
    delta = torch.tensor([0.01, 0.05, 0.2], dtype=torch.float64)
    b = band_bounds(lp, delta, "kl")
    assert b.lower.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            one = band_bounds(lp[i], float(delta[j]), "kl")
            assert b.lower[i, j].item() == pytest.approx(one.lower.item(), rel=1e-13)
            assert b.upper[i, j].item() == pytest.approx(one.upper.item(), rel=1e-13)


def test_meta_device_shapes():
    """The code is device-agnostic: shapes and dtypes propagate on the meta device."""
    lp = torch.empty(5, 7, device="meta", dtype=torch.float32)
    from bandpo.solvers import band as band_mod

    lower, _ = band_mod._band_float64(
        get_divergence("kl"), lp.to(torch.float64), torch.tensor(0.05, device="meta")
    )
    assert lower.shape == (5, 7) and lower.device.type == "meta"


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["kl", "chi2", "js", "hellinger"])
def test_cuda_matches_cpu(name):
    lp = torch.log(torch.rand(10_000, dtype=torch.float64)).clamp(min=-27)
    cpu = band_bounds(lp, 0.05, name)
    gpu = band_bounds(lp.cuda(), 0.05, name)
    tol = tolerance_for(torch.float64)
    for a, b in ((cpu.lower, gpu.lower.cpu()), (cpu.upper, gpu.upper.cpu())):
        m = a != 0
        assert torch.all(((a[m] - b[m]).abs() / a[m].abs()) <= tol.rel)


@pytest.mark.parametrize(
    "name",
    [
        "kl",
        "tv",
        "chi2",
        "js",
    ],
)
def test_float32_overflow_and_underflow_follow_the_rounded_reference(name):
    """Tiny p in float32: 1/p and r₊ may exceed float32's range (→ +inf), r₋ may underflow
    (→ 0 or a subnormal): the reference rounded once to float32 is the spec."""
    lps = [-60.0, -88.0, -100.0]
    got = band_bounds(torch.tensor(lps, dtype=torch.float32), 0.05, name)
    for i, lp in enumerate(lps):
        ref = oracle_band(_p_of(lp), 0.05, name, dps=30)
        with mpmath.workprec(24):
            for g, r in ((got.lower[i].item(), ref.lower), (got.upper[i].item(), ref.upper)):
                want = float(+r) if abs(r) < 3.5e38 else math.inf
                if abs(want) > float(np.finfo(np.float32).max):
                    want = math.inf
                if want == 0 or abs(want) < float(np.finfo(np.float32).tiny):
                    assert abs(g - want) <= float(np.finfo(np.float32).smallest_subnormal)
                elif math.isinf(want):
                    assert g == math.inf
                else:
                    assert g == pytest.approx(want, rel=tolerance_for(torch.float32).rel)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kl_fast_path_deep_tail(dtype):
    """p below ~1e-155: the lower root x = ln r₋ ≈ −δ/p has x² beyond float64's range, which
    once turned the Halley step into NaN; r₋ underflows to exactly 0 and r₊ follows the oracle."""
    lps = [-690.0, -360.0]
    got = band_bounds(torch.tensor(lps, dtype=dtype), 0.05, "kl")
    assert torch.equal(got.lower, torch.zeros(len(lps), dtype=dtype))
    for i, lp in enumerate(lps):
        with mpmath.workdps(40):
            ref = oracle_band(mpmath.exp(mpmath.mpf(lp)), 0.05, "kl", dps=30).upper
        want = float(ref)
        if dtype == torch.float32 and want > float(torch.finfo(dtype).max):
            assert got.upper[i].item() == math.inf
        else:
            assert got.upper[i].item() == pytest.approx(want, rel=tolerance_for(dtype).rel)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_order_holds_on_the_golden_grid(dtype):
    """0 ≤ r₋ ≤ 1 ≤ r₊ at every golden point, p = 1 included: float32 closed forms once rounded
    r₋ at p = 1 (chi2) and r₊ near p = 1 (neyman) to the wrong side of 1."""
    for div in GOLDEN:
        t = load_golden(div)
        for d in GOLDEN_DELTAS:
            lp = torch.tensor(t.log_p[t.delta == d], dtype=dtype)
            b = band_bounds(lp, d, div)
            assert bool(torch.all((b.lower >= 0) & (b.lower <= 1) & (b.upper >= 1))), (div.key, d)
