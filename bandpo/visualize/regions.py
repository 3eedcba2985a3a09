"""Figure 4: clipping regions in the (p, r) plane, Band-KL against Clip-Higher (cf. BandPO Fig. 2).

Per token, the clipped surrogate max(−A·r, −A·clip(r, r₋, r₊)) has zero gradient when the ratio
has left the interval in the direction the advantage pushes it:

* A > 0: the token is clipped when r > r₊(p);
* A < 0: the token is clipped when r < r₋(p), and, with dual-clip, when r > c (c = 3).

The figure marks, in the plane of old probability p and ratio r, where only Clip-Higher clips
(tokens the Band still trains), where only the Band clips, and where both do; ratios above 1/p
are unreachable (π(a) would exceed 1).

Reference: BandPO, arXiv 2603.04918, Fig. 2; THEORY.md §6.
"""

from __future__ import annotations

import numpy as np

from bandpo.divergences import Divergence, resolve_divergence
from bandpo.visualize.data import (
    FigureResult,
    Solver,
    band_curve,
    baseline_curve,
    logit_log_p_grid,
)
from bandpo.visualize.style import (
    BASELINE_STYLE,
    OKABE_ITO,
    figure_style,
    logit_p_axis,
)

__all__ = ["plot_clipping_regions"]

_BAND_ONLY = OKABE_ITO[0]  # blue
_FIXED_ONLY = BASELINE_STYLE["clip_higher"]["color"]  # orange
_BOTH = "#9a9a9a"


def plot_clipping_regions(
    divergence: str | Divergence = "kl",
    delta: float = 0.05,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    dual_clip: float | None = 3.0,
    p_range: tuple[float, float] = (1e-4, 1 - 1e-4),
    r_range: tuple[float, float] = (0.1, 100.0),
    n: int = 401,
    solver: Solver = "band",
) -> FigureResult:
    """Shade where the Band and Clip-Higher zero a token's gradient, for A > 0 and A < 0.

    Args:
        divergence: Band divergence (default ``kl``, the paper's BandKL).
        delta: Trust-region radius δ.
        eps_low, eps_high: Clip-Higher's ε₋ and ε₊.
        dual_clip: Dual-clip constant c for A < 0 (``None``: no dual-clip region).
        p_range: p limits of the plot (logit axis).
        r_range: r limits of the plot (log axis); regions extend to its edges.
        n: Grid points in p.
        solver: ``"band"`` (torch :func:`bandpo.band_bounds`) or ``"oracle"``.

    Returns:
        A :class:`~bandpo.visualize.data.FigureResult` named ``"clipping_regions"``; curves are
        the Band and the Clip-Higher interval on the grid, ``extra`` holds ``p`` and
        ``simplex_upper`` (1/p).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    div = resolve_divergence(divergence)
    grid = logit_log_p_grid(p_range[0], p_range[1], n)
    band = band_curve(grid, delta, div, solver=solver)
    fixed = baseline_curve(grid, "clip_higher", eps_low=eps_low, eps_high=eps_high)
    p = band.p
    r_lo, r_hi = r_range
    # Drawing only: clip the curves to the visible range so fills reach the frame.
    b_up, b_lo = np.clip(band.upper, r_lo, r_hi), np.clip(band.lower, r_lo, r_hi)
    f_up, f_lo = np.clip(fixed.upper, r_lo, r_hi), np.clip(fixed.lower, r_lo, r_hi)
    ceiling = np.clip(1 / p, r_lo, r_hi)
    band_name = f"Band-{div.label}"
    with figure_style():
        fig, (ax_pos, ax_neg) = plt.subplots(1, 2, figsize=(8.6, 3.9), sharey=True)
        # A > 0: clipped above the upper bound (below the simplex ceiling 1/p)
        top = ceiling
        ax_pos.fill_between(p, np.maximum(b_up, f_up), top, color=_BOTH, alpha=0.5, lw=0)
        ax_pos.fill_between(
            p, f_up, np.minimum(b_up, top), where=b_up > f_up, color=_FIXED_ONLY, alpha=0.45, lw=0
        )
        ax_pos.fill_between(
            p, b_up, np.minimum(f_up, top), where=f_up > b_up, color=_BAND_ONLY, alpha=0.6, lw=0
        )
        ax_pos.plot(p, band.upper, color=_BAND_ONLY, lw=1.6)
        ax_pos.plot(p, fixed.upper, color=_FIXED_ONLY, lw=1.6, ls=(0, (6, 2, 1, 2)))
        ax_pos.text(1.4 * p_range[0], 1.6, "tail tokens the Band\nstill trains", fontsize=7.5)
        ax_pos.set_title(r"Advantage $A > 0$: clipped when $r > r_+(p)$")
        # A < 0: clipped below the lower bound, and above c with dual-clip
        bottom = np.full_like(p, r_lo)
        ax_neg.fill_between(p, bottom, np.minimum(b_lo, f_lo), color=_BOTH, alpha=0.5, lw=0)
        ax_neg.fill_between(p, b_lo, f_lo, where=f_lo > b_lo, color=_FIXED_ONLY, alpha=0.45, lw=0)
        ax_neg.fill_between(p, f_lo, b_lo, where=b_lo > f_lo, color=_BAND_ONLY, alpha=0.6, lw=0)
        ax_neg.plot(p, band.lower, color=_BAND_ONLY, lw=1.6)
        ax_neg.plot(p, fixed.lower, color=_FIXED_ONLY, lw=1.6, ls=(0, (6, 2, 1, 2)))
        if dual_clip is not None:
            c = float(dual_clip)
            ax_neg.fill_between(
                p,
                np.minimum(c, ceiling),
                ceiling,
                where=ceiling > c,
                facecolor="none",
                edgecolor="#555555",
                hatch="///",
                lw=0,
            )
            ax_neg.axhline(c, color="#555555", lw=0.8)
        ax_neg.set_title(r"Advantage $A < 0$: clipped when $r < r_-(p)$")
        for ax in (ax_pos, ax_neg):
            ax.fill_between(p, ceiling, r_hi, color="#333333", alpha=0.85, lw=0)
            logit_p_axis(ax, p_range[0], p_range[1])
            ax.set_yscale("log")
            ax.set_ylim(r_lo, r_hi)
            ax.set_xlabel(r"old probability $p$")
            ax.grid(True, which="major", alpha=0.35)
        ax_pos.set_ylabel(r"ratio $r = \pi/\pi_{\mathrm{old}}$")
        handles = [
            Patch(color=_FIXED_ONLY, alpha=0.45, label="clipped by Clip-Higher only"),
            Patch(color=_BAND_ONLY, alpha=0.6, label=f"clipped by {band_name} only"),
            Patch(color=_BOTH, alpha=0.5, label="clipped by both"),
            Patch(color="#333333", alpha=0.85, label=r"unreachable ($r > 1/p$)"),
        ]
        if dual_clip is not None:
            handles.append(
                Patch(
                    facecolor="none",
                    edgecolor="#555555",
                    hatch="///",
                    label=rf"dual-clip, both ($r > c = {dual_clip:g}$)",
                )
            )
        fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.01))
        fig.suptitle(
            rf"Clipping regions: {band_name} ($\delta={delta:g}$) vs Clip-Higher "
            rf"($\epsilon_-={eps_low:g},\ \epsilon_+={eps_high:g}$)",
            y=1.0,
        )
        fig.tight_layout(rect=(0, 0.11, 1, 1))
    return FigureResult(
        name="clipping_regions",
        figure=fig,
        curves=(band, fixed),
        extra={"p": p, "simplex_upper": 1 / p},
    )
