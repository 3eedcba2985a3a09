"""The mpmath oracle: roots, saturation, exact end cases, extremes and bad input.

References: the published BandPO closed forms (Prop. 4) for TV and Pearson χ², evaluated in
mpmath at 60 digits; otherwise the defining equation g_f(p, r) = δ itself, re-evaluated at 60
digits with the registry's SymPy f.
"""

from __future__ import annotations

import math

import mpmath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandpo import get_divergence, oracle_band
from bandpo.golden import golden_divergences
from bandpo.solvers.oracle import oracle_band_detail, oracle_g

ALL = golden_divergences()
IDS = [d.key for d in ALL]
DIGITS = 45  # agreement demanded of a 50-digit oracle


@pytest.fixture(autouse=True)
def _mp_precision():
    # test-side arithmetic (1/p, thresholds) at 60 digits, restored afterwards
    with mpmath.workdps(60):
        yield


def brackets_root(p, r, div, delta, increasing, digits=DIGITS):
    """r is a root of g = δ to `digits` relative digits: g changes sides across r·(1 ± 10^-digits).

    This is the conditioning-aware check: near r = 1/p a root can be exact to 50 digits in r
    while g(r) itself is not computable from those 50 digits.
    """
    eps = mpmath.mpf(10) ** (-digits)
    inv_p = 1 / mpmath.mpf(p)
    d = mpmath.mpf(delta)
    g_lo = oracle_g(p, r * (1 - eps), div, dps=200)
    if r * (1 + eps) >= inv_p:
        # the true root lies in (r(1 − ε), 1/p], which is inside r·(1 ± ε) already
        return increasing and g_lo <= d
    g_hi = oracle_g(p, r * (1 + eps), div, dps=200)
    return (g_lo <= d <= g_hi) if increasing else (g_hi <= d <= g_lo)


def close(a, b, digits=DIGITS):
    with mpmath.workdps(60):
        if b == 0:
            return a == 0
        return abs(a - b) <= abs(b) * mpmath.mpf(10) ** (-digits)


@pytest.mark.parametrize(
    "p,delta", [("0.08", "0.05"), ("0.5", "0.01"), ("1e-9", "1e-12"), ("0.999999", "0.3")]
)
def test_tv_and_chi2_match_published_closed_forms(p, delta):
    with mpmath.workdps(60):
        pm, dm = mpmath.mpf(p), mpmath.mpf(delta)
        tv = (max(1 - dm / pm, 0), min(1 + dm / pm, 1 / pm))
        s = mpmath.sqrt(dm * (1 - pm) / pm)
        chi2 = (max(1 - s, 0), min(1 + s, 1 / pm))
    for name, ref in [("tv", tv), ("chi2", chi2)]:
        lo, up = oracle_band(p, delta, name)
        assert close(lo, ref[0]) and close(up, ref[1]), (name, lo, up, ref)


@pytest.mark.parametrize("div", ALL, ids=IDS)
@pytest.mark.parametrize("p", ["1e-10", "0.003", "0.3", "0.9", "0.9999999"])
@pytest.mark.parametrize("delta", ["1e-4", "0.05", "1.5"])
def test_roots_solve_the_defining_equation(div, p, delta):
    d = oracle_band_detail(p, delta, div)
    for r, saturated, sat_value, increasing in [
        (d.lower, d.lower_saturated, 0, False),
        (d.upper, d.upper_saturated, 1 / mpmath.mpf(p), True),
    ]:
        if saturated:
            assert close(r, sat_value)
            assert oracle_g(p, sat_value, div, dps=60) <= mpmath.mpf(delta)
        else:
            assert brackets_root(p, r, div, delta, increasing)
    assert d.lower <= 1 <= d.upper <= 1 / mpmath.mpf(p) * (1 + mpmath.mpf(10) ** -45)


@pytest.mark.parametrize("name", ["tv", "chi2", "hellinger", "js", "lecam", "kl_reverse"])
def test_saturation_switches_exactly_at_the_threshold(name):
    # upper saturates iff g(p, 1/p) ≤ δ: probe δ just above and just below that value
    p = "0.2"
    with mpmath.workdps(80):
        g_top = oracle_g(p, 1 / mpmath.mpf(p), name, dps=70)
        g_bottom = oracle_g(p, 0, name, dps=70)
        eps = mpmath.mpf(10) ** -30
    above = oracle_band_detail(p, g_top * (1 + eps), name)
    below = oracle_band_detail(p, g_top * (1 - eps), name)
    assert above.upper_saturated and not below.upper_saturated
    assert close(below.upper, 1 / mpmath.mpf(p), digits=25)  # continuous at the threshold
    above = oracle_band_detail(p, g_bottom * (1 + eps), name)
    below = oracle_band_detail(p, g_bottom * (1 - eps), name)
    assert above.lower_saturated and not below.lower_saturated
    assert below.lower < mpmath.mpf(10) ** -20


@pytest.mark.parametrize("name", ["kl", "neyman", "jeffreys"])
def test_infinite_f0_never_saturates_below(name):
    d = oracle_band_detail("0.001", "50", name)
    assert not d.lower_saturated and 0 < d.lower < 1


def test_exact_p_equal_one_uses_the_perspective():
    lo, up = oracle_band(1, 0.05, "kl")
    assert close(lo, mpmath.exp(-mpmath.mpf(0.05))) and up == 1
    assert tuple(oracle_band(1, 0.05, "kl_reverse")) == (1, 1)  # f'(∞) = ∞
    assert tuple(oracle_band(1, 0.05, "chi2")) == (1, 1)
    lo, up = oracle_band(1, 0.25, "tv")  # g(1, r) = 1 − r
    assert close(lo, mpmath.mpf(0.75)) and up == 1
    assert tuple(oracle_band(1, 2.0, "tv")) == (0, 1)  # saturates when f(0) + f'(∞) ≤ δ


def test_p_near_one_approaches_the_p_equal_one_band_for_kl():
    lo1, _ = oracle_band(1, 0.05, "kl")
    lo, up = oracle_band("0.999999999999999999999999999999", 0.05, "kl")
    assert close(lo, lo1, digits=25)
    assert 1 <= up <= 1 + mpmath.mpf(10) ** -29


def test_infinite_delta_gives_the_simplex():
    for name in ("kl", "tv", "neyman"):
        lo, up = oracle_band("0.25", math.inf, name)
        assert lo == 0 and up == 4
    assert tuple(oracle_band(1, math.inf, "kl")) == (0, 1)


@pytest.mark.parametrize("dps", [30])
def test_extreme_small_p_is_representable(dps):
    # ln r₋ ≈ −5e298 here: the working precision must grow with log10(δ/p) to resolve it
    lo, up = oracle_band("1e-300", 0.05, "kl", dps=dps)
    with mpmath.workdps(60):
        # ln r₋ ≈ −δ/p to leading order: the root lives far below float range
        assert -mpmath.log(lo) * mpmath.mpf("1e-300") == pytest.approx(0.05, rel=1e-6)
    assert 1 < up < mpmath.mpf("1e300")


@given(
    p=st.floats(1e-12, 1 - 1e-9),
    dp=st.floats(0.0, 0.5),
    delta=st.sampled_from([1e-4, 0.01, 0.05, 0.5, 2.0]),
    name=st.sampled_from(["kl", "js", "neyman", "alpha"]),
)
def test_monotone_in_p(p, dp, delta, name):
    p2 = min(p * (1 + dp), 1.0)
    lo1, up1 = oracle_band(p, delta, name, dps=20)
    lo2, up2 = oracle_band(p2, delta, name, dps=20)
    assert lo1 <= lo2 * (1 + 1e-15) and up1 >= up2 * (1 - 1e-15)


@pytest.mark.parametrize(
    "p,delta,err,match",
    [
        (0, 0.05, ValueError, "p must be in"),
        (-0.1, 0.05, ValueError, "p must be in"),
        (1.5, 0.05, ValueError, "p must be in"),
        (math.nan, 0.05, ValueError, "p must be in"),
        (0.5, 0, ValueError, "delta must be > 0"),
        (0.5, -1, ValueError, "delta must be > 0"),
        (0.5, math.nan, ValueError, "delta must be > 0"),
        ("zero", 0.05, ValueError, "p must be a decimal string"),
        ([0.5], 0.05, TypeError, "p must be a real number"),
        (True, 0.05, TypeError, "p must be a real number"),
    ],
)
def test_bad_input(p, delta, err, match):
    with pytest.raises(err, match=match):
        oracle_band(p, delta, "kl")


def test_parameters_reach_the_divergence():
    a2 = oracle_band("0.3", "0.05", "alpha", alpha=2)
    chi2_half = oracle_band("0.3", "0.1", "chi2")  # α = 2 is ½χ²: δ doubles
    assert close(a2.lower, chi2_half.lower) and close(a2.upper, chi2_half.upper)
    assert get_divergence("alpha", alpha=2).key == "alpha_2"
