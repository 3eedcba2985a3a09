"""Figure 5: verification plots.

* :func:`solver_ulp_errors` / :func:`plot_solver_ulps`: the torch solver's error, in units in the
  last place of each dtype, against the golden tables (``bandpo/data/golden``: the mpmath
  oracle at 50 digits, stored to 36 digits, rounded *once* to the dtype), for every tabulated
  divergence, as a function of p (worst over δ and over both ends).
* :func:`plot_convex_agreement`: CVXPY over the full simplex (:func:`bandpo.convex_band`)
  against the 1-D oracle: relative error of each bound against p.

The error of a bound b against its reference b* (both in the dtype) is |b − b*| / ulp(b*),
with ulp(x) = spacing(max(|x|, tiny)) in the dtype: below the smallest normal number a result
cannot carry relative accuracy, so it is measured in the spacing of ``tiny`` (the rule of
:mod:`bandpo.tolerances`).  A correctly rounded solver scores 0 ulp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandpo.divergences import Divergence
from bandpo.visualize.data import FigureResult
from bandpo.visualize.style import (
    REFERENCE_COLOR,
    divergence_style,
    figure_style,
    legend_below,
    logit_p_axis,
)

__all__ = [
    "ConvexPoint",
    "SolverErrors",
    "plot_convex_agreement",
    "plot_solver_ulps",
    "solver_ulp_errors",
    "ulp_error",
]

#: Errors of 0 ulp are drawn at this value on the log axis (stated on the axis label).
ZERO_ULP_FLOOR = 0.125


def ulp_error(got: np.ndarray, ref: np.ndarray, np_dtype: Any) -> np.ndarray:
    """|got − ref| in ulps of ``ref`` in ``np_dtype`` (0 where both are equal, inf included).

    Args:
        got, ref: Arrays of the same shape (values representable in ``np_dtype``).
        np_dtype: numpy float dtype whose ulp is the unit.

    Returns:
        float64 array; NaN where exactly one of the two is NaN or an infinity differs.
    """
    dt = np.dtype(np_dtype)
    got64 = np.asarray(got, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    tiny = np.finfo(dt).tiny
    mag = np.maximum(np.abs(ref64), tiny).astype(dt)
    unit = np.spacing(mag).astype(np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(got64 - ref64) / unit
    same = (got64 == ref64) | (np.isnan(got64) & np.isnan(ref64))
    return np.where(same, 0.0, err)


@dataclass(frozen=True)
class SolverErrors:
    """Per-point errors of a solver against one golden table in one dtype.

    Attributes:
        divergence: The tabulated divergence.
        dtype: torch dtype of the input and output.
        log_p, delta: The golden grid (float64).
        lower_ulp, upper_ulp: Error of each end in ulps of ``dtype`` (see :func:`ulp_error`).
    """

    divergence: Divergence
    dtype: Any
    log_p: np.ndarray
    delta: np.ndarray
    lower_ulp: np.ndarray
    upper_ulp: np.ndarray

    @property
    def worst_ulp(self) -> float:
        """Largest error over the table, both ends."""
        return float(np.nanmax(np.maximum(self.lower_ulp, self.upper_ulp)))

    def worst_per_p(self) -> tuple[np.ndarray, np.ndarray]:
        """(unique log p, worst error over δ and both ends at that log p)."""
        keys, inv = np.unique(self.log_p, return_inverse=True)
        worst = np.zeros(len(keys))
        np.maximum.at(worst, inv, np.fmax(self.lower_ulp, self.upper_ulp))
        return keys, worst


def solver_ulp_errors(
    solver: Callable[..., Any] | None = None,
    divergences: Iterable[Divergence] | None = None,
    dtypes: Sequence[Any] | None = None,
) -> list[SolverErrors]:
    """Run ``solver`` on every golden table in every dtype and measure its error in ulps.

    Args:
        solver: ``fn(old_log_prob, delta, divergence) -> (lower, upper)`` on torch tensors
            (default :func:`bandpo.band_bounds`); called once per (table, δ, dtype).
        divergences: Tabulated divergences (default :func:`bandpo.golden.golden_divergences`).
        dtypes: torch dtypes (default float64 and float32).

    Returns:
        One :class:`SolverErrors` per (divergence, dtype).
    """
    import torch

    from bandpo.golden import golden_divergences, load_golden

    if solver is None:
        from bandpo.solvers.band import band_bounds as solver
    divs = list(golden_divergences() if divergences is None else divergences)
    dtypes = (torch.float64, torch.float32) if dtypes is None else tuple(dtypes)
    out = []
    for div in divs:
        table = load_golden(div)
        for dtype in dtypes:
            np_dtype = np.dtype(str(dtype).replace("torch.", ""))
            ref_lo, ref_up = table.reference(dtype)
            got_lo = np.empty(len(table), dtype=np_dtype)
            got_up = np.empty(len(table), dtype=np_dtype)
            for delta in np.unique(table.delta):
                rows = table.delta == delta
                x = torch.from_numpy(table.log_p[rows].astype(np_dtype))
                lo, up = solver(x, float(delta), div)
                got_lo[rows] = np.asarray(torch.as_tensor(lo).to(dtype), dtype=np_dtype)
                got_up[rows] = np.asarray(torch.as_tensor(up).to(dtype), dtype=np_dtype)
            out.append(
                SolverErrors(
                    divergence=div,
                    dtype=dtype,
                    log_p=table.log_p,
                    delta=table.delta,
                    lower_ulp=ulp_error(got_lo, ref_lo, np_dtype),
                    upper_ulp=ulp_error(got_up, ref_up, np_dtype),
                )
            )
    return out


def plot_solver_ulps(errors: Sequence[SolverErrors] | None = None) -> FigureResult:
    """Plot the worst error (over δ and both ends) in ulps against p, one panel per dtype.

    Args:
        errors: Output of :func:`solver_ulp_errors` (computed for :func:`bandpo.band_bounds`
            when omitted).

    Returns:
        A :class:`~bandpo.visualize.data.FigureResult` named ``"solver_ulps"``.  ``extra`` holds,
        per ``"<divergence key>/<dtype>"``, the plotted p and the worst error per p (``"/p"`` and
        ``"/worst_ulp"`` suffixes).  The p = 1 rows of the tables are checked but not drawn (a
        logit axis cannot show p = 1).
    """
    import matplotlib.pyplot as plt

    from bandpo.tolerances import tolerance_for

    errors = list(solver_ulp_errors() if errors is None else errors)
    dtypes = list(dict.fromkeys(e.dtype for e in errors))
    extra: dict[str, np.ndarray] = {}
    with figure_style():
        fig, axes = plt.subplots(1, len(dtypes), figsize=(4.3 * len(dtypes), 3.6), squeeze=False)
        axes = axes[0]
        for ax, dtype in zip(axes, dtypes, strict=True):
            tol = tolerance_for(dtype)
            p_min, p_max = 1.0, 0.0
            top = tol.ulp
            for e in (e for e in errors if e.dtype == dtype):
                log_p, worst = e.worst_per_p()
                keep = log_p < 0
                p, worst = np.exp(log_p[keep]), worst[keep]
                key = f"{e.divergence.key}/{str(dtype).replace('torch.', '')}"
                extra[key + "/p"], extra[key + "/worst_ulp"] = p, worst
                style = divergence_style(e.divergence)
                if e.divergence.params:
                    style["label"] = e.divergence.label
                ax.plot(p, np.maximum(worst, ZERO_ULP_FLOOR), marker=".", ms=3, lw=0.9, **style)
                p_min, p_max = min(p_min, p.min()), max(p_max, p.max())
                top = max(top, float(np.nanmax(worst)))
            if top == tol.ulp and all(
                float(np.nanmax(e.worst_per_p()[1])) == 0 for e in errors if e.dtype == dtype
            ):
                # every curve sits on the floor, drawn over each other: say so in words
                ax.text(
                    0.5,
                    0.5,
                    "every bound of every divergence\ncorrectly rounded (0 ulp)",
                    transform=ax.transAxes,
                    ha="center",
                    fontsize=8.5,
                    color="#444444",
                )
            ax.axhline(tol.ulp, color=REFERENCE_COLOR, lw=1.5, ls="--")
            # label at the right end, where p → 1 errors are small: it never hides a curve there
            ax.text(
                0.98,
                tol.ulp * 1.3,
                f"bar: {tol.ulp:.3g} ulp",
                transform=ax.get_yaxis_transform(),
                ha="right",
                fontsize=7.5,
                color="#444444",
            )
            logit_p_axis(ax, p_min, p_max)
            ax.set_yscale("log")
            ax.set_ylim(ZERO_ULP_FLOOR / 1.5, top * 6)
            name = str(dtype).replace("torch.", "")
            ax.set_title(f"{name}: error against the golden tables")
            ax.set_xlabel(r"old probability $p$")
            ax.set_ylabel(f"worst error (ulp of {name}; 0 drawn at 1/8)")
        legend_below(fig, axes[0], ncol=6)
    return FigureResult(name="solver_ulps", figure=fig, curves=(), extra=extra)


@dataclass(frozen=True)
class ConvexPoint:
    """One CVXPY-versus-oracle comparison of one band end.

    Attributes:
        divergence: Divergence key.
        p: Probability of the action under q.
        side: ``"lower"`` or ``"upper"``.
        error: |convex − oracle| / oracle, or |convex − oracle| where the oracle value is below
            1e-3 (``error_kind``), the rule of issue #5's bar.
        error_kind: ``"rel"`` or ``"abs"``.
    """

    divergence: str
    p: float
    side: str
    error: float
    error_kind: str = "rel"


def _marker_for(style: dict[str, Any]) -> str:
    # a scatter has no line style: give the divergences that share a colour distinct markers
    ls = style.get("linestyle", "-")
    return {"-": "o", "--": "s", "-.": "^"}.get(ls, "D") if isinstance(ls, str) else "D"


def plot_convex_agreement(
    points: Sequence[ConvexPoint], bar_rel: float = 1e-6, bar_abs: float = 1e-9
) -> FigureResult:
    """Plot CVXPY's error against the oracle against p, one panel per band end (log–log).

    Relative errors are drawn filled, absolute ones (bounds below 1e-3) open; an error of 0 is
    drawn at the bottom edge, and a bound CVXPY could not certify (error = inf) as a red cross at
    the top edge, so that failures are visible rather than silently missing.

    Args:
        points: Comparisons (built by :mod:`bandpo.verification` from ``verify_reduction``).
        bar_rel, bar_abs: The agreement bars.

    Returns:
        A :class:`~bandpo.visualize.data.FigureResult` named ``"convex_agreement"``; ``extra``
        holds ``"<divergence>/<side>/p"`` and ``"<divergence>/<side>/error"`` for each group.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from bandpo.divergences import DIVERGENCES, resolve_divergence

    extra: dict[str, np.ndarray] = {}
    floor = 1e-17
    finite = [pt.error for pt in points if np.isfinite(pt.error)]
    top = max([bar_rel * 10, *finite]) * 10
    n_failed = 0
    with figure_style():
        fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.8), sharey=True)
        names = list(dict.fromkeys(pt.divergence for pt in points))
        for name in names:
            base, _, value = name.partition("_")
            if name in DIVERGENCES:
                div = resolve_divergence(name)
            elif base == "alpha" and value:
                div = resolve_divergence("alpha", alpha=float(value))
            else:
                div = None
            style = divergence_style(div) if div is not None else {"label": name}
            marker = _marker_for(style)
            style = {**style, "linestyle": "none", "marker": marker, "ms": 4}
            for ax, side in zip(axes, ("lower", "upper"), strict=True):
                pts = [pt for pt in points if pt.divergence == name and pt.side == side]
                p = np.array([pt.p for pt in pts])
                err = np.array([pt.error for pt in pts])
                rel = np.array([pt.error_kind == "rel" for pt in pts], dtype=bool)
                bad = ~np.isfinite(err)
                n_failed += int(bad.sum())
                extra[f"{name}/{side}/p"], extra[f"{name}/{side}/error"] = p, err
                label = style.get("label") if side == "lower" else None
                shown = np.clip(err, floor, None)
                ax.plot(p[rel & ~bad], shown[rel & ~bad], **{**style, "label": label})
                ax.plot(
                    p[~rel & ~bad], shown[~rel & ~bad], **{**style, "label": None, "mfc": "none"}
                )
                ax.plot(
                    p[bad],
                    np.full(bad.sum(), top / 3),
                    ls="none",
                    marker="x",
                    color="#D55E00",
                    ms=6,
                    mew=1.5,
                )
        for ax, side in zip(axes, ("lower", "upper"), strict=True):
            ax.axhline(bar_rel, color=REFERENCE_COLOR, lw=1.5, ls="--")
            ax.axhline(bar_abs, color=REFERENCE_COLOR, lw=1.0, ls=":")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(floor / 3, top)
            ax.set_xlabel(r"$p = q(a)$")
            ax.set_title(f"CVXPY vs oracle: {side} bound")
        axes[0].set_ylabel(f"error against the oracle (0 drawn at {floor:g})")
        handles = axes[0].get_legend_handles_labels()[0]
        grey = REFERENCE_COLOR
        handles += [
            Line2D([], [], color=grey, ls="--", label=f"relative bar {bar_rel:g}"),
            Line2D([], [], color=grey, ls=":", label=f"absolute bar {bar_abs:g} (bound < 1e-3)"),
            Line2D(
                [], [], color=grey, ls="none", marker="o", mfc="none", label="open: absolute error"
            ),
            Line2D(
                [],
                [],
                color="#D55E00",
                ls="none",
                marker="x",
                mew=1.5,
                label=f"no certified bound ({n_failed})",
            ),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.01))
        rows = 1 + (len(handles) - 1) // 4
        fig.tight_layout(rect=(0, 0.05 * rows + 0.01, 1, 1))
    return FigureResult(name="convex_agreement", figure=fig, curves=(), extra=extra)
