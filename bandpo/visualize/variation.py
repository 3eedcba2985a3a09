"""Figure 3: the probability variation Δπ = p·(r − 1) each clipping rule allows (cf. BandPO Fig. 1).

A ratio bound r caps the change of the action's probability at p·(r₊ − 1) upwards and
p·(r₋ − 1) downwards.  The simplex caps it at 1 − p upwards and −p downwards.  Fixed clips
(PPO, Clip-Higher) give ε·p: tail tokens (small p) can barely move, whatever their advantage.
DCPO's p-dependent bound grows as p falls, but near p = 1 its upper bound exceeds 1/p, i.e. it
asks for more probability than exists.  The Band never leaves the simplex by construction.

Reference: BandPO, arXiv 2603.04918, §1 and Fig. 1; THEORY.md §1 and §6.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bandpo.divergences import Divergence, resolve_divergence
from bandpo.visualize.data import (
    FigureResult,
    Solver,
    band_curve,
    baseline_curve,
    logit_log_p_grid,
    tail_log_p_grid,
)
from bandpo.visualize.style import (
    BASELINE_STYLE,
    REFERENCE_COLOR,
    divergence_style,
    figure_style,
    legend_below,
)

__all__ = ["DEFAULT_VARIATION_DIVERGENCES", "plot_probability_variation"]

#: The Band divergences compared with the fixed clips by default.
DEFAULT_VARIATION_DIVERGENCES: tuple[str, ...] = ("kl", "tv", "chi2")


_YLIM = 0.45


def _mark_simplex_crossing(ax, dcpo) -> None:
    """Point at the first p where DCPO's upper bound asks for more than the simplex holds."""
    over = np.flatnonzero(dcpo.margin_up > -np.expm1(dcpo.log_p))
    if over.size == 0:
        return
    i = over[len(over) // 2]
    ax.annotate(
        "DCPO leaves\nthe simplex",
        xy=(dcpo.p[i], dcpo.margin_up[i]),
        xytext=(0.36, 0.34),
        fontsize=7.5,
        arrowprops=dict(arrowstyle="->", lw=0.8, color="#333333"),
    )


def _band_label(div: Divergence) -> str:
    return f"Band-{div.label}"


def plot_probability_variation(
    divergences: Sequence[str | Divergence] = DEFAULT_VARIATION_DIVERGENCES,
    delta: float = 0.05,
    *,
    baselines: Sequence[str] = ("ppo_clip", "clip_higher", "dcpo"),
    n: int = 401,
    tail_p_min: float = 1e-4,
    solver: Solver = "band",
) -> FigureResult:
    """Plot Δπ = p·(r − 1) at both band ends for Band divergences and fixed-clip baselines.

    Left panel: linear p on (0, 1) with both ends and the simplex limits 1 − p and −p (the
    region outside them is infeasible and shaded).  Right panel: the upward margin p·(r₊ − 1)
    of the tail tokens on log–log axes.

    Args:
        divergences: Band divergences to draw (default ``kl``, ``tv``, ``chi2``).
        delta: Trust-region radius δ of the Band curves.
        baselines: Names of :mod:`bandpo.solvers.baselines` rules, at their default parameters.
        n: Points per grid.
        tail_p_min: Smallest p of the tail panel.
        solver: ``"band"`` (torch :func:`bandpo.band_bounds`) or ``"oracle"``.

    Returns:
        A :class:`~bandpo.visualize.data.FigureResult` named ``"probability_variation"``.  Its
        curves are, for each divergence then each baseline, the curve on the linear grid followed
        by the curve on the tail grid; ``extra`` holds ``p`` and ``p_tail`` (the grids) and
        ``simplex_up`` (1 − p) and ``simplex_down`` (−p) on the linear grid.
    """
    import matplotlib.pyplot as plt

    divs = [resolve_divergence(d) for d in divergences]
    lin = logit_log_p_grid(1e-3, 1 - 1e-3, n)
    tail = tail_log_p_grid(tail_p_min, 1.0, n)
    p, p_tail = np.exp(lin), np.exp(tail)
    simplex_up = -np.expm1(lin)  # 1 − p without cancellation near p = 1
    curves = []
    with figure_style():
        fig, (ax, ax_t) = plt.subplots(1, 2, figsize=(8.6, 3.8))
        # the infeasible regions Δπ > 1 − p and Δπ < −p
        ax.fill_between(p, simplex_up, 1.0, color=REFERENCE_COLOR, alpha=0.18, lw=0)
        ax.fill_between(p, -p, -1.0, color=REFERENCE_COLOR, alpha=0.18, lw=0)
        ax.plot(p, simplex_up, color=REFERENCE_COLOR, lw=2.0, label=r"simplex $1-p,\ -p$")
        ax.plot(p, -p, color=REFERENCE_COLOR, lw=2.0)
        ax_t.plot(p_tail, -np.expm1(tail), color=REFERENCE_COLOR, lw=2.0)
        entries = [
            (d, band_curve, {"delta": delta, "divergence": d, "solver": solver}) for d in divs
        ]
        entries += [(b, baseline_curve, {"name": b}) for b in baselines]
        for key, fn, kwargs in entries:
            c, ct = fn(lin, **kwargs), fn(tail, **kwargs)
            curves += [c, ct]
            if isinstance(key, Divergence):
                style = {**divergence_style(key), "label": _band_label(key)}
            else:
                style = dict(BASELINE_STYLE[key])
            ax.plot(c.p, c.margin_up, **style)
            ax.plot(c.p, c.margin_down, **{**style, "label": None})
            ax_t.plot(ct.p, ct.margin_up, **{**style, "label": None})
        if "dcpo" in baselines:
            _mark_simplex_crossing(ax, curves[2 * len(divs) + 2 * list(baselines).index("dcpo")])
        ax.set_xlim(0, 1)
        # zoomed on the curves (the simplex limits still enter where they bind)
        ax.set_ylim(-_YLIM, _YLIM)
        ax.set_xlabel(r"old probability $p$")
        ax.set_ylabel(r"allowed change $\Delta\pi = p\,(r-1)$")
        ax.set_title(rf"Both ends, $\delta = {delta:g}$")
        ax.text(0.985, 0.97 * _YLIM, "infeasible", ha="right", va="top", fontsize=7.5)
        ax.text(0.015, -0.97 * _YLIM, "infeasible", ha="left", va="bottom", fontsize=7.5)
        ax_t.text(
            3 * p_tail[0],
            0.13 * p_tail[0],
            r"fixed clips choke tail tokens: $\Delta\pi \leq \epsilon\,p$",
            fontsize=7.5,
        )
        ax_t.set_xscale("log")
        ax_t.set_yscale("log")
        ax_t.set_xlim(p_tail[0], 1)
        ax_t.set_ylim(p_tail[0] * 0.1, 1.5)
        ax_t.set_xlabel(r"old probability $p$")
        ax_t.set_ylabel(r"upward margin $p\,(r_+-1)$")
        ax_t.set_title("Tail tokens: upward margin")
        legend_below(fig, ax, ncol=4)
    return FigureResult(
        name="probability_variation",
        figure=fig,
        curves=tuple(curves),
        extra={"p": p, "p_tail": p_tail, "simplex_up": simplex_up, "simplex_down": -p},
    )
