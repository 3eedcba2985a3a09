"""Baseline clipping rules, as functions of the old log-probability, on the same tensors.

Every function here returns a :class:`~bandpo.solvers.band.Band` of tensors with the input's
shape, dtype and device, so that figures, the loss and the benchmarks treat them exactly like
:func:`~bandpo.solvers.band.band_bounds`.  Formulas: THEORY.md §6.

* :func:`ppo_clip`: PPO's fixed interval [1 − ε, 1 + ε] (Schulman et al., 2017).
* :func:`clip_higher`: DAPO's decoupled interval [1 − ε₋, 1 + ε₊].
* :func:`dcpo`: DCPO's dynamic adaptive clipping, a function of p.
* :func:`paper_bisection`: the Band interval solved the way the BandPO paper ships it: pure
  bisection with an absolute tolerance on r, in the input dtype.  This is the speed and accuracy
  baseline of ``bandpo bench`` and of the testing kit's worked example.

Conventions shared with ``band_bounds``: NaN in gives NaN out at that position only (masked
positions stay NaN and never contaminate their neighbours); outputs never require grad.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bandpo.divergences import Divergence, resolve_divergence
from bandpo.solvers.band import Band

__all__ = ["clip_higher", "dcpo", "paper_bisection", "ppo_clip"]


def _as_log_prob(old_log_prob: Any) -> torch.Tensor:
    if not isinstance(old_log_prob, torch.Tensor):
        raise TypeError(f"old_log_prob must be a torch.Tensor, got {type(old_log_prob).__name__}")
    if not old_log_prob.dtype.is_floating_point:
        raise TypeError(f"old_log_prob must be a floating tensor, got dtype {old_log_prob.dtype}")
    return old_log_prob.detach()


def _check_eps(**eps: float) -> None:
    for name, value in eps.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def _constant_band(lp: torch.Tensor, lower: float, upper: float) -> Band:
    nan = torch.isnan(lp)
    lo = torch.full_like(lp, lower).masked_fill(nan, math.nan)
    up = torch.full_like(lp, upper).masked_fill(nan, math.nan)
    return Band(lo, up)


def ppo_clip(old_log_prob: torch.Tensor, eps: float = 0.2) -> Band:
    """PPO's ratio clip: [1 − ε, 1 + ε] for every token, whatever p.

    Args:
        old_log_prob: log π_old(a|s), any shape (only its shape, dtype, device and NaNs are used).
        eps: Clip range ε ≥ 0 (PPO default 0.2).

    Returns:
        Band(lower = 1 − ε, upper = 1 + ε) broadcast to the input (NaN where the input is NaN).
    """
    lp = _as_log_prob(old_log_prob)
    _check_eps(eps=eps)
    return _constant_band(lp, 1.0 - eps, 1.0 + eps)


def clip_higher(old_log_prob: torch.Tensor, eps_low: float = 0.2, eps_high: float = 0.28) -> Band:
    """DAPO's Clip-Higher: [1 − ε₋, 1 + ε₊] with decoupled ε₋ = 0.2, ε₊ = 0.28 by default.

    Args:
        old_log_prob: log π_old(a|s), any shape.
        eps_low, eps_high: ε₋ and ε₊ (≥ 0).

    Returns:
        Band(1 − ε₋, 1 + ε₊) broadcast to the input (NaN where the input is NaN).
    """
    lp = _as_log_prob(old_log_prob)
    _check_eps(eps_low=eps_low, eps_high=eps_high)
    return _constant_band(lp, 1.0 - eps_low, 1.0 + eps_high)


def dcpo(
    old_log_prob: torch.Tensor,
    eps_low: float = 0.16,
    eps_high: float = 0.2,
    r_max: float = 10.0,
) -> Band:
    """DCPO's dynamic adaptive clipping bounds as functions of p (THEORY.md §6).

        lower = ½ + ½·sqrt(max(1 − 4ε₋/p, 0)),   upper = min(½ + ½·sqrt(1 + 4ε₊/p), r_max)

    Args:
        old_log_prob: log π_old(a|s), any shape; p = exp(old_log_prob).
        eps_low, eps_high: ε₋ = 0.16 and ε₊ = 0.2 by default (DCPO paper).
        r_max: Cap on the upper bound (10 in the DCPO paper).

    Returns:
        Band(lower, upper) in the input's dtype.  4ε/p is computed as 4ε·exp(−log p), so p → 0
        (log p = −inf) gives lower = ½, upper = r_max without a division by zero.
    """
    lp = _as_log_prob(old_log_prob)
    _check_eps(eps_low=eps_low, eps_high=eps_high, r_max=r_max)
    inv_p = torch.exp(-lp)
    lower = 0.5 + 0.5 * torch.sqrt(torch.clamp(1 - (4 * eps_low) * inv_p, min=0))
    upper = torch.clamp(0.5 + 0.5 * torch.sqrt(1 + (4 * eps_high) * inv_p), max=r_max)
    nan = torch.isnan(lp)
    return Band(lower.masked_fill(nan, math.nan), upper.masked_fill(nan, math.nan))


#: p-range outside which the BandPO reference code overwrites p by the range's limits
#: (``clip_p=True`` reproduces that; THEORY.md §3).
PAPER_P_RANGE = (1e-6, 1 - 1e-6)


def paper_bisection(
    old_log_prob: torch.Tensor,
    delta: float,
    divergence: str | Divergence = "kl",
    *,
    max_iter: int = 50,
    tol: float = 1e-6,
    clip_p: bool = False,
    **params: Any,
) -> Band:
    """The Band interval by paper-style bisection: the baseline that BandPO ships.

    Solves g_f(p, r) = p·f(r) + (1 − p)·f((1 − r·p)/(1 − p)) = δ by pure bisection on [0, 1]
    (lower end) and on [1, 1/p] (upper end), both sides together, in the input dtype, with
    p = exp(log p) and 1 − p formed by subtraction as the paper's code does.

    Args:
        old_log_prob: log π_old(a|s), any shape, floating dtype (the arithmetic runs in it).
        delta: Trust-region radius δ > 0 (a Python number).
        divergence: Registry name or Divergence (f from the registry's ``f_torch``).
        max_iter: At most this many bisection steps per side (50 in the paper).
        tol: Stop when the widest bracket over both sides and all tokens is ≤ ``tol`` (absolute,
            on r; 1e-6 in the paper).  Checking it costs one host synchronisation per iteration.
        clip_p: Reproduce the paper code's overwrite of p outside [1e-6, 1 − 1e-6] by those
            limits (off by default: the issue defines the baseline as the pure bisection).
        **params: Divergence parameters (``alpha=``).

    Returns:
        Band(lower, upper): the bracket midpoints, in the input's dtype and shape.

    Notes:
        The absolute tolerance costs all relative accuracy where r₋ ≪ 1e-6 (``kl`` at p = 1e-3,
        δ = 0.05 has r₋ ≈ 7e-23), the ends never saturate exactly (a saturated end comes out
        within ``tol`` of 0 or 1/p), and 1 − p by subtraction loses all digits as p → 1 in
        float32.  ``bandpo.testing`` shows these defects; ``band_bounds`` has none of them.
    """
    lp = _as_log_prob(old_log_prob)
    div = resolve_divergence(divergence, **params)
    if isinstance(delta, bool) or not isinstance(delta, (int, float)):
        raise TypeError(f"delta must be a positive real number, got {type(delta).__name__}")
    if math.isnan(delta) or not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    with torch.no_grad():
        p = torch.exp(lp)
        if clip_p:
            p = torch.clamp(p, PAPER_P_RANGE[0], PAPER_P_RANGE[1])
        q = 1 - p  # by subtraction, as in the paper's code
        f = div.f_torch

        def g(r: torch.Tensor) -> torch.Tensor:
            return p * f(r) + q * f(torch.clamp((1 - r * p) / q, min=0))

        lo_a, lo_b = torch.zeros_like(p), torch.ones_like(p)  # lower end in [0, 1]
        up_a, up_b = torch.ones_like(p), 1 / p  # upper end in [1, 1/p]
        for _ in range(max_iter if lp.numel() else 0):
            lo_m = (lo_a + lo_b) / 2
            up_m = (up_a + up_b) / 2
            lo_in = g(lo_m) <= delta  # feasible: the root lies below the midpoint
            up_in = g(up_m) <= delta
            lo_b = torch.where(lo_in, lo_m, lo_b)
            lo_a = torch.where(lo_in, lo_a, lo_m)
            up_a = torch.where(up_in, up_m, up_a)
            up_b = torch.where(up_in, up_b, up_m)
            width = torch.maximum(lo_b - lo_a, up_b - up_a)
            # one host synchronisation per iteration, as in the paper's loop
            if float(torch.nan_to_num(width, nan=0.0).max()) <= tol:
                break
        lower = (lo_a + lo_b) / 2
        upper = (up_a + up_b) / 2
        nan = torch.isnan(lp)
        return Band(lower.masked_fill(nan, math.nan), upper.masked_fill(nan, math.nan))
