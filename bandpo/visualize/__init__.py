"""Figures built from bandpo's solvers, in one style (see :mod:`bandpo.visualize.style`).

Each figure function returns a :class:`~bandpo.visualize.data.FigureResult`: the matplotlib
Figure together with every array it plotted (``.curves``, ``.extra``), so notebooks and tests
reuse the numbers; ``.save(out_dir, formats)`` writes byte-stable PNG/PDF/SVG files.

1. :func:`plot_band_width` – the headline plot, W(p) = r₊ − r₋ against p.
2. :func:`plot_ratio_bounds` – r₋(p) and r₊(p) with the simplex limit 1/p.
3. :func:`plot_probability_variation` – Δπ = p(r − 1) for the Band and fixed clips.
4. :func:`plot_clipping_regions` – where Band-KL and Clip-Higher zero the gradient.
5. :func:`plot_solver_ulps`, :func:`plot_convex_agreement` – verification plots.

:func:`paper_figures` builds figures 1–5 with default settings.
"""

from __future__ import annotations

from bandpo.visualize.bounds import plot_ratio_bounds
from bandpo.visualize.data import (
    BandCurve,
    FigureResult,
    band_curve,
    baseline_curve,
    logit_log_p_grid,
    tail_log_p_grid,
)
from bandpo.visualize.regions import plot_clipping_regions
from bandpo.visualize.style import (
    BASELINE_STYLE,
    FORMATS,
    OKABE_ITO,
    divergence_style,
    figure_style,
    logit_p_axis,
    save_figure,
)
from bandpo.visualize.variation import plot_probability_variation
from bandpo.visualize.verification import (
    plot_convex_agreement,
    plot_solver_ulps,
    solver_ulp_errors,
)
from bandpo.visualize.width import plot_band_width

__all__ = [
    "BASELINE_STYLE",
    "FORMATS",
    "OKABE_ITO",
    "BandCurve",
    "FigureResult",
    "band_curve",
    "baseline_curve",
    "divergence_style",
    "figure_style",
    "logit_log_p_grid",
    "logit_p_axis",
    "plot_band_width",
    "plot_clipping_regions",
    "plot_convex_agreement",
    "plot_probability_variation",
    "plot_ratio_bounds",
    "plot_solver_ulps",
    "save_figure",
    "solver_ulp_errors",
    "tail_log_p_grid",
]
