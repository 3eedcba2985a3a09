"""Figure 1, the headline plot: band width W(p) = r₊(p) − r₋(p) against the action probability.

A fixed clip [1 − ε₋, 1 + ε₊] has the same width ε₋ + ε₊ for every token.  The Band of an
f-divergence trust region widens as p falls (W → 1/p where the upper end saturates), which is
what lets low-probability, high-advantage tokens grow (BandPO, arXiv 2603.04918, §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bandpo.divergences import DIVERGENCES, Divergence, resolve_divergence
from bandpo.visualize.data import FigureResult, Solver, band_curve, logit_log_p_grid
from bandpo.visualize.style import REFERENCE_COLOR, divergence_style, figure_style, logit_p_axis

__all__ = ["DEFAULT_DELTAS", "plot_band_width"]

#: δ values of the default panels (the paper's default δ = 0.05 in the middle).
DEFAULT_DELTAS: tuple[float, ...] = (0.01, 0.05, 0.2)


def _resolve_all(divergences: Sequence[str | Divergence] | None) -> list[Divergence]:
    if divergences is None:
        return list(DIVERGENCES.values())
    return [resolve_divergence(d) for d in divergences]


def plot_band_width(
    divergences: Sequence[str | Divergence] | None = None,
    deltas: Sequence[float] = DEFAULT_DELTAS,
    *,
    log_p: np.ndarray | None = None,
    ppo_eps: tuple[float, float] = (0.2, 0.2),
    solver: Solver = "band",
) -> FigureResult:
    """Plot W(p) = r₊ − r₋ for each divergence, one panel per δ (log–logit axes).

    Args:
        divergences: Names or Divergences (default: every registered divergence).
        deltas: One panel per δ.
        log_p: Grid of log-probabilities (default: 241 points uniform in logit p on
            [1e-6, 1 − 1e-6]).
        ppo_eps: (ε₋, ε₊) of the fixed clip drawn for reference (width ε₋ + ε₊).
        solver: ``"band"`` (torch :func:`bandpo.band_bounds`) or ``"oracle"``.

    Returns:
        A :class:`~bandpo.visualize.data.FigureResult` named ``"band_width"``; its curves are
        one :class:`~bandpo.visualize.data.BandCurve` per (divergence, δ), and ``extra`` holds
        ``p`` and ``simplex_width`` (= 1/p, the width of the whole simplex [0, 1/p]).
    """
    import matplotlib.pyplot as plt

    divs = _resolve_all(divergences)
    deltas = [float(d) for d in deltas]
    if not deltas:
        raise ValueError("deltas must hold at least one delta > 0")
    grid = logit_log_p_grid() if log_p is None else np.asarray(log_p, dtype=np.float64)
    p = np.exp(grid)
    curves = []
    with figure_style():
        fig, axes = plt.subplots(
            1, len(deltas), figsize=(3.1 * len(deltas) + 0.4, 3.3), sharey=True, squeeze=False
        )
        axes = axes[0]
        for ax, delta in zip(axes, deltas, strict=True):
            ax.plot(p, 1 / p, color=REFERENCE_COLOR, lw=1.0, ls=":", label=r"simplex $1/p$")
            ax.axhline(
                sum(ppo_eps),
                color="#000000",
                lw=1.0,
                ls=(0, (4, 2)),
                label=rf"PPO clip $\epsilon={ppo_eps[1]:g}$",
            )
            for div in divs:
                c = band_curve(grid, delta, div, solver=solver)
                curves.append(c)
                ax.plot(c.p, c.width, **divergence_style(div))
            logit_p_axis(ax, p[0], p[-1])
            ax.set_yscale("log")
            ax.set_title(rf"$\delta = {delta:g}$")
            ax.set_xlabel(r"old probability $p = \pi_{\mathrm{old}}(a\,|\,s)$")
        axes[0].set_ylabel(r"band width $W(p) = r_+ - r_-$")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=min(6, len(labels)),
            bbox_to_anchor=(0.5, -0.02),
        )
        fig.suptitle("Band width against action probability", y=1.0)
        fig.tight_layout(rect=(0, 0.06 + 0.045 * ((len(labels) - 1) // 6), 1, 1))
    extra: dict[str, Any] = {"p": p, "simplex_width": 1 / p}
    return FigureResult(name="band_width", figure=fig, curves=tuple(curves), extra=extra)
