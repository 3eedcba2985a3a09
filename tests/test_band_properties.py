"""Hypothesis property tests of band_bounds over random shapes, p and δ (float64).

* lower ≤ 1 ≤ upper, 0 ≤ lower and upper ≤ 1/p;
* monotone: r₊ falls and r₋ rises with p; both widen with δ (THEORY.md §4);
* g_f(p, bound) = δ at every unsaturated end, recomputed in float64 from the registry's f;
* batched results equal element-by-element results.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bandpo.divergences import divergence_names, get_divergence
from bandpo.solvers.band import band_bounds
from bandpo.tolerances import tolerance_for

NAMES = [*divergence_names(), "alpha_-1", "alpha_2", "alpha_3.5"]


def _div(name):
    if name.startswith("alpha_"):
        return get_divergence("alpha", alpha=float(name[6:]))
    return get_divergence(name)


# log p from −60 (p ≈ 1e-26) to −1e-12 (p = 1 − 1e-12), log-uniform in |log p|
log_ps = st.floats(min_value=-12.0, max_value=math.log10(60.0)).map(lambda e: -(10.0**e))
deltas = st.floats(min_value=-6.0, max_value=math.log10(5.0)).map(lambda e: 10.0**e)
shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3)

EXAMPLES = 25


def _g(div, lp, r):
    """g_f(p, r) in float64 from the registry f_torch; 1 − p and 1 − r·p cancellation-free."""
    p = torch.exp(lp)
    q = -torch.expm1(lp)
    s = -torch.expm1(torch.log(r) + lp) / q
    return p * div.f_torch(r) + q * div.f_torch(s), p, q, s


@settings(max_examples=EXAMPLES)
@given(st.sampled_from(NAMES), shapes, st.data(), deltas)
def test_order_and_range(name, shape, data, delta):
    n = math.prod(shape)
    lp = torch.tensor(data.draw(st.lists(log_ps, min_size=n, max_size=n)), dtype=torch.float64)
    lp = lp.reshape(shape)
    b = band_bounds(lp, delta, _div(name))
    inv_p = torch.exp(-lp)
    assert torch.all(b.lower >= 0)
    assert torch.all(b.lower <= 1) and torch.all(b.upper >= 1)
    assert torch.all(b.upper <= inv_p)


@settings(max_examples=EXAMPLES)
@given(st.sampled_from(NAMES), st.lists(log_ps, min_size=2, max_size=12), deltas)
def test_monotone_in_p(name, lps, delta):
    lp = torch.tensor(sorted(lps), dtype=torch.float64)
    b = band_bounds(lp, delta, _div(name))
    rel = 4 * tolerance_for(torch.float64).eps  # ties between nearly equal p may round either way
    assert torch.all(b.lower[1:] >= b.lower[:-1] * (1 - rel))
    assert torch.all(b.upper[1:] <= b.upper[:-1] * (1 + rel))


@settings(max_examples=EXAMPLES)
@given(st.sampled_from(NAMES), log_ps, st.lists(deltas, min_size=2, max_size=10))
def test_monotone_in_delta(name, lp, ds):
    d = torch.tensor(sorted(ds), dtype=torch.float64)
    b = band_bounds(torch.full_like(d, lp), d, _div(name))
    rel = 4 * tolerance_for(torch.float64).eps
    assert torch.all(b.lower[1:] <= b.lower[:-1] * (1 + rel))
    assert torch.all(b.upper[1:] >= b.upper[:-1] * (1 - rel))


@settings(max_examples=EXAMPLES)
@given(st.sampled_from(NAMES), st.lists(log_ps, min_size=1, max_size=16), deltas)
def test_unsaturated_ends_solve_g_equals_delta(name, lps, delta):
    div = _div(name)
    lp = torch.tensor(lps, dtype=torch.float64)
    b = band_bounds(lp, delta, div)
    eps = tolerance_for(torch.float64).eps
    rel = tolerance_for(torch.float64).rel
    inv_p = torch.exp(-lp)
    for r, saturated, sign in ((b.lower, b.lower == 0, -1), (b.upper, b.upper == inv_p, 1)):
        ok = ~saturated & (r > 1e-300) & (r != 1) & torch.isfinite(r)
        if not ok.any():
            continue
        # Conditioning-aware: the root lies within r·(1 ± rel) iff g − δ changes sign across
        # that interval (g falls on the lower end, rises on the upper end), up to float64
        # rounding of g's two terms.  A residual g(r) − δ alone is meaningless where the root
        # sits within float64 rounding of 1/p (then s = (1 − r·p)/(1 − p) is not representable).
        inner = r[ok] * (1 - sign * rel)
        outer = torch.minimum(r[ok] * (1 + sign * rel), inv_p[ok])
        g_in, p, q, s = _g(div, lp[ok], inner)
        g_out, _, _, s_out = _g(div, lp[ok], outer)
        slack_in = 64 * eps * ((p * div.f_torch(inner)).abs() + (q * div.f_torch(s)).abs() + delta)
        slack_out = (
            64 * eps * ((p * div.f_torch(outer)).abs() + (q * div.f_torch(s_out)).abs() + delta)
        )
        at_simplex = outer >= inv_p[ok]  # true root in (inner, 1/p]: nothing to check outside
        assert torch.all(g_in <= delta + slack_in), (name, lp[ok], r[ok], g_in)
        assert torch.all(at_simplex | (g_out >= delta - slack_out)), (name, lp[ok], r[ok], g_out)


@settings(max_examples=15)
@given(st.sampled_from(NAMES), st.lists(log_ps, min_size=2, max_size=8), deltas)
def test_batched_equals_elementwise(name, lps, delta):
    div = _div(name)
    lp = torch.tensor(lps, dtype=torch.float64)
    b = band_bounds(lp, delta, div)
    for i in range(len(lps)):
        one = band_bounds(lp[i : i + 1], delta, div)
        assert torch.equal(one.lower, b.lower[i : i + 1])
        assert torch.equal(one.upper, b.upper[i : i + 1])
