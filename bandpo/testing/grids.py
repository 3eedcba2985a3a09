"""Test points and their references: the golden grid, custom grids, and the p-decade regions.

A *case* is one (input value, δ) pair in one dtype together with the reference band, rounded
once to that dtype.  References come from two places, and each case set records which:

* ``golden``: the stored 36-digit oracle tables (:func:`bandpo.golden.load_golden`).  Their
  log p values are float32-exact, so for log-probability input in float32 or float64 the
  reference is the oracle at the exact input value, rounded once with ``.reference(dtype)``.
* ``oracle``: :func:`bandpo.solvers.oracle.oracle_band_detail` at the exact value the solver
  receives (custom grids, probability input, float16/bfloat16 input, the tiny-p points).  Where the
  oracle cannot resolve an end whose root lies beyond the dtype's range (``kl`` at p ≈ 1e-300 has
  r₋ ≈ 10^(-2·10^298)), that end is bracketed directly from the sign of g_f(p, r) − δ computed by
  :func:`bandpo.solvers.oracle.oracle_g`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import torch

from bandpo.divergences import Divergence
from bandpo.golden import GOLDEN_DELTAS, load_golden
from bandpo.solvers.oracle import oracle_band_detail, oracle_g

__all__ = [
    "REGIONS",
    "CaseSet",
    "Region",
    "build_cases",
    "mantissa_bits",
    "oracle_reference",
    "region_index",
    "round_to_dtype",
]

# Working precision (decimal digits) for the exact input value p = exp(log p).
_P_DPS = 120


@dataclass(frozen=True)
class Region:
    """One p-decade region of the accuracy table.

    Attributes:
        key: Stable machine name (used in ``to_dict``), e.g. ``"1-p<1e-6"``.
        label: Human label, e.g. ``"0 < 1−p < 1e-6"``.
    """

    key: str
    label: str


#: The regions, from the far tail to p = 1.  Near p = 1 they are decades of 1 − p, because that is
#: where cancellation in 1 − p shows.
REGIONS: tuple[Region, ...] = (
    Region("p<1e-9", "p < 1e-9"),
    Region("1e-9<=p<1e-6", "1e-9 ≤ p < 1e-6"),
    Region("1e-6<=p<1e-3", "1e-6 ≤ p < 1e-3"),
    Region("1e-3<=p<0.1", "1e-3 ≤ p < 0.1"),
    Region("0.1<=p<=0.9", "0.1 ≤ p ≤ 0.9"),
    Region("1e-3<=1-p<0.1", "1e-3 ≤ 1−p < 0.1"),
    Region("1e-6<=1-p<1e-3", "1e-6 ≤ 1−p < 1e-3"),
    Region("1-p<1e-6", "0 < 1−p < 1e-6"),
    Region("p=1", "p = 1"),
)

#: Index of the regions where p > 0.9, i.e. where 1 − p is small.
NEAR_ONE = (5, 6, 7)
#: Index of the regions with p < 1e-3.
SMALL_P = (0, 1, 2)
P_ONE = 8


def region_index(log_p: np.ndarray) -> np.ndarray:
    """Region number (index into :data:`REGIONS`) of each log p; −1 for NaN, −inf or log p > 0.

    1 − p is evaluated as −expm1(log p), never as 1 − exp(log p).
    """
    lp = np.asarray(log_p, dtype=np.float64)
    out = np.full(lp.shape, -1, dtype=np.int64)
    with np.errstate(all="ignore"):
        p = np.exp(lp)
        q = -np.expm1(lp)
    valid = np.isfinite(lp) & (lp <= 0)
    conds = [
        (lp == 0, 8),
        (q < 1e-6, 7),
        (q < 1e-3, 6),
        (q < 0.1, 5),
        (p >= 0.1, 4),
        (p >= 1e-3, 3),
        (p >= 1e-6, 2),
        (p >= 1e-9, 1),
    ]
    assigned = ~valid
    for cond, k in conds:
        sel = cond & ~assigned
        out[sel] = k
        assigned |= sel
    out[~assigned] = 0
    return out


# ------------------------------------------------------------------------------------- dtypes


def mantissa_bits(dtype: torch.dtype) -> int:
    """Significand bits of a torch float dtype (float64 53, float32 24, float16 11, bf16 8)."""
    return 1 - round(math.log2(torch.finfo(dtype).eps))


def round_to_dtype(x: Any, dtype: torch.dtype) -> float:
    """Round an mpmath number once to ``dtype`` (round to nearest even, with overflow to ±inf
    and gradual underflow) and return it as a Python float (exact: every such value is a float64).
    """
    x = mpmath.mpf(x) if not isinstance(x, mpmath.mpf) else x
    if mpmath.isnan(x):
        return math.nan
    if mpmath.isinf(x):
        return math.inf if x > 0 else -math.inf
    if x == 0:
        return 0.0
    info = torch.finfo(dtype)
    bits = mantissa_bits(dtype)
    sign = -1.0 if x < 0 else 1.0
    ax = abs(x)
    tiny = mpmath.mpf(info.tiny)
    if ax < tiny:  # subnormal: a multiple of the smallest subnormal tiny·eps
        step = tiny * mpmath.mpf(info.eps)
        with mpmath.workdps(60):
            return sign * float(mpmath.nint(ax / step) * step)
    with mpmath.workprec(bits):
        r = +ax
    if r > mpmath.mpf(info.max):
        return sign * math.inf
    return sign * float(r)


def _round_array(values: list[Any], dtype: torch.dtype) -> np.ndarray:
    return np.array([round_to_dtype(v, dtype) for v in values], dtype=np.float64)


def _exact_p(log_p: float) -> Any:
    """p = exp(log p) at high precision, for the oracle (an mpf)."""
    with mpmath.workdps(_P_DPS):
        return mpmath.exp(mpmath.mpf(log_p))


# --------------------------------------------------------------------------------- references


_DIV_BY_KEY: dict[str, Divergence] = {}


def oracle_reference(
    div: Divergence, p: float, delta: float, dtype: torch.dtype, is_log: bool
) -> tuple[float, float, bool, bool]:
    """Reference band at one exact input value, rounded once to ``dtype``.

    Args:
        div: The divergence.
        p: The input value exactly as the solver receives it: log p (``is_log``) or p.
        delta: δ.
        dtype: Target dtype of the rounding.
        is_log: Whether ``p`` is a log-probability.

    Returns:
        (lower, upper, lower_saturated, upper_saturated), the ends as Python floats.
    """
    _DIV_BY_KEY.setdefault(div.key, div)
    return _oracle_reference(div.key, float(p), float(delta), dtype, is_log)


@lru_cache(maxsize=65536)
def _oracle_reference(
    key: str, p: float, delta: float, dtype: torch.dtype, is_log: bool
) -> tuple[float, float, bool, bool]:
    div = _DIV_BY_KEY[key]
    pm = _exact_p(p) if is_log else mpmath.mpf(p)
    if pm < 1:
        # When the lower root lies below half the smallest subnormal it rounds to 0 in the
        # dtype; one evaluation of g decides that (g decreases on [0, 1]), and bracketing the
        # upper root directly is then far cheaper than resolving a root like 10^(-10^28).
        info = torch.finfo(dtype)
        half_sub = mpmath.mpf(info.tiny) * mpmath.mpf(info.eps) / 2
        if oracle_g(pm, half_sub, div, dps=30) < delta:
            return _bracketed_reference(div, pm, delta, dtype)
    try:
        d = oracle_band_detail(pm, delta, div, dps=30)
        return (
            round_to_dtype(d.lower, dtype),
            round_to_dtype(d.upper, dtype),
            d.lower_saturated,
            d.upper_saturated,
        )
    except RuntimeError:
        return _bracketed_reference(div, pm, delta, dtype)


def _bracketed_reference(
    div: Divergence, pm: Any, delta: float, dtype: torch.dtype
) -> tuple[float, float, bool, bool]:
    """Both ends from the sign of g_f(p, r) − δ alone (used where the oracle's root finder
    cannot resolve a root far beyond the dtype's range).

    The lower root is known to round to 0 when g_f(p, s) < δ at s = half the smallest subnormal
    (g_f decreases on [0, 1]); otherwise the root is bisected in ln r at 50 digits.  The upper
    root is bisected in ln r on [0, ln(1/p)] unless g_f(p, 1/p) ≤ δ (saturated).
    """
    info = torch.finfo(dtype)

    def g(r: Any) -> Any:
        return oracle_g(pm, r, div, dps=30)

    with mpmath.workdps(60):
        inv_p = 1 / pm
        d = mpmath.mpf(delta)
        # lower
        if g(mpmath.mpf(0)) <= d:
            lower, lo_sat = 0.0, True
        elif g(mpmath.mpf(info.tiny) * mpmath.mpf(info.eps) / 2) < d:
            lower, lo_sat = 0.0, False
        else:
            lower = round_to_dtype(_bisect_log(g, d, mpmath.log(info.tiny) - 40, 0, True), dtype)
            lo_sat = False
        # upper
        if pm == 1 or g(inv_p) <= d:
            upper, up_sat = round_to_dtype(inv_p, dtype), True
        else:
            upper = round_to_dtype(_bisect_log(g, d, 0, mpmath.log(inv_p), False), dtype)
            up_sat = False
    return lower, upper, lo_sat, up_sat


def _bisect_log(g, d: Any, t_lo: Any, t_hi: Any, decreasing: bool) -> Any:
    a, b = mpmath.mpf(t_lo), mpmath.mpf(t_hi)
    for _ in range(400):
        m = (a + b) / 2
        above = g(mpmath.exp(m)) > d
        if above == decreasing:  # root lies right of m
            a = m
        else:
            b = m
        if b - a < mpmath.mpf(10) ** -40 * max(1, abs(a)):
            break
    return mpmath.exp((a + b) / 2)


# --------------------------------------------------------------------------------- case sets


@dataclass
class CaseSet:
    """The test points of one dtype, grouped by δ, with references rounded to that dtype.

    Attributes:
        dtype: The dtype the solver is called in.
        x: float64 array of the inputs exactly as passed (log p or p, exact in ``dtype``).
        log_p: float64 log p of each input (−inf for p = 0; NaN for NaN).
        p: float64 p of each input (for the simplex check u·p ≤ 1).
        p_exact: The exact p of each input, as mpf (for the high-precision feasibility check).
        delta: float64 δ of each case.
        lower_ref, upper_ref: float64 arrays holding the references rounded to ``dtype``.
        lower_sat, upper_sat: bool arrays: the end is saturated (exactly 0 or 1/p).
        inv_p: float64 array, 1/p rounded to ``dtype``.
        region: Region number of each case (:data:`REGIONS`).
        source: ``"golden"``, ``"oracle"`` or ``"golden+oracle"``.
        expected_lower, expected_upper: The references after the caller's ``transform`` (set
            by the runner; equal to ``lower_ref``/``upper_ref`` without one).
        unchanged: bool array, True where the transform left both ends as they were.
    """

    dtype: torch.dtype
    x: np.ndarray
    log_p: np.ndarray
    p: np.ndarray
    p_exact: list[Any]
    delta: np.ndarray
    lower_ref: np.ndarray
    upper_ref: np.ndarray
    lower_sat: np.ndarray
    upper_sat: np.ndarray
    inv_p: np.ndarray
    region: np.ndarray
    source: str
    expected_lower: np.ndarray | None = None
    expected_upper: np.ndarray | None = None
    unchanged: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def apply_transform(self, transform: Any) -> None:
        """Set ``expected_*`` to the references after ``transform`` (or to the references
        themselves), and ``unchanged`` to where the transform left both ends alone."""
        self.expected_lower = self.lower_ref.copy()
        self.expected_upper = self.upper_ref.copy()
        self.unchanged = np.ones(len(self), dtype=bool)
        if transform is None:
            return
        dt = self.dtype
        lo = torch.as_tensor(self.lower_ref).to(dt)
        up = torch.as_tensor(self.upper_ref).to(dt)
        lp = torch.as_tensor(self.log_p).to(dt)
        new_lo, new_up = transform(lo, up, lp)
        new_lo = torch.as_tensor(new_lo).to(torch.float64).numpy()
        new_up = torch.as_tensor(new_up).to(torch.float64).numpy()
        same = lambda a, b: (a == b) | (np.isnan(a) & np.isnan(b))  # noqa: E731
        self.unchanged = same(new_lo, self.lower_ref) & same(new_up, self.upper_ref)
        self.expected_lower, self.expected_upper = new_lo, new_up

    def groups(self) -> list[tuple[float, np.ndarray]]:
        """(δ, indices) for each δ, in the order first seen; indices sorted by log p."""
        out = []
        for d in dict.fromkeys(self.delta.tolist()):
            idx = np.flatnonzero(self.delta == d)
            out.append((d, idx[np.argsort(self.log_p[idx], kind="stable")]))
        return out


_GOLDEN: dict[str, Any] = {}
_GOLDEN_REF: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}


def _golden_rows(key: str, div: Divergence) -> Any:
    # Cached per divergence key (a Divergence hashes by identity; alpha builds new ones).
    if key not in _GOLDEN:
        _GOLDEN[key] = load_golden(div)
    return _GOLDEN[key]


def _golden_reference(key: str, div: Divergence, dtype_name: str) -> tuple[np.ndarray, ...]:
    if (key, dtype_name) in _GOLDEN_REF:
        return _GOLDEN_REF[key, dtype_name]
    table = _golden_rows(key, div)
    lo, up = table.reference(dtype_name)
    _GOLDEN_REF[key, dtype_name] = (lo.astype(np.float64), up.astype(np.float64))
    return _GOLDEN_REF[key, dtype_name]


def golden_available(div: Divergence) -> bool:
    """Whether a golden table exists for this divergence (``alpha`` only at GOLDEN_ALPHAS)."""
    try:
        _golden_rows(div.key, div)
    except ValueError:
        return False
    return True


def _inputs_in_dtype(log_p: np.ndarray, dtype: torch.dtype, is_log: bool) -> np.ndarray:
    """The input values exactly as the solver receives them in ``dtype`` (as float64)."""
    if is_log:
        return torch.as_tensor(log_p, dtype=torch.float64).to(dtype).to(torch.float64).numpy()
    vals = []
    for lp in log_p:
        if math.isnan(lp):
            vals.append(math.nan)
        elif lp == -math.inf:
            vals.append(0.0)
        else:
            vals.append(round_to_dtype(_exact_p(float(lp)), dtype))
    return np.asarray(vals, dtype=np.float64)


def _log_of_input(x: np.ndarray, is_log: bool) -> np.ndarray:
    if is_log:
        return x.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.array([_mp_log_float(v) for v in x], dtype=np.float64)


def _mp_log_float(v: float) -> float:
    if math.isnan(v):
        return math.nan
    if v == 0:
        return -math.inf
    with mpmath.workdps(40):
        return float(mpmath.log(mpmath.mpf(v)))


def build_cases(
    div: Divergence,
    log_p_grid: np.ndarray | None,
    deltas: tuple[float, ...],
    dtype: torch.dtype,
    *,
    is_log: bool,
) -> CaseSet:
    """Build the cases of one dtype.

    Args:
        div: The divergence.
        log_p_grid: ``None`` for the golden grid, else a 1-D float64 array of log p values.
        deltas: δ values.
        dtype: The solver's input dtype.
        is_log: Whether the solver takes log-probabilities (else probabilities).

    Returns:
        A :class:`CaseSet`.  Golden references are used where they are exact for the input
        (float32-exact log p given as float32/float64 log-probabilities, δ in the golden set);
        every other case takes its reference from the oracle at the exact input value.
    """
    use_golden = (
        log_p_grid is None
        and is_log
        and dtype in (torch.float32, torch.float64)
        and golden_available(div)
    )
    if log_p_grid is None:
        if golden_available(div):
            table = _golden_rows(div.key, div)
            grid = np.unique(table.log_p)
        else:
            from bandpo.golden import golden_log_p_grid

            grid = golden_log_p_grid()
    else:
        grid = np.asarray(log_p_grid, dtype=np.float64).ravel()

    xs = _inputs_in_dtype(grid, dtype, is_log)
    x_all, d_all = [], []
    for d in deltas:
        x_all.append(xs)
        d_all.append(np.full(xs.shape, float(d)))
    x = np.concatenate(x_all)
    delta = np.concatenate(d_all)
    log_p = _log_of_input(x, is_log)
    n = len(x)
    lower_ref = np.empty(n)
    upper_ref = np.empty(n)
    lower_sat = np.zeros(n, dtype=bool)
    upper_sat = np.zeros(n, dtype=bool)
    source = "oracle"

    golden_rows: dict[tuple[float, float], int] = {}
    if use_golden:
        table = _golden_rows(div.key, div)
        lo_g, up_g = _golden_reference(div.key, div, str(dtype).replace("torch.", ""))
        golden_rows = {
            (float(lp), float(dd)): i
            for i, (lp, dd) in enumerate(zip(table.log_p, table.delta, strict=True))
        }
        source = "golden"

    n_oracle = 0
    for i in range(n):
        if not np.isfinite(log_p[i]):
            lower_ref[i], upper_ref[i] = math.nan, math.nan
            continue
        j = golden_rows.get((float(x[i]), float(delta[i])))
        if j is not None:
            table = _golden_rows(div.key, div)
            lower_ref[i], upper_ref[i] = lo_g[j], up_g[j]
            lower_sat[i], upper_sat[i] = (
                bool(table.lower_saturated[j]),
                bool(table.upper_saturated[j]),
            )
        else:
            n_oracle += 1
            lo, up, ls, us = oracle_reference(div, float(x[i]), float(delta[i]), dtype, is_log)
            lower_ref[i], upper_ref[i], lower_sat[i], upper_sat[i] = lo, up, ls, us
    n_golden = n - n_oracle - int((~np.isfinite(log_p)).sum())
    if n_golden and n_oracle:
        source = "golden+oracle"
    elif n_oracle:
        source = "oracle"

    p_exact = []
    p64 = np.empty(n)
    inv_p = np.empty(n)
    for i in range(n):
        if not np.isfinite(log_p[i]):
            p_exact.append(None)
            p64[i] = math.nan if math.isnan(log_p[i]) else 0.0
            inv_p[i] = math.nan if math.isnan(log_p[i]) else math.inf
            continue
        pm = _exact_p(float(x[i])) if is_log else mpmath.mpf(float(x[i]))
        p_exact.append(pm)
        p64[i] = float(pm)
        with mpmath.workdps(_P_DPS):
            inv_p[i] = round_to_dtype(1 / pm, dtype)
    return CaseSet(
        dtype=dtype,
        x=x,
        log_p=log_p,
        p=p64,
        p_exact=p_exact,
        delta=delta,
        lower_ref=lower_ref,
        upper_ref=upper_ref,
        lower_sat=lower_sat,
        upper_sat=upper_sat,
        inv_p=inv_p,
        region=region_index(log_p),
        source=source,
    )


def resolve_deltas(delta: Any) -> tuple[float, ...]:
    """Normalise ``delta`` (a float, a sequence of floats, or ``"golden"`` for all golden δ)."""
    if isinstance(delta, str):
        if delta == "golden":
            return GOLDEN_DELTAS
        raise ValueError(
            f"delta must be a positive float, a sequence of them or 'golden', got {delta!r}"
        )
    if isinstance(delta, (int, float)) and not isinstance(delta, bool):
        vals = (float(delta),)
    else:
        try:
            vals = tuple(float(d) for d in delta)
        except TypeError:
            raise TypeError(
                f"delta must be a positive float, a sequence of them or 'golden', got {delta!r}"
            ) from None
    if not vals:
        raise ValueError("delta must hold at least one value")
    for d in vals:
        if not (d > 0) or math.isinf(d):
            raise ValueError(f"delta must be finite and > 0, got {d!r}")
    return vals
