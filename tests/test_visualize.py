"""Figures: the plotted data equals the solver output, files are written and byte-stable.

No pixel comparison: each figure's result record keeps the arrays it drew, and the tests compare
(a) those arrays with fresh calls of the solvers and (b) the matplotlib artists' data with those
arrays.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from bandpo import band_bounds, get_divergence
from bandpo.divergences import DIVERGENCES
from bandpo.golden import golden_divergences, load_golden
from bandpo.solvers import baselines
from bandpo.solvers.oracle import oracle_band
from bandpo.visualize import (
    band_curve,
    plot_band_width,
    plot_clipping_regions,
    plot_probability_variation,
    plot_ratio_bounds,
)
from bandpo.visualize.data import logit_log_p_grid, tail_log_p_grid
from bandpo.visualize.style import divergence_style, parse_formats
from bandpo.visualize.verification import (
    ConvexPoint,
    plot_convex_agreement,
    plot_solver_ulps,
    solver_ulp_errors,
    ulp_error,
)

GRID = logit_log_p_grid(1e-6, 1 - 1e-6, 25)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _solver(log_p: np.ndarray, delta: float, div) -> tuple[np.ndarray, np.ndarray]:
    band = band_bounds(torch.from_numpy(np.asarray(log_p, dtype=np.float64)), delta, div)
    return band.lower.numpy(), band.upper.numpy()


def _line(ax, label: str):
    lines = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(lines) == 1, f"expected one line labelled {label!r}, got {len(lines)}"
    return lines[0]


# --------------------------------------------------------------------------------- grids


def test_logit_grid_is_exact_near_one():
    grid = logit_log_p_grid(1e-6, 1 - 1e-12, 11)
    # the last point's 1 − p = −expm1(log p) must be the requested 1e-12 to ~1e-4 relative
    assert -np.expm1(grid[-1]) == pytest.approx(1e-12, rel=1e-3)
    assert np.exp(grid[0]) == pytest.approx(1e-6, rel=1e-12)
    assert np.all(np.diff(grid) > 0)
    with pytest.raises(ValueError, match="p_min"):
        logit_log_p_grid(0.5, 0.1)
    with pytest.raises(ValueError, match="p_max"):
        tail_log_p_grid(1e-3, 1.5)


# ----------------------------------------------------------------------------- band data


@pytest.mark.parametrize("name", ["kl", "tv", "js"])
def test_band_curve_matches_oracle(name):
    """The default solver (band_bounds) and the oracle path agree on a figure grid."""
    grid = logit_log_p_grid(1e-4, 1 - 1e-4, 9)
    a = band_curve(grid, 0.05, name)
    b = band_curve(grid, 0.05, name, solver="oracle")
    assert a.solver == "band_bounds" and b.solver == "oracle"
    for got, ref in ((a.lower, b.lower), (a.upper, b.upper)):
        big = ref > 1e-300
        np.testing.assert_allclose(got[big], ref[big], rtol=1e-12)
    np.testing.assert_array_equal(a.width, a.upper - a.lower)
    np.testing.assert_array_equal(a.margin_up, a.p * (a.upper - 1))


def test_band_curve_oracle_uses_exact_input():
    lp = np.array([np.log(0.08)])
    c = band_curve(lp, 0.05, "chi2", solver="oracle")
    import mpmath

    ref = oracle_band(mpmath.exp(mpmath.mpf(float(lp[0]))), 0.05, "chi2", dps=30)
    assert c.upper[0] == float(ref.upper)
    with pytest.raises(ValueError, match="solver"):
        band_curve(lp, 0.05, "kl", solver="bisection")


# --------------------------------------------------------------------- figure 1: width


def test_band_width_plots_solver_output():
    divs = ["kl", "tv", "chi2"]
    deltas = (0.01, 0.2)
    res = plot_band_width(divs, deltas, log_p=GRID)
    assert res.name == "band_width"
    assert len(res.curves) == len(divs) * len(deltas)
    axes = res.figure.axes
    assert len(axes) == len(deltas)
    for ax, delta in zip(axes, deltas, strict=True):
        for name in divs:
            c = res.curve(name, delta)
            lo, up = _solver(GRID, delta, name)
            np.testing.assert_array_equal(c.lower, lo)
            np.testing.assert_array_equal(c.upper, up)
            line = _line(ax, get_divergence(name).label)
            np.testing.assert_array_equal(line.get_ydata(), up - lo)
            np.testing.assert_array_equal(line.get_xdata(), np.exp(GRID))
        assert ax.get_yscale() == "log" and ax.get_xscale() == "logit"
    np.testing.assert_array_equal(res.extra["simplex_width"], 1 / np.exp(GRID))
    with pytest.raises(KeyError):
        res.curve("kl", 0.5)


def test_band_width_default_covers_registry():
    res = plot_band_width(deltas=(0.05,), log_p=GRID[::4])
    assert {c.name for c in res.curves} == {d.key for d in DIVERGENCES.values()}


# -------------------------------------------------------------------- figure 2: bounds


def test_ratio_bounds_plots_solver_output():
    res = plot_ratio_bounds(["kl", "hellinger"], 0.1, log_p=GRID)
    ax_up, ax_lo = res.figure.axes[:2]
    for name in ("kl", "hellinger"):
        lo, up = _solver(GRID, 0.1, name)
        label = get_divergence(name).label
        np.testing.assert_array_equal(_line(ax_up, label).get_ydata(), up - 1)
        lines_lo = [ln for ln in ax_lo.get_lines() if np.array_equal(ln.get_ydata(), lo)]
        assert len(lines_lo) == 1
    assert np.all(res.curve("hellinger").upper <= res.extra["simplex_upper"] * (1 + 1e-15))


# ----------------------------------------------------------------- figure 3: variation


def test_probability_variation_data_and_simplex():
    res = plot_probability_variation(("kl", "tv"), 0.05, n=31)
    ax, _ax_t = res.figure.axes[:2]
    lin = np.log(res.extra["p"])
    tv = res.curve("tv")
    lo, up = _solver(tv.log_p, 0.05, "tv")
    np.testing.assert_array_equal(tv.upper, up)
    np.testing.assert_array_equal(tv.lower, lo)
    np.testing.assert_allclose(res.extra["simplex_up"], 1 - res.extra["p"], rtol=1e-12)
    # the Band never leaves the simplex, by construction
    for c in res.curves[:4]:
        assert np.all(c.margin_up <= -np.expm1(c.log_p) * (1 + 1e-12))
        assert np.all(c.margin_down >= -c.p * (1 + 1e-12))
    # the baselines are bandpo.solvers.baselines at their defaults
    t = torch.from_numpy(lin.copy())
    for name in ("ppo_clip", "clip_higher", "dcpo"):
        ref = getattr(baselines, name)(t)
        c = next(c for c in res.curves if c.name == name)
        np.testing.assert_array_equal(c.upper, ref.upper.numpy())
        line = _line(ax, c.label)
        np.testing.assert_array_equal(line.get_ydata(), c.p * (c.upper - 1))
    # DCPO's upper bound leaves the simplex for head tokens, fixed clips choke the tail
    dcpo = next(c for c in res.curves if c.name == "dcpo")
    assert np.any(dcpo.margin_up > -np.expm1(dcpo.log_p))
    tail = [c for c in res.curves if c.name == "ppo_clip"][1]
    kl_tail = [c for c in res.curves if c.name == "kl"][1]
    assert tail.p[0] == pytest.approx(1e-4)
    assert kl_tail.margin_up[0] > 100 * tail.margin_up[0]


# ------------------------------------------------------------------- figure 4: regions


def test_clipping_regions_data():
    res = plot_clipping_regions("kl", 0.05, n=41)
    band, fixed = res.curves
    lo, up = _solver(band.log_p, 0.05, "kl")
    np.testing.assert_array_equal(band.upper, up)
    np.testing.assert_array_equal(band.lower, lo)
    ch = baselines.clip_higher(torch.from_numpy(band.log_p.copy()))
    np.testing.assert_array_equal(fixed.upper, ch.upper.numpy())
    ax_pos, ax_neg = res.figure.axes[:2]
    np.testing.assert_array_equal(ax_pos.get_lines()[0].get_ydata(), up)
    np.testing.assert_array_equal(ax_neg.get_lines()[0].get_ydata(), lo)


# -------------------------------------------------------------- figure 5: verification


def test_ulp_error_units():
    x = np.float32(1.5)
    nxt = np.nextafter(x, np.float32(2))
    assert ulp_error(np.array([nxt]), np.array([x]), np.float32)[0] == 1.0
    assert ulp_error(np.array([x]), np.array([x]), np.float32)[0] == 0.0
    assert ulp_error(np.array([np.inf]), np.array([np.inf]), np.float64)[0] == 0.0
    # below the smallest normal the unit is spacing(tiny)
    tiny = np.finfo(np.float64).tiny
    sub = np.spacing(tiny)
    assert ulp_error(np.array([3 * sub]), np.array([0.0]), np.float64)[0] == 3.0


def test_solver_ulp_errors_zero_for_the_golden_values():
    """A 'solver' returning the golden references scores exactly 0 ulp; a perturbed one not."""
    div = get_divergence("chi2")
    table = load_golden(div)

    def exact(x, delta, d):
        rows = (table.delta == delta) & np.isin(table.log_p, x.double().numpy())
        lo, up = table.reference(x.dtype)
        return torch.from_numpy(lo[rows]), torch.from_numpy(up[rows])

    def off(x, delta, d):
        lo, up = exact(x, delta, d)
        return lo, up * (1 + 2**-20)

    (e64,) = solver_ulp_errors(exact, [div], [torch.float64])
    assert e64.worst_ulp == 0.0
    (bad,) = solver_ulp_errors(off, [div], [torch.float32])
    assert 4 <= bad.worst_ulp <= 16  # 2^-20 relative is 8 ulp of float32 at most, 4 at least


def test_plot_solver_ulps_records_plotted_errors():
    divs = [get_divergence("tv"), get_divergence("alpha", alpha=2.0)]
    errs = solver_ulp_errors(band_bounds, divs, [torch.float64, torch.float32])
    res = plot_solver_ulps(errs)
    assert len(res.figure.axes) == 2
    e = errs[0]
    log_p, worst = e.worst_per_p()
    np.testing.assert_array_equal(res.extra["tv/float64/worst_ulp"], worst[log_p < 0])
    ax64 = res.figure.axes[0]
    line = _line(ax64, divs[0].label)
    np.testing.assert_array_equal(line.get_ydata(), np.maximum(worst[log_p < 0], 0.125))


def test_plot_convex_agreement_records_points():
    pts = [
        ConvexPoint("kl", 1e-3, "lower", 1e-11, "abs"),
        ConvexPoint("kl", 1e-3, "upper", 2e-9, "rel"),
        ConvexPoint("alpha_2", 0.5, "upper", 0.0, "rel"),
        ConvexPoint("tv", 1e-7, "upper", float("inf"), "rel"),  # a bound CVXPY could not certify
    ]
    res = plot_convex_agreement(pts)
    np.testing.assert_array_equal(res.extra["kl/upper/error"], [2e-9])
    np.testing.assert_array_equal(res.extra["kl/lower/error"], [1e-11])
    np.testing.assert_array_equal(res.extra["alpha_2/upper/p"], [0.5])
    _ax_lo, ax_up = res.figure.axes[:2]
    drawn = [ln.get_ydata() for ln in ax_up.get_lines() if len(ln.get_ydata())]
    assert any(np.array_equal(d, [2e-9]) for d in drawn)
    # the failure is drawn (as a cross above every finite error), not silently dropped
    crosses = [ln for ln in ax_up.get_lines() if ln.get_marker() == "x" and len(ln.get_xdata())]
    assert [list(ln.get_xdata()) for ln in crosses] == [[1e-7]]
    assert crosses[0].get_ydata()[0] > 1e-6


# ------------------------------------------------------------------------ style, files


def test_divergence_styles_are_distinct():
    divs = golden_divergences()
    keys = {(divergence_style(d)["color"], str(divergence_style(d)["linestyle"])) for d in divs}
    assert len(keys) == len(divs)
    labels = [divergence_style(d)["label"] for d in divs if d.name != "alpha"]
    assert labels == [d.label for d in divs if d.name != "alpha"]


def test_parse_formats():
    assert parse_formats("png, PDF,svg") == ("png", "pdf", "svg")
    with pytest.raises(ValueError, match="png"):
        parse_formats("png,jpg")
    with pytest.raises(ValueError):
        parse_formats("")


def test_files_written_and_byte_stable(tmp_path):
    res = plot_ratio_bounds(["tv"], 0.05, log_p=GRID)
    first = res.save(tmp_path / "a", ("png", "pdf", "svg"))
    second = res.save(tmp_path / "b", ("png", "pdf", "svg"))
    assert [p.suffix for p in first] == [".png", ".pdf", ".svg"]
    for a, b in zip(first, second, strict=True):
        assert a.stat().st_size > 1000
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two saves"
    # a figure rebuilt from scratch is byte-identical too (no timestamps, fixed SVG ids)
    again = plot_ratio_bounds(["tv"], 0.05, log_p=GRID).save(tmp_path / "c", ("svg", "pdf"))
    assert again[0].read_bytes() == (tmp_path / "a" / "ratio_bounds.svg").read_bytes()
    assert again[1].read_bytes() == (tmp_path / "a" / "ratio_bounds.pdf").read_bytes()
    assert b"CreationDate" not in first[1].read_bytes()
