"""convex_band: the CVXPY ground truth over the full simplex.

References are the mpmath oracle (``oracle_band``) at p = q[a]/Σq; bars are issue 5's
(relative 1e-6, or absolute 1e-9 for bounds below 1e-3), read from convex_reduction.
"""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandpo.divergences import divergence_names, get_divergence
from bandpo.solvers import convex as C
from bandpo.solvers.convex import (
    FALLBACK_ORDER,
    SOLVER_TOLERANCES,
    ConvexSolveError,
    convex_band,
)
from bandpo.solvers.convex_reduction import (
    compare_to_oracle,
    reduction_p,
)
from bandpo.solvers.oracle import oracle_band

# every registry entry, alpha at the golden parameters (-1, 0.5, 2)
ALL_DIVS = [get_divergence(n) for n in divergence_names() if n != "alpha"] + [
    get_divergence("alpha", alpha=a) for a in (-1.0, 0.5, 2.0)
]
IDS = [d.key for d in ALL_DIVS]


def _agree(got: float, ref: float) -> bool:
    return compare_to_oracle(got, ref).passed


def _q_with(p: float, n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rest = rng.dirichlet(np.full(n - 1, 1.0)) * (1.0 - p)
    return np.concatenate([[p], rest])


# ------------------------------------------------------------------ the DCP encodings


@pytest.mark.parametrize("div", ALL_DIVS, ids=IDS)
def test_cvxpy_encoding_equals_registry_f(div):
    """Σ q·cvxpy_f(π/q) evaluated by CVXPY equals Σ q·f(π/q) from the SymPy f (mpmath)."""
    rng = np.random.default_rng(7)
    u_vals = np.concatenate([np.exp(rng.uniform(-6, 6, 40)), [1.0, 0.5, 2.0, 1e-3, 1e3]])
    q = rng.dirichlet(np.ones(u_vals.size))
    u = cp.Variable(u_vals.size)
    u.value = u_vals
    expr = q @ div.cvxpy_f(u)
    assert expr.is_convex(), f"{div.key}: encoding is not DCP-convex"
    got = float(expr.value)
    ref = math.fsum(float(qi * div.f_mpmath(ui)) for qi, ui in zip(q, u_vals, strict=True))
    assert got == pytest.approx(ref, rel=1e-12, abs=1e-300)


@given(st.floats(min_value=-20, max_value=20))
def test_cvxpy_encoding_pointwise_kl_family(t):
    """Pointwise identity at random log-ratios for the exp-cone encodings."""
    u_val = math.exp(t)
    for name in ("kl", "kl_reverse", "js", "jeffreys"):
        div = get_divergence(name)
        u = cp.Variable(1)
        u.value = np.array([u_val])
        got = float(div.cvxpy_f(u).value[0])
        ref = float(div.f_mpmath(u_val))
        assert got == pytest.approx(ref, rel=1e-9, abs=1e-12 * max(1.0, u_val)), name


# ------------------------------------------------------------------ agreement with the oracle


@pytest.mark.parametrize("div", ALL_DIVS, ids=IDS)
@pytest.mark.parametrize("p", [0.02, 0.3, 0.9])
def test_convex_band_matches_oracle_small(div, p):
    q = _q_with(p, 10)
    res = convex_band(q, 0, 0.05, div)
    ob = oracle_band(reduction_p(q, 0), 0.05, div)
    assert _agree(res.lower, float(ob.lower)), (res.lower, float(ob.lower))
    assert _agree(res.upper, float(ob.upper)), (res.upper, float(ob.upper))
    assert res.status == "optimal"
    for sol in (res.lower_solution, res.upper_solution):
        tol = SOLVER_TOLERANCES[sol.solver]
        assert sol.status == "optimal"
        assert sol.simplex_residual <= tol.simplex
        assert sol.divergence_excess <= tol.divergence * 0.05
        assert sol.gap <= max(tol.gap * abs(sol.value), tol.gap_abs)
        # the certificate brackets the value on the right side
        if sol.side == "upper":
            assert sol.dual_bound >= sol.value - tol.gap_abs
        else:
            assert sol.dual_bound <= sol.value + tol.gap_abs


@pytest.mark.parametrize("name", ["kl", "tv", "chi2", "hellinger"])
def test_convex_band_n1000_tail_and_head(name):
    rng = np.random.default_rng(11)
    q = rng.dirichlet(np.full(1000, 0.3))
    q = np.maximum(q, 1e-12)
    q /= q.sum()
    for a in (int(np.argmax(q)), int(np.argsort(q)[500])):
        res = convex_band(q, a, 0.05, name)
        ob = oracle_band(reduction_p(q, a), 0.05, name)
        assert _agree(res.lower, float(ob.lower))
        assert _agree(res.upper, float(ob.upper))


def test_p_definition_uses_exact_sum():
    """p is q[a]/Σq with the sum taken exactly: a q off by 5e-10 in its sum still matches."""
    q = _q_with(0.2, 6) * (1 + 5e-10)
    res = convex_band(q, 0, 0.05, "kl")
    assert res.p == pytest.approx(float(reduction_p(q, 0)), rel=1e-15)
    ob = oracle_band(reduction_p(q, 0), 0.05, "kl")
    assert _agree(res.upper, float(ob.upper))


# ------------------------------------------------------------------ end cases


@pytest.mark.parametrize("div", ALL_DIVS, ids=IDS)
def test_one_hot_gives_exact_p1_band(div):
    """q(a) = 1: CVXPY solves the perspective band g(1, r) = f(r) + (1 − r)·f′(∞) exactly."""
    res = convex_band(np.array([0.0, 1.0, 0.0]), 1, 0.05, div)
    ob = oracle_band(1, 0.05, div)
    assert _agree(res.lower, float(ob.lower))
    assert res.upper == pytest.approx(1.0, rel=1e-12)


def test_kl_p1_band_is_exp_minus_delta():
    res = convex_band(np.array([1.0, 0.0]), 0, 0.2, "kl")
    assert res.lower == pytest.approx(math.exp(-0.2), rel=1e-9)
    assert res.upper == pytest.approx(1.0, rel=1e-12)


def test_single_token_vocabulary_has_nowhere_to_move():
    """N = 1: π = q is the only distribution, so the band is [1, 1] whatever f and δ."""
    res = convex_band(np.array([1.0]), 0, 0.2, "kl")
    assert res.lower == pytest.approx(1.0, rel=1e-12)
    assert res.upper == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("name", ["kl", "tv", "chi2", "hellinger"])
def test_zero_probability_tokens_are_free_at_the_slope(name):
    """Tokens with q = 0 may take mass at cost f′(∞); for these f that never beats the support."""
    q = np.array([0.3, 0.0, 0.5, 0.2, 0.0])
    res = convex_band(q, 0, 0.05, name)
    ob = oracle_band(0.3, 0.05, name)
    assert _agree(res.lower, float(ob.lower))
    assert _agree(res.upper, float(ob.upper))


@pytest.mark.parametrize(
    ("name", "p", "side"),
    [("tv", 1e-3, "lower"), ("chi2", 1e-3, "lower"), ("tv", 0.6, "upper")],
)
def test_saturated_ends_are_exact(name, p, side):
    q = _q_with(p, 8)
    res = convex_band(q, 0, 0.5 if side == "upper" else 0.05, name)
    pp = float(reduction_p(q, 0))
    if side == "lower":
        assert res.lower == 0.0
        assert not res.lower_solution.active
    else:
        assert res.upper == pytest.approx(1 / pp, rel=1e-12)


# ------------------------------------------------------------------ the reduction check


@pytest.mark.parametrize("name", ["kl", "chi2", "hellinger", "js"])
def test_reduction_jensen_gap_at_solver_tolerance(name):
    q = _q_with(0.2, 50, seed=5)
    res = convex_band(q, 0, 0.05, name, keep_pi=True)
    for sol in (res.lower_solution, res.upper_solution):
        if sol.active:
            assert sol.jensen_gap <= 1e-6
            assert sol.spread_mass <= 1e-3
        assert sol.pi is not None and sol.pi.shape == q.shape
        assert math.fsum(sol.pi) == pytest.approx(1.0, abs=1e-12)


def test_tv_spread_is_reported_not_asserted():
    q = _q_with(0.2, 50, seed=5)
    res = convex_band(q, 0, 0.05, "tv")
    assert math.isfinite(res.spread.upper) or math.isinf(res.spread.upper)
    assert not get_divergence("tv").strictly_convex


# ------------------------------------------------------------------ honesty


def test_uncertifiable_answer_raises(monkeypatch):
    """A solver that reports optimal at a wrong point is caught by the certificate."""
    orig = C._build_plain

    def broken(prob, sense):
        built = orig(prob, sense)
        extract = built.extract

        def wrong():
            _, pi = extract()
            pi = pi.copy()
            # move the solution halfway back to q: feasible, optimal-looking, wrong
            pi = 0.5 * pi + 0.5 * prob.q_hat
            return float(pi[prob.action]) / prob.p, pi

        return C._Built(built.problem, wrong, lambda: [])

    monkeypatch.setitem(C._BUILDERS, "plain", broken)
    monkeypatch.setattr(C, "_polish", lambda prob, sense, pi: pi)
    with pytest.raises(ConvexSolveError) as info:
        C.convex_bound(
            _q_with(0.2, 6), 0, 0.05, "chi2", side="upper", attempts=[("CLARABEL", "plain")]
        )
    err = info.value
    assert err.side == "upper"
    assert err.status == "optimal"
    assert "certified gap" in str(err)
    assert err.residuals["gap"] > 0


def test_status_not_optimal_raises(monkeypatch):
    monkeypatch.setitem(
        SOLVER_TOLERANCES,
        "CLARABEL",
        C.SolverTolerance(
            simplex=1e-7, divergence=1e-5, gap=5e-7, gap_abs=5e-10, settings={"max_iter": 1}
        ),
    )
    with pytest.raises(ConvexSolveError, match="status is not optimal"):
        convex_band(_q_with(0.2, 6), 0, 0.05, "kl", attempts=[("CLARABEL", "plain")])


def test_default_order_is_used_when_attempts_not_given():
    res = convex_band(_q_with(0.2, 6), 0, 0.05, "chi2")
    for sol in (res.lower_solution, res.upper_solution):
        tried = [(a.solver, a.formulation) for a in sol.attempts]
        assert tried == list(FALLBACK_ORDER[sol.side][: len(tried)])
        assert sol.attempts[-1].accepted


@pytest.mark.parametrize(
    ("name", "n", "upper", "lower"),
    [
        ("chi2", 1000, "upper", "lower"),
        ("chi2", C.VOCABULARY_SCALE + 1, "upper_vocab", "lower"),  # no lower_vocab: the general
        ("kl", 1000, "upper_exp", "lower_exp"),
        ("kl", C.VOCABULARY_SCALE, "upper_exp", "lower_exp"),
        ("kl", C.VOCABULARY_SCALE + 1, "upper_exp_vocab", "lower_exp_vocab"),
        ("jeffreys", 40_000, "upper_exp_vocab", "lower_exp_vocab"),
    ],
)
def test_fallback_order_by_cone_family_and_scale(name, n, upper, lower):
    prob = C._validate(np.full(n, 1.0 / n), 0, 0.05, get_divergence(name))
    assert C._order_key(prob, "upper") == upper
    assert C._order_key(prob, "lower") == lower


@pytest.mark.parametrize("form", C.FORMULATIONS)
@pytest.mark.parametrize("name", ["kl", "chi2", "alpha_2"])
def test_every_formulation_solves_the_same_problem(form, name):
    """Each formulation is an exact change of variables: alone, it certifies the oracle's band."""
    div = get_divergence("alpha", alpha=2.0) if name == "alpha_2" else get_divergence(name)
    q = _q_with(0.05, 40, seed=9)
    ob = oracle_band(reduction_p(q, 0), 0.05, div)
    for side, ref in (("lower", ob.lower), ("upper", ob.upper)):
        if form in ("scaled", "perspective") and side == "lower":
            with pytest.raises(ConvexSolveError, match=r"skipped|needs an upper bound"):
                C.convex_bound(q, 0, 0.05, div, side=side, attempts=[("CLARABEL", form)])
            continue
        pair = ("CLARABEL", form)
        sol = C.convex_bound(q, 0, 0.05, div, side=side, attempts=[pair])
        assert sol.formulation == pair[1]
        assert _agree(sol.value, float(ref)), (form, side, sol.value, float(ref))


@pytest.mark.parametrize("balance", [0.0, 0.5, 1.0])
def test_homogenised_cones_equal_the_weighted_divergence(balance):
    """Σ_i w_i f(π_i/w_i) from the per-token cones equals the registry f, whatever the balance
    and whatever the expected masses the exp cones are rebalanced at (even off by e^±8):
    minimising the cone expression at fixed π returns the divergence itself."""
    rng = np.random.default_rng(4)
    w = rng.dirichlet(np.ones(12))
    pi_fixed = rng.dirichlet(np.ones(12))
    for name in ("kl", "chi2", "neyman", "js"):
        div = get_divergence(name)
        expected = pi_fixed * np.exp(rng.uniform(-8, 8, 12)) if balance == 0.5 else None
        pi, total, cons = C._homogenised(div, w, balance, expected)
        prob = cp.Problem(cp.Minimize(total), [*cons, pi == pi_fixed])
        prob.solve(solver="CLARABEL")
        u = pi_fixed / w
        ref = math.fsum(w * C._numpy_form(div.f_torch)(u))
        assert prob.value == pytest.approx(ref, rel=1e-6, abs=1e-9), (name, balance)


def test_convex_bound_is_one_end_of_convex_band():
    q = _q_with(0.1, 30, seed=2)
    band = convex_band(q, 0, 0.05, "hellinger")
    assert C.convex_bound(q, 0, 0.05, "hellinger", side="lower").value == pytest.approx(
        band.lower, rel=1e-9
    )
    assert C.convex_bound(q, 0, 0.05, "hellinger", side="upper").value == pytest.approx(
        band.upper, rel=1e-9
    )
    with pytest.raises(ValueError, match="side must be"):
        C.convex_bound(q, 0, 0.05, "hellinger", side="both")


@pytest.mark.parametrize(
    ("attempts", "exc", "match"),
    [
        ([("CLARABELL", "plain")], ValueError, "solver key must be one of"),
        ([("CLARABEL", "ratio")], ValueError, "formulation must be one of"),
        ([], ValueError, "at least one"),
        ("CLARABEL/plain", TypeError, "sequence of"),
        ([("CLARABEL",)], TypeError, "pair"),
    ],
)
def test_bad_attempts(attempts, exc, match):
    with pytest.raises(exc, match=match):
        convex_band(_q_with(0.2, 6), 0, 0.05, "kl", attempts=attempts)


def test_tolerance_table_documents_every_entry():
    for key, tol in SOLVER_TOLERANCES.items():
        assert tol.why, key
    for side in FALLBACK_ORDER:
        for key, form in FALLBACK_ORDER[side]:
            assert key in SOLVER_TOLERANCES
            assert form in C.FORMULATIONS


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("q", "action", "delta", "match"),
    [
        (np.ones((2, 2)) / 4, 0, 0.1, "1-D"),
        (np.array([0.5, np.nan, 0.5]), 0, 0.1, "finite"),
        (np.array([0.5, np.inf]), 0, 0.1, "finite"),
        (np.array([1.2, -0.2]), 0, 0.1, "nonnegative"),
        (np.array([0.5, 0.5 + 2e-9]), 0, 0.1, "sum to 1"),
        (np.array([0.5, 0.5]), 2, 0.1, "action"),
        (np.array([0.5, 0.5]), -3, 0.1, "action"),
        (np.array([0.5, 0.5]), 0, 0.0, "delta"),
        (np.array([0.5, 0.5]), 0, -1.0, "delta"),
        (np.array([0.5, 0.5]), 0, float("nan"), "delta"),
        (np.array([0.0, 1.0]), 0, 0.1, "q\\[action\\]"),
        (np.array([]), 0, 0.1, "at least one"),
    ],
)
def test_bad_input(q, action, delta, match):
    with pytest.raises(ValueError, match=match):
        convex_band(q, action, delta, "kl")


def test_sum_within_tolerance_accepted():
    q = np.array([0.5, 0.5 + 5e-10])
    res = convex_band(q, 0, 0.05, "tv")
    assert res.upper > 1


def test_bad_types():
    with pytest.raises(TypeError, match="action"):
        convex_band(np.array([0.5, 0.5]), 0.0, 0.1, "kl")
    with pytest.raises(ValueError, match="unknown divergence"):
        convex_band(np.array([0.5, 0.5]), 0, 0.1, "nope")
