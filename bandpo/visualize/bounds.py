"""Figure 2: the ratio bounds r₋(p) and r₊(p) of each divergence, with the simplex limit 1/p.

r₊ lives in [1, 1/p] and spans decades; it is drawn as r₊ − 1 on log axes (so that head
tokens, where r₊ → 1, stay visible) next to its ceiling 1/p − 1 (reached where the upper end
saturates).  r₋ lives in [0, 1]; it is drawn on a linear axis so that saturation at r₋ = 0 is
visible (on a log axis the ``kl`` family's r₋ ≈ 1e-23 at p = 1e-3 would dominate the picture).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bandpo.divergences import Divergence
from bandpo.visualize.data import FigureResult, Solver, band_curve, logit_log_p_grid
from bandpo.visualize.style import (
    REFERENCE_COLOR,
    divergence_style,
    figure_style,
    legend_below,
    logit_p_axis,
)
from bandpo.visualize.width import _resolve_all

__all__ = ["plot_ratio_bounds"]


def plot_ratio_bounds(
    divergences: Sequence[str | Divergence] | None = None,
    delta: float = 0.05,
    *,
    log_p: np.ndarray | None = None,
    solver: Solver = "band",
) -> FigureResult:
    """Plot r₊(p) − 1 (log axes, with 1/p − 1) and r₋(p) (linear axis) per divergence at one δ.

    Args:
        divergences: Names or Divergences (default: every registered divergence).
        delta: Trust-region radius δ.
        log_p: Grid of log-probabilities (default: uniform in logit p on [1e-6, 1 − 1e-6]).
        solver: ``"band"`` (torch :func:`bandpo.band_bounds`) or ``"oracle"``.

    Returns:
        A :class:`~bandpo.visualize.data.FigureResult` named ``"ratio_bounds"``; ``extra`` holds
        ``p``, ``simplex_upper`` (= 1/p) and ``simplex_excess`` (= 1/p − 1, as drawn).
    """
    import matplotlib.pyplot as plt

    divs = _resolve_all(divergences)
    grid = logit_log_p_grid() if log_p is None else np.asarray(log_p, dtype=np.float64)
    p = np.exp(grid)
    curves = [band_curve(grid, delta, d, solver=solver) for d in divs]
    with figure_style():
        fig, (ax_up, ax_lo) = plt.subplots(1, 2, figsize=(8.2, 3.6))
        # r₊ − 1 rather than r₊: on a log axis r₊ → 1 would flatten every head-token curve
        simplex_excess = np.exp(-grid) * -np.expm1(grid)  # 1/p − 1 = (1 − p)/p, no cancellation
        ax_up.plot(
            p, simplex_excess, color=REFERENCE_COLOR, lw=2.5, alpha=0.5, label=r"simplex $r_+=1/p$"
        )
        for div, c in zip(divs, curves, strict=True):
            style = divergence_style(div)
            ax_up.plot(c.p, c.upper - 1, **style)
            ax_lo.plot(c.p, c.lower, **{**style, "label": None})
        logit_p_axis(ax_up, p[0], p[-1])
        ax_up.set_yscale("log")
        ax_up.set_ylabel(r"upper bound, excess $r_+(p) - 1$")
        ax_up.set_title(rf"Upper ratio bound, $\delta = {delta:g}$")
        logit_p_axis(ax_lo, p[0], p[-1])
        ax_lo.set_ylim(-0.03, 1.03)
        ax_lo.set_ylabel(r"lower bound $r_-(p)$")
        ax_lo.set_title(rf"Lower ratio bound, $\delta = {delta:g}$")
        for ax in (ax_up, ax_lo):
            ax.set_xlabel(r"old probability $p$")
        legend_below(fig, ax_up, ncol=6)
    return FigureResult(
        name="ratio_bounds",
        figure=fig,
        curves=tuple(curves),
        extra={"p": p, "simplex_upper": 1 / p, "simplex_excess": simplex_excess},
    )
