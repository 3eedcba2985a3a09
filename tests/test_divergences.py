"""The registry: names, parameters, and each hand-written form against the SymPy generator."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch

import bandpo
from bandpo.divergences import U, get_divergence, resolve_divergence
from bandpo.golden import golden_divergences

THEORY_NAMES = {
    "kl",
    "kl_reverse",
    "tv",
    "chi2",
    "neyman",
    "hellinger",
    "js",
    "jeffreys",
    "lecam",
    "alpha",
}
ALL = golden_divergences()  # every name, alpha at several α
IDS = [d.key for d in ALL]

# ratios spanning the domain: both sides of u = 1, close to it, and the far tails
U_POINTS = np.concatenate(
    [
        np.geomspace(1e-300, 0.5, 60),
        1 + np.array([-1e-3, -1e-6, 1e-6, 1e-3]),
        np.linspace(0.6, 3.0, 13),
        np.geomspace(4.0, 1e300, 40),
    ]
)


def test_registry_has_exactly_the_contract_names():
    assert set(bandpo.DIVERGENCES) == THEORY_NAMES
    assert set(bandpo.divergence_names()) == THEORY_NAMES


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown divergence 'klx'.*kl_reverse.*alpha"):
        get_divergence("klx")
    with pytest.raises(TypeError, match="divergence must be a name"):
        get_divergence(3)


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, math.inf, -math.inf, math.nan])
def test_alpha_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="alpha must be finite and not in"):
        get_divergence("alpha", alpha=bad)


@pytest.mark.parametrize("bad", ["0.5", None, True, 1j])
def test_alpha_rejects_non_numbers(bad):
    with pytest.raises(TypeError, match="alpha must be a real number"):
        get_divergence("alpha", alpha=bad)


def test_parameters_are_checked():
    with pytest.raises(TypeError, match="takes no parameters"):
        get_divergence("kl", alpha=2)
    with pytest.raises(TypeError, match="only the parameter alpha"):
        get_divergence("alpha", beta=2)
    assert get_divergence("alpha").params["alpha"] == 0.5
    d = resolve_divergence(get_divergence("alpha", alpha=2), alpha=3)
    assert d.params["alpha"] == 3.0 and d.key == "alpha_3"


@pytest.mark.parametrize("div", ALL, ids=IDS)
def test_generator_is_normalised_and_convex(div):
    assert sp.simplify(div.f.subs(U, 1)) == 0
    f2 = sp.lambdify(U, sp.diff(div.f, U, 2), "mpmath")
    if div.name != "tv":  # tv is piecewise linear: f'' = 0 away from its kink
        for u in ["1e-6", "0.3", "0.999", "1.001", "2", "1e6"]:
            assert f2(mpmath.mpf(u)) > 0


@pytest.mark.parametrize("div", ALL, ids=IDS)
@pytest.mark.parametrize("which", ["f", "df"])
def test_torch_forms_match_sympy(div, which):
    expr = div.f if which == "f" else div.df
    ref_fn = sp.lambdify(U, expr, "mpmath")
    torch_fn = div.f_torch if which == "f" else div.df_torch
    u = torch.tensor(U_POINTS, dtype=torch.float64)
    got = torch_fn(u).numpy()
    with mpmath.workdps(40):
        ref = np.array([float(ref_fn(mpmath.mpf(float(x)))) for x in U_POINTS])
    # where the true value leaves float64's range (u ~ 1e300 for chi2-like f) the form may
    # overflow a little early, but never to NaN and never to a wrong finite number
    finite = np.abs(ref) < 1e300
    assert np.isfinite(got[finite]).all()
    assert not np.isnan(got).any() and (np.abs(got[~finite]) > 1e299).all()
    # relative error in units of float64 eps, scaled by the condition of evaluating f near u = 1
    scale = np.maximum(np.abs(ref), 1e-300)
    rel = np.abs(got[finite] - ref[finite]) / scale[finite]
    assert rel.max() < 1e-9, (U_POINTS[finite][rel.argmax()], rel.max())


@pytest.mark.parametrize("div", ALL, ids=IDS)
def test_f_at_zero_matches_torch_and_theory(div):
    f0 = div.f_at_zero
    got = float(div.f_torch(torch.tensor([0.0], dtype=torch.float64))[0])
    if f0 == sp.oo:
        assert div.name in {"kl", "neyman", "jeffreys"} or (
            div.name == "alpha" and div.params["alpha"] < 0
        )
        assert got == math.inf
    else:
        assert got == pytest.approx(float(f0), rel=1e-15)


def test_known_limits_and_curvatures():
    d = bandpo.DIVERGENCES
    assert d["kl"].slope_at_infinity == 1  # band at p = 1 is [e^-δ, 1]
    assert d["kl_reverse"].slope_at_infinity == sp.oo
    assert d["tv"].slope_at_infinity == sp.Rational(1, 2)
    assert d["tv"].f2_at_one is sp.nan  # kink at u = 1
    assert [d[n].f2_at_one for n in ("kl", "kl_reverse", "chi2", "neyman", "hellinger")] == [
        1,
        1,
        2,
        2,
        sp.Rational(1, 2),
    ]


def test_alpha_family_limits():
    chi2 = bandpo.DIVERGENCES["chi2"].f
    assert sp.simplify(get_divergence("alpha", alpha=2).f - chi2 / 2) == 0
    # α → 0 tends to kl, α → 1 to kl_reverse (checked numerically at α = ±1e-7 from each end)
    for a, name in [(1e-7, "kl"), (1 - 1e-7, "kl_reverse")]:
        fa = get_divergence("alpha", alpha=a).f_torch
        fk = bandpo.DIVERGENCES[name].f_torch
        u = torch.tensor([0.1, 0.5, 2.0, 10.0], dtype=torch.float64)
        assert torch.allclose(fa(u), fk(u), rtol=1e-5)
