"""One figure style for every bandpo plot: palette, line styles, fonts and byte-stable saving.

* Colours are the Okabe–Ito palette (Okabe & Ito, *Color Universal Design*, 2008), which stays
  distinguishable under the common colour-vision deficiencies.  Yellow is left out: it is
  unreadable as a thin line on white.  With more curves than colours, the line style changes
  (solid, dashed, dash-dotted, dotted), so no two divergences share colour *and* style.
* Labels are the registry's LaTeX ``Divergence.label`` rendered by matplotlib's mathtext, so no
  system LaTeX is needed.
* :func:`save_figure` writes PNG/PDF/SVG with the timestamps and the random SVG ids removed, so a
  figure regenerated from the same data is byte-identical (figures can be committed and diffed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.ticker
import numpy as np

from bandpo.divergences import DIVERGENCES, Divergence, divergence_names

__all__ = [
    "BASELINE_STYLE",
    "FORMATS",
    "OKABE_ITO",
    "REFERENCE_COLOR",
    "divergence_style",
    "figure_style",
    "legend_below",
    "logit_p_axis",
    "parse_formats",
    "save_figure",
]

#: Okabe–Ito colours (yellow #F0E442 omitted: too light for lines on white).
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
)

#: Colour of reference curves (simplex limits, tolerance bars): a neutral grey.
REFERENCE_COLOR = "#7f7f7f"

_LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", (0, (1, 1.5)))

#: Styles of the fixed-interval baselines (PPO clip, Clip-Higher, DCPO) in comparison plots.
BASELINE_STYLE: dict[str, dict[str, Any]] = {
    "ppo_clip": dict(color="#000000", linestyle=(0, (4, 2)), label=r"PPO clip ($\epsilon=0.2$)"),
    "clip_higher": dict(
        color="#E69F00", linestyle=(0, (6, 2, 1, 2)), label=r"Clip-Higher ($0.2/0.28$)"
    ),
    "dcpo": dict(color="#56B4E9", linestyle=(0, (1, 1.2)), lw=2.0, label="DCPO"),
}

#: The file formats :func:`save_figure` writes.
FORMATS: tuple[str, ...] = ("png", "pdf", "svg")

_RC: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.5,
    "legend.frameon": False,
    "mathtext.fontset": "dejavusans",
    "axes.prop_cycle": mpl.cycler(color=list(OKABE_ITO)),
    # deterministic SVG element ids (otherwise random per run)
    "svg.hashsalt": "bandpo",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
}


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """Context manager applying bandpo's matplotlib style (restores the caller's afterwards)."""
    with mpl.rc_context(_RC):
        yield


def divergence_style(div: Divergence) -> dict[str, Any]:
    """Line properties of one divergence: a fixed colour/line style by registry position.

    The style depends only on the divergence's name and parameters, so the same divergence looks
    the same in every figure.  Parametric entries (``alpha`` at several α) get successive styles
    after the plain names.
    """
    names = divergence_names()
    index = names.index(div.name)
    if div.params and dict(div.params) != dict(DIVERGENCES[div.name].params):
        # A non-default parameter (alpha at α = -1 or 2, say): shift by a stable function of
        # the value so that it differs from the default entry and from the plain names.
        value = next(iter(div.params.values()))
        free = len(OKABE_ITO) * len(_LINESTYLES) - len(names)
        index = len(names) + round(abs(value) * 4) % free
    color = OKABE_ITO[index % len(OKABE_ITO)]
    linestyle = _LINESTYLES[(index // len(OKABE_ITO)) % len(_LINESTYLES)]
    return {"color": color, "linestyle": linestyle, "label": div.label}


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """Parse ``"png,pdf"`` or an iterable of names into a tuple of known formats.

    Raises:
        ValueError: an unknown format (the message lists :data:`FORMATS`).
    """
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = tuple(dict.fromkeys(s.strip().lower().lstrip(".") for s in items if s.strip()))
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}; got {formats!r}")
    return out


def _metadata(fmt: str) -> dict[str, Any]:
    # Remove everything that varies between runs or machines (dates, software versions).
    if fmt == "png":
        return {"Software": None}
    if fmt == "pdf":
        return {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}
    if fmt == "svg":
        return {"Creator": None, "Date": None}
    return {}


def save_figure(fig: Any, out_dir: str | Path, stem: str, formats: Sequence[str] = ("png",)):
    """Write ``fig`` as ``out_dir/stem.<fmt>`` for each format, byte-stable across runs.

    Args:
        fig: A matplotlib Figure.
        out_dir: Directory (created if missing).
        stem: File name without extension.
        formats: Any of :data:`FORMATS`.

    Returns:
        The list of written paths, in the order of ``formats``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with figure_style():
        for fmt in parse_formats(formats):
            path = out / f"{stem}.{fmt}"
            fig.savefig(path, format=fmt, metadata=_metadata(fmt))
            paths.append(path)
    return paths


def _p_tick_label(p: float) -> str:
    if p == 0.5:
        return r"$\frac{1}{2}$"
    if p < 0.5:
        return rf"$10^{{{round(np.log10(p))}}}$"
    return rf"$1{{-}}10^{{{round(np.log10(1 - p))}}}$"


def logit_p_axis(ax: Any, p_min: float, p_max: float, axis: str = "x") -> None:
    """Put probabilities on a logit axis with uncluttered ticks at 10^-k, ½ and 1 − 10^-k.

    The logit scale spreads both tails (tail tokens p → 0 and head tokens p → 1) evenly; the
    default tick labels of that scale overlap, so ticks are placed every few decades instead.
    """
    # decade exponents just inside the limits (2 % slack for values like 9.99999e-13)
    lo = int(np.ceil(np.log10(p_min) - 0.01))
    hi = int(np.ceil(np.log10(-np.expm1(np.log(p_max))) - 0.01))
    ticks = [10.0**k for k in sorted({lo, round(lo / 2)}) if k <= -1]
    ticks += [0.5] + [1 - 10.0**k for k in sorted({round(hi / 2), hi}, reverse=True) if k <= -1]
    ticks = [t for t in ticks if p_min * (1 - 1e-9) <= t <= p_max * (1 + 1e-12)]
    getattr(ax, f"set_{axis}scale")("logit")
    getattr(ax, f"set_{axis}lim")(p_min, p_max)
    target = getattr(ax, f"{axis}axis")
    target.set_major_locator(mpl.ticker.FixedLocator(ticks))
    target.set_major_formatter(mpl.ticker.FixedFormatter([_p_tick_label(t) for t in ticks]))
    target.set_minor_locator(mpl.ticker.NullLocator())


def legend_below(fig, ax, ncol: int) -> None:
    """One figure legend centred under the axes (from ``ax``'s handles), ``ncol`` per row, and
    the layout tightened so that every legend row keeps its room below the plots."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, -0.01))
    fig.tight_layout(rect=(0, 0.06 + 0.05 * ((len(labels) - 1) // ncol), 1, 1))
