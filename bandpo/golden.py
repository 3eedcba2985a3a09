"""Golden tables: oracle bands on a fixed (log p, δ) grid, stored as text package data.

The tables are written by ``scripts/make_golden.py`` (never inside a test) from
:func:`bandpo.oracle_band` at 50 digits and stored with 36 significant digits, one TSV file per
divergence (``alpha`` at a few α), so that a regeneration diffs line by line.  Each file's header
records the command and the library versions that produced it.

The grid is keyed by the *log-probability*, as training code holds it.  Every ``log_p`` is a
float32 number (so it is exact in float32 and in float64) and the reference band is the oracle
at p = exp(log_p) computed exactly, i.e. at the exact input value of either dtype.

* log p: p log-spaced from 1e-12 to 0.1 (4 per decade), linear from 0.1 to 0.9, then
  1 − p log-spaced from 0.1 down to 1e-9 (4 per decade), plus log p = 0 (p = 1).
* δ ∈ {1e-4, 1e-3, 0.01, 0.05, 0.1, 0.5, 1, 2} (float64 values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from bandpo.divergences import Divergence, divergence_names, resolve_divergence

__all__ = [
    "GOLDEN_ALPHAS",
    "GOLDEN_DELTAS",
    "GoldenTable",
    "golden_divergences",
    "golden_log_p_grid",
    "load_golden",
]

#: δ values of every table.
GOLDEN_DELTAS: tuple[float, ...] = (1e-4, 1e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0)

#: α values at which the parametric ``alpha`` divergence is tabulated.
GOLDEN_ALPHAS: tuple[float, ...] = (-1.0, 0.5, 2.0)

#: Significant digits stored.
GOLDEN_DIGITS = 36

COLUMNS = ("log_p", "delta", "p", "lower", "upper", "lower_saturated", "upper_saturated")


def golden_log_p_grid() -> np.ndarray:
    """The log-probability grid (float64 array of float32-exact values, ascending)."""
    p_targets: list[float] = [10.0**k for k in np.arange(-12.0, -1.0 + 1e-9, 0.25)]
    p_targets += list(np.round(np.arange(0.15, 0.9 + 1e-9, 0.05), 2))
    q_targets = [10.0**k for k in np.arange(-1.25, -9.0 - 1e-9, -0.25)]
    logs = [math.log(p) for p in p_targets] + [math.log1p(-q) for q in q_targets] + [0.0]
    grid = np.unique(np.asarray(logs, dtype=np.float32).astype(np.float64))
    return grid


def golden_divergences() -> list[Divergence]:
    """Every registered divergence, with ``alpha`` at each of :data:`GOLDEN_ALPHAS`."""
    out = []
    for name in divergence_names():
        if name == "alpha":
            out += [resolve_divergence("alpha", alpha=a) for a in GOLDEN_ALPHAS]
        else:
            out.append(resolve_divergence(name))
    return out


@dataclass(frozen=True)
class GoldenTable:
    """One divergence's golden table.

    Attributes:
        divergence: The :class:`~bandpo.divergences.Divergence` it tabulates.
        log_p, delta: float64 arrays of the grid (log_p values are float32-exact).
        lower, upper: float64 arrays, the 36-digit references rounded once to float64
            (0.0 where the true bound underflows float64).
        lower_str, upper_str, p_str: The stored 36-digit decimal strings.
        lower_saturated, upper_saturated: bool arrays (end at 0 or at 1/p exactly).
        header: The ``# key: value`` lines of the file (command, versions, ...).
    """

    divergence: Divergence
    log_p: np.ndarray
    delta: np.ndarray
    p_str: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    lower_str: tuple[str, ...]
    upper_str: tuple[str, ...]
    lower_saturated: np.ndarray
    upper_saturated: np.ndarray
    header: dict[str, str]

    def __len__(self) -> int:
        return len(self.log_p)

    def reference(self, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) rounded once from the stored decimals to a numpy dtype.

        ``dtype`` may be a numpy dtype or a torch float dtype (``torch.float32`` -> float32).
        """
        np_dtype = _numpy_dtype(dtype)
        if np_dtype == np.float64:
            return self.lower.copy(), self.upper.copy()
        conv = np.vectorize(lambda s: np_dtype.type(_decimal_to_float(s, np_dtype)))
        return (
            conv(np.asarray(self.lower_str)).astype(np_dtype),
            conv(np.asarray(self.upper_str)).astype(np_dtype),
        )


def _numpy_dtype(dtype: Any) -> np.dtype:
    name = str(dtype).replace("torch.", "")
    if name in ("bfloat16",):
        raise TypeError("numpy has no bfloat16: compare bfloat16 results in float32")
    return np.dtype(name)


def _decimal_to_float(s: str, np_dtype: np.dtype) -> float:
    # Round the decimal once to the target precision (no double rounding through float64).
    import mpmath

    bits = {np.dtype(np.float32): 24, np.dtype(np.float16): 11}[np.dtype(np_dtype)]
    with mpmath.workprec(bits):
        return float(mpmath.mpf(s))


def _parse(text: str, div: Divergence) -> GoldenTable:
    header: dict[str, str] = {}
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
        elif line.strip() and not line.startswith("log_p"):
            rows.append(line.split("\t"))
    cols = list(zip(*rows, strict=True))
    return GoldenTable(
        divergence=div,
        log_p=np.array([float(x) for x in cols[0]]),
        delta=np.array([float(x) for x in cols[1]]),
        p_str=tuple(cols[2]),
        lower=np.array([float(x) for x in cols[3]]),
        upper=np.array([float(x) for x in cols[4]]),
        lower_str=tuple(cols[3]),
        upper_str=tuple(cols[4]),
        lower_saturated=np.array([x == "1" for x in cols[5]]),
        upper_saturated=np.array([x == "1" for x in cols[6]]),
        header=header,
    )


def load_golden(divergence: str | Divergence = "kl", **params: Any) -> GoldenTable:
    """Load the golden table of one divergence (``alpha`` only at :data:`GOLDEN_ALPHAS`).

    Raises:
        ValueError: no table exists for these parameters.
    """
    div = resolve_divergence(divergence, **params)
    path = resources.files("bandpo") / "data" / "golden" / f"{div.key}.tsv"
    if not path.is_file():
        raise ValueError(
            f"no golden table for {div.display_name}; alpha is tabulated at {GOLDEN_ALPHAS}"
        )
    return _parse(path.read_text(), div)
