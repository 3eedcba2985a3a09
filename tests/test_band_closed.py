"""Each stable torch closed form is tied to the SymPy root the theory layer derived.

``bandpo.theory.closed_forms`` is what ``derive(name).lower/.upper`` report (the slow test below
checks that identity through ``derive`` itself).  The torch forms in
``bandpo.solvers._band_closed`` are algebraic rewrites of those roots for numerical stability;
here both are evaluated at the same (p, δ), the SymPy expression in mpmath at 50 digits, on the
unsaturated region of each end.
"""

from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp
import torch

from bandpo.golden import golden_divergences
from bandpo.solvers._band_closed import closed_band, closed_match, threshold_dd
from bandpo.solvers.oracle import oracle_band_detail
from bandpo.theory.closed_forms import closed_forms
from bandpo.theory.symbols import DELTA, P
from bandpo.tolerances import tolerance_for

GOLDEN = golden_divergences()
IDS = [d.key for d in GOLDEN]


def _points(seed: int, n: int = 24):
    rng = random.Random(seed)
    pts = []
    for _ in range(n):
        lp = -(10 ** rng.uniform(-9, 1.4))  # p from ~1e-11 to 1 − 1e-9
        delta = 10 ** rng.uniform(-4, 0.3)
        pts.append((lp, delta))
    return pts


@pytest.mark.parametrize("div", GOLDEN, ids=IDS)
def test_closed_form_fast_path_matches_sympy_root(div):
    forms = closed_forms(div)
    match = closed_match(div)
    has_sympy = all(f.expr is not None for f in forms)
    # the fast path exists exactly where the theory layer found both roots in closed form
    assert (match is not None) == has_sympy, (div.key, match, [f.reason for f in forms])
    if match is None:
        return
    tol = tolerance_for(torch.float64)
    exprs = {f.end: sp.lambdify((P, DELTA), f.expr, modules="mpmath") for f in forms}
    checked = 0
    for lp, delta in _points(hash(div.key) % 1000):
        with mpmath.workdps(50):
            p = mpmath.exp(mpmath.mpf(lp))
            sat = oracle_band_detail(p, delta, div, dps=30)
            want = {e: exprs[e](p, mpmath.mpf(delta)) for e in exprs}
        hi, lo = threshold_dd(match, delta)
        lower, upper = closed_band(
            match,
            torch.tensor([lp], dtype=torch.float64),
            torch.tensor(delta, dtype=torch.float64),
            hi,
            lo,
        )
        for end, got, saturated in (
            ("lower", lower.item(), sat.lower_saturated),
            ("upper", upper.item(), sat.upper_saturated),
        ):
            if saturated:
                continue
            w = float(mpmath.re(want[end]))
            assert abs(got - w) <= tol.rel * abs(w), (div.key, end, lp, delta, got, w)
            checked += 1
    assert checked >= 10


@pytest.mark.slow
@pytest.mark.parametrize("name,params", [("chi2", {}), ("tv", {}), ("alpha", {"alpha": 2.0})])
def test_closed_forms_are_what_derive_reports(name, params):
    from bandpo.theory import derive

    rec = derive(name, **params)
    div = rec.divergence
    forms = {f.end: f.expr for f in closed_forms(div)}
    assert sp.simplify(rec.lower - forms["lower"]) == 0
    assert sp.simplify(rec.upper - forms["upper"]) == 0
