"""The numbers behind the figures: probability grids and band curves from bandpo's solvers.

Every figure plots arrays computed here, and its result record keeps them, so a test (or a
notebook) can compare what was drawn with the solver directly.

Bands come from :func:`bandpo.band_bounds` (the torch solver, float64) by default; pass
``solver="oracle"`` to use the mpmath oracle point by point instead (slower, 50 digits rounded
to float64).  The grids are built in log-probability, as training code holds it, so that points
near p = 1 are exact (1 − p is never formed by subtraction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bandpo.divergences import Divergence, resolve_divergence

__all__ = [
    "BandCurve",
    "FigureResult",
    "band_curve",
    "baseline_curve",
    "logit_log_p_grid",
    "tail_log_p_grid",
]

Solver = Literal["band", "oracle"]


@dataclass(frozen=True)
class BandCurve:
    """A band [r₋(p), r₊(p)] sampled on a grid of probabilities.

    Attributes:
        name: Divergence key (``"kl"``, ``"alpha_0.5"``) or baseline name (``"ppo_clip"``).
        label: Legend label (LaTeX for divergences).
        delta: Trust-region radius δ (``nan`` for the fixed-interval baselines).
        log_p: float64 log-probabilities of the grid.
        p: ``exp(log_p)``.
        lower, upper: float64 band ends r₋ and r₊.
        solver: What computed the band (``"band_bounds"``, ``"oracle"`` or the baseline name).
    """

    name: str
    label: str
    delta: float
    log_p: np.ndarray
    p: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    solver: str

    @property
    def width(self) -> np.ndarray:
        """W(p) = r₊ − r₋."""
        return self.upper - self.lower

    @property
    def margin_up(self) -> np.ndarray:
        """Largest upward probability change p·(r₊ − 1)."""
        return self.p * (self.upper - 1.0)

    @property
    def margin_down(self) -> np.ndarray:
        """Largest downward probability change p·(r₋ − 1) (≤ 0)."""
        return self.p * (self.lower - 1.0)


def logit_log_p_grid(p_min: float = 1e-6, p_max: float = 1 - 1e-6, n: int = 241) -> np.ndarray:
    """log p on a grid uniform in logit(p): dense in both tails, exact near p = 1.

    log p = −log(1 + e^{−t}) for t uniform in [logit(p_min), logit(p_max)]; computed with
    ``log1p`` so that 1 − p = e^{−t}·p is never formed by subtraction.
    """
    if not 0 < p_min < p_max < 1:
        raise ValueError(f"need 0 < p_min < p_max < 1, got p_min={p_min}, p_max={p_max}")
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    t = np.linspace(np.log(p_min) - np.log1p(-p_min), np.log(p_max) - np.log1p(-p_max), n)
    return -np.logaddexp(0.0, -t)


def tail_log_p_grid(p_min: float = 1e-6, p_max: float = 1.0, n: int = 241) -> np.ndarray:
    """log p uniform in log p from ``p_min`` to ``p_max`` (``p_max`` may be 1)."""
    if not 0 < p_min < p_max <= 1:
        raise ValueError(f"need 0 < p_min < p_max <= 1, got p_min={p_min}, p_max={p_max}")
    return np.linspace(np.log(p_min), np.log(p_max), n)


def band_curve(
    log_p: np.ndarray,
    delta: float,
    divergence: str | Divergence = "kl",
    *,
    solver: Solver = "band",
    **params: Any,
) -> BandCurve:
    """The band of one divergence at one δ on a grid of log-probabilities.

    Args:
        log_p: 1-D float array of log-probabilities (≤ 0).
        delta: Trust-region radius δ > 0.
        divergence: Registry name or Divergence.
        solver: ``"band"`` (:func:`bandpo.band_bounds` in float64) or ``"oracle"``
            (:func:`bandpo.oracle_band` at 30 digits, rounded to float64).
        **params: Divergence parameters (``alpha=``).

    Returns:
        A :class:`BandCurve`.
    """
    div = resolve_divergence(divergence, **params)
    log_p = np.asarray(log_p, dtype=np.float64)
    if solver == "band":
        import torch

        from bandpo.solvers.band import band_bounds

        band = band_bounds(torch.from_numpy(log_p.copy()), float(delta), div)
        lower = band.lower.double().numpy().copy()
        upper = band.upper.double().numpy().copy()
        used = "band_bounds"
    elif solver == "oracle":
        import mpmath

        from bandpo.solvers.oracle import oracle_band

        lo, up = [], []
        for lp in log_p:
            # exp(log p) at 30 digits from the float64 log p: the oracle sees the exact input
            p = mpmath.exp(mpmath.mpf(float(lp)))
            b = oracle_band(p, delta, div, dps=30)
            lo.append(float(b.lower))
            up.append(float(b.upper))
        lower, upper = np.array(lo), np.array(up)
        used = "oracle"
    else:
        raise ValueError(f"solver must be 'band' or 'oracle', got {solver!r}")
    return BandCurve(
        name=div.key,
        label=div.label,
        delta=float(delta),
        log_p=log_p,
        p=np.exp(log_p),
        lower=lower,
        upper=upper,
        solver=used,
    )


def baseline_curve(log_p: np.ndarray, name: str, **kwargs: Any) -> BandCurve:
    """A fixed-interval baseline (``ppo_clip``, ``clip_higher``, ``dcpo``) on a log p grid.

    The interval comes from :mod:`bandpo.solvers.baselines` with its default parameters unless
    ``kwargs`` override them (e.g. ``eps=0.2``).
    """
    import torch

    from bandpo.solvers import baselines
    from bandpo.visualize.style import BASELINE_STYLE

    if name not in BASELINE_STYLE:
        raise ValueError(f"baseline must be one of {', '.join(BASELINE_STYLE)}, got {name!r}")
    log_p = np.asarray(log_p, dtype=np.float64)
    band = getattr(baselines, name)(torch.from_numpy(log_p.copy()), **kwargs)
    return BandCurve(
        name=name,
        label=BASELINE_STYLE[name]["label"],
        delta=float("nan"),
        log_p=log_p,
        p=np.exp(log_p),
        lower=np.asarray(band.lower, dtype=np.float64).copy(),
        upper=np.asarray(band.upper, dtype=np.float64).copy(),
        solver=name,
    )


@dataclass
class FigureResult:
    """A figure together with every curve it plots.

    Attributes:
        name: File stem used by :meth:`save` (``"band_width"``).
        figure: The matplotlib Figure.
        curves: The band curves drawn, in drawing order.
        extra: Further plotted arrays by name (reference lines, regions, errors).
    """

    name: str
    figure: Any
    curves: tuple[BandCurve, ...] = ()
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def curve(self, name: str, delta: float | None = None) -> BandCurve:
        """The curve of divergence key / baseline ``name`` (at ``delta`` when several)."""
        for c in self.curves:
            if c.name == name and (delta is None or np.isclose(c.delta, delta, rtol=1e-15)):
                return c
        raise KeyError(f"no curve {name!r} at delta={delta} in figure {self.name!r}")

    def save(self, out_dir: str | Path, formats: Sequence[str] = ("png",)) -> list[Path]:
        """Write the figure as ``out_dir/<name>.<fmt>`` (see :func:`save_figure`)."""
        from bandpo.visualize.style import save_figure

        return save_figure(self.figure, out_dir, self.name, formats)
