"""The vectorized torch Band solver: ``band_bounds(old_log_prob, delta, divergence)``.

For an old action probability p = exp(old_log_prob) the Band interval is (THEORY.md §2)

    Band_f(p, δ) = [r₋, r₊] = {r ∈ [0, 1/p] : g_f(p, r) ≤ δ},
    g_f(p, r) = p·f(r) + (1 − p)·f((1 − r·p)/(1 − p))        (BandPO, arXiv 2603.04918, §3)

This module is what training code calls once per token and step, so it works on tensors of
any shape and dtype, on any device, with no data-dependent host synchronisation on the hot path
(``validate=False``).

Method (details in :mod:`bandpo.solvers._band_root`):

* Both ends are solved as the same "lower-end" problem thanks to the mirror identity
  g_f(p, r) = g_f(1 − p, s) with s = (1 − r·p)/(1 − p): the lower end is the root v = r ∈ (0, 1)
  of G(a=p, b=1−p), the upper end the root v = s ∈ (0, 1) of G(a=1−p, b=p), where

      G(v) = a·f(v) + b·f(1 − (a/b)·(v − 1)),

  and r₊ = 1 − ((1 − p)/p)·expm1(ln s), free of cancellation.
* Divergences with a closed form proved by the theory layer use it
  (:mod:`bandpo.solvers._band_closed`); every other divergence goes to a safeguarded Newton
  iteration on ln G = ln δ in the variable y = ln(−ln v), with a bracket kept by ``torch.where``
  and a bisection fallback, for a fixed number of iterations.
* 1 − p is never formed by subtraction: 1 − p = −expm1(log p).
* Everything per divergence comes from the registry (``f_torch``, ``df_torch``, ``f_at_zero``,
  ``f2_at_one``, ``slope_at_infinity``): a newly registered divergence works unchanged.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
from typing import Any, NamedTuple

import torch

from bandpo.divergences import Divergence, resolve_divergence
from bandpo.solvers import _band_closed as _closed
from bandpo.solvers import _band_root as _root

__all__ = ["Band", "band_bounds"]


class Band(NamedTuple):
    """The Band interval of every token: ``lower`` = r₋(p, δ), ``upper`` = r₊(p, δ) (tensors)."""

    lower: torch.Tensor
    upper: torch.Tensor


_FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def _check_delta(delta: Any, like: torch.Tensor, validate: bool) -> torch.Tensor | float:
    """Return δ as a Python float or a float64 tensor on ``like``'s device."""
    if isinstance(delta, torch.Tensor):
        if delta.dtype == torch.bool or not (
            delta.dtype.is_floating_point or not delta.dtype.is_complex
        ):
            raise TypeError(f"delta must be a real number or tensor, got dtype {delta.dtype}")
        if delta.dtype.is_complex:
            raise TypeError(f"delta must be a real tensor, got dtype {delta.dtype}")
        d = delta.detach().to(device=like.device, dtype=torch.float64)
        if validate and d.numel() and bool(((d <= 0) | torch.isnan(d)).any()):
            raise ValueError("delta must be > 0 (+inf allowed) everywhere; got a value <= 0 or NaN")
        if d.dim() == 0:
            return d
        return d
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real):
        raise TypeError(
            f"delta must be a positive real number or tensor, got {type(delta).__name__}"
        )
    d = float(delta)
    # A Python-number delta is always checked: that costs no device synchronisation.
    if math.isnan(d) or not d > 0:
        raise ValueError(f"delta must be > 0 (+inf allowed), got {delta!r}")
    return d


def _check_input(old_log_prob: Any) -> torch.Tensor:
    if not isinstance(old_log_prob, torch.Tensor):
        raise TypeError(
            f"old_log_prob must be a torch.Tensor of log-probabilities, got "
            f"{type(old_log_prob).__name__}"
        )
    if old_log_prob.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            "old_log_prob must be a floating tensor (float64, float32, float16 or bfloat16), "
            f"got dtype {old_log_prob.dtype}"
        )
    return old_log_prob


def band_bounds(
    old_log_prob: torch.Tensor,
    delta: float | torch.Tensor,
    divergence: str | Divergence = "kl",
    *,
    validate: bool = True,
    **params: Any,
) -> Band:
    """The Band interval [r₋, r₊] of the ratio r = π/π_old for every token.

    Band_f(p, δ) = {r ∈ [0, 1/p] : p·f(r) + (1 − p)·f((1 − r·p)/(1 − p)) ≤ δ},  p = exp(log p)
    (BandPO, arXiv 2603.04918, §3; THEORY.md §2).

    Args:
        old_log_prob: log π_old(a|s) of the sampled tokens, any shape, float64/float32
            (float16/bfloat16 are computed in float32 or better and rounded back), any device.
        delta: Trust-region radius δ > 0 (``float("inf")`` allowed): a Python number or a tensor
            that broadcasts against ``old_log_prob``.
        divergence: A registry name (``"kl"``, ``"tv"``, ``"chi2"``, ..., ``"alpha"``) or a
            :class:`~bandpo.divergences.Divergence`.
        validate: Check that log p ≤ 0 and (for a tensor δ) δ > 0 everywhere; this synchronises
            with the device.  ``validate=False`` skips the tensor checks for hot loops: the call
            then performs no data-dependent host synchronisation, and log p > 0 gives NaN.
        **params: Divergence parameters, e.g. ``alpha=0.5``.

    Returns:
        Band(lower, upper): tensors of the broadcast shape of ``old_log_prob`` and ``delta``, on
        the input's device and in the input's dtype, never requiring grad.

    Raises:
        TypeError: non-tensor or non-floating ``old_log_prob``; non-real ``delta``.
        ValueError: log p > 0 or δ ≤ 0 / NaN (with ``validate=True``; a Python-number δ is
            always checked), unknown divergence or bad parameters.

    Notes:
        Extremes: log p = 0 gives the perspective band at p = 1 (``kl``: [e^{−δ}, 1]); log p = −inf
        gives (0, +inf); saturated ends are exactly 0 and 1/p (the dtype's rounding of 1/p, +inf
        where 1/p overflows); bounds below the dtype's range come out 0 (the reference rounded to
        the dtype); NaN gives NaN at its position only; δ = +inf gives [0, 1/p].
        Accuracy: relative error ≤ 1e-12 in float64 and ≤ 8 ulp in float32 against the mpmath
        oracle for p ∈ [1e-12, 1 − 1e-9], δ ∈ [1e-4, 2] (see ``bandpo.tolerances``).
    """
    lp_in = _check_input(old_log_prob)
    div = resolve_divergence(divergence, **params)
    d = _check_delta(delta, lp_in, validate)
    top = _checked_max(lp_in) if validate else None
    with torch.no_grad():
        return _solve(div, lp_in.detach(), d, fused=_use_fused(lp_in.device), top=top)


def _checked_max(lp_in: torch.Tensor) -> float | None:
    """max(log p) (NaN if any entry is NaN; None for an empty tensor), raising ValueError if
    any log p > 0: one reduction and one host sync."""
    if not lp_in.numel():
        return None
    top = float(lp_in.detach().amax())
    if top > 0 or (math.isnan(top) and bool((lp_in > 0).any())):
        raise ValueError(
            "old_log_prob must be <= 0 everywhere (log-probabilities; p in [0, 1]), got "
            f"max {float(torch.nan_to_num(lp_in.detach(), nan=-math.inf).amax())!r}"
        )
    return top


def _solve_eager(div: Divergence, lp: torch.Tensor, d, *, top: float | None) -> Band:
    """The eager path: the fast forms for a finite Python-number δ where they apply, else the
    general float64 core.  ``top`` is max(log p) when the caller validated, else None."""
    if isinstance(d, float) and math.isfinite(d):
        band = _solve_eager_scalar(div, lp, d, validated=top is not None)
        if band is not None:
            return band
        if top is not None and _root.kl_scale(div) is not None:
            return _kl_eager(div, lp, d, top)
    match, consts, delta_t, hi, lo, low1 = _prepare(div, lp, d)
    return Band(*_core(div, match, consts, lp, delta_t, hi, lo, low1))


def _kl_eager(div: Divergence, lp: torch.Tensor, d: float, top: float) -> Band:
    """The KL fast path (validated input).  It covers log p in [KL_MIN_LOG_P, 0); the few other
    entries (log p = 0, −inf, below KL_MIN_LOG_P, NaN), known from max(log p) and one more
    reduction, are gathered and solved by the general core."""
    low = float(lp.amin())
    odd_any = not (top < 0 and low >= _root.KL_MIN_LOG_P)  # NaN counts as odd
    lp_fast = lp.clamp(_root.KL_MIN_LOG_P, -1e-30) if odd_any else lp
    lower, upper = _root.kl_band_fast(lp_fast, d, _root.kl_scale(div))
    if odd_any:
        flat = lp.reshape(-1)
        idx = ((flat < 0) & (flat >= _root.KL_MIN_LOG_P)).logical_not_().nonzero().squeeze(1)
        match, consts, delta_t, hi, lo, low1 = _prepare(div, lp, d)
        lo_odd, up_odd = _core(div, match, consts, flat[idx], delta_t, hi, lo, low1)
        lower.view(-1)[idx] = lo_odd
        upper.view(-1)[idx] = up_odd
    return Band(lower, upper)


def _solve_eager_scalar(div: Divergence, lp_in: torch.Tensor, delta: float, *, validated: bool):
    """The eager path for a finite Python-number δ, in the input's precision where that meets
    the accuracy bars (float32, float64; half precisions are computed in float64 and rounded
    once).  None where no such path exists for ``div`` (the general path then runs)."""
    match = _closed.closed_match(div)
    if match is None:
        return None
    lp = lp_in if lp_in.dtype in (torch.float32, torch.float64) else lp_in.to(torch.float64)
    if not validated:
        # log p > 0 is outside the domain: NaN there, without a mask (sqrt(−0) = −0 elsewhere)
        lp = lp + torch.clamp_min(lp, 0.0).neg_().sqrt_()
    lower, upper = _closed.closed_band_fast(match, lp, delta)
    return Band(lower.to(lp_in.dtype), upper.to(lp_in.dtype))


def _prepare(div: Divergence, lp: torch.Tensor, delta):
    """Host-side, per-call work: the closed-form match and the δ-dependent scalars."""
    match = _closed.closed_match(div)
    consts = _root.consts_of(div)
    delta_t = (
        delta
        if isinstance(delta, torch.Tensor)
        else torch.tensor(delta, dtype=torch.float64, device=lp.device)
    )
    if isinstance(delta, torch.Tensor):
        low1 = _root.perspective_lower(div, consts, delta_t)
    else:  # the same few δ every step: solved once per (divergence, δ)
        low1 = torch.tensor(
            _perspective_cached(div.name, tuple(sorted(div.params.items())), delta),
            dtype=torch.float64,
            device=lp.device,
        )
    if match is None:
        return match, consts, delta_t, None, None, low1
    hi, lo = _closed.threshold_dd(match, delta)
    if not isinstance(hi, torch.Tensor):
        # 0-d tensors, not Python floats: a fused kernel must not be re-specialised per δ
        hi = torch.tensor(hi, dtype=torch.float64, device=lp.device)
        lo = torch.tensor(lo, dtype=torch.float64, device=lp.device)
    return match, consts, delta_t, hi, lo, low1


@functools.lru_cache(maxsize=1024)
def _perspective_cached(name: str, params: tuple, delta: float) -> float:
    from bandpo.divergences import get_divergence

    div = get_divergence(name, **dict(params))
    d = torch.tensor(delta, dtype=torch.float64)
    return float(_root.perspective_lower(div, _root.consts_of(div), d))


def _core(div: Divergence, match, consts, lp_in: torch.Tensor, delta_t, hi, lo, low1):
    """The whole band computation on tensors, in float64, cast back to the input dtype.

    Pure tensor code with no host synchronisation: this is what ``torch.compile`` fuses.
    """
    lp = lp_in.to(torch.float64)
    shape = torch.broadcast_shapes(lp.shape, delta_t.shape)
    lp_b = lp.expand(shape)
    # the main formulas see 0 < p < 1 only (−1 stands in at the extremes, overwritten below)
    lp_main = torch.where((lp_b < 0) & torch.isfinite(lp_b), lp_b, -1.0)
    if match is not None:
        lower, upper = _closed.closed_band(match, lp_main, delta_t, hi, lo)
    else:
        lower, upper = _root.root_band(div, consts, lp_main, delta_t)
    lower, upper = _root.apply_extremes(div, consts, lp_b, delta_t, lower, upper, low1)
    return lower.to(lp_in.dtype), upper.to(lp_in.dtype)


def _band_float64(div: Divergence, lp: torch.Tensor, delta) -> tuple[torch.Tensor, torch.Tensor]:
    """(r₋, r₊) in float64 (eager): the closed form where the theory layer has one, else the
    root finder; then the exactly defined extremes."""
    match, consts, delta_t, hi, lo, low1 = _prepare(div, lp, delta)
    return _core(div, match, consts, lp.to(torch.float64), delta_t, hi, lo, low1)


def _solve(div: Divergence, lp_in: torch.Tensor, delta, *, fused: bool, top=None) -> Band:
    if fused and lp_in.numel():
        match, consts, delta_t, hi, lo, low1 = _prepare(div, lp_in, delta)
        fn = _fused_fn(div, match, consts, lp_in.device.type)
        if fn is not None:
            try:
                return Band(*fn(lp_in, delta_t, hi, lo, low1))
            except Exception as err:  # compiler missing or failing: fall back, once, loudly
                _disable_fused(div, match, lp_in.device.type, err)
    return _solve_eager(div, lp_in, delta, top=top)


# ------------------------------------------------------------------------------ fused path

#: ``BANDPO_FUSED``: "auto" (default: fuse with torch.compile on CUDA only, where the compile
#: time is amortised over training), "1" (fuse on every device, CPU included), "0" (never).
FUSED_ENV = "BANDPO_FUSED"

_FUSED: dict[tuple, Any] = {}


def _use_fused(device: torch.device) -> bool:
    mode = os.environ.get(FUSED_ENV, "auto").strip().lower()
    if mode in ("0", "false", "no", "off"):
        return False
    if mode in ("1", "true", "yes", "on"):
        return True
    return device.type == "cuda"


def _fused_key(div: Divergence, match, device_type: str) -> tuple:
    return (div.name, tuple(sorted(div.params.items())), match, device_type)


def _fused_fn(div: Divergence, match, consts, device_type: str):
    """The torch.compile'd core for this divergence and device type (None if unavailable)."""
    key = _fused_key(div, match, device_type)
    if key not in _FUSED:
        try:
            compiled = torch.compile(
                lambda lp, d, hi, lo, low1: _core(div, match, consts, lp, d, hi, lo, low1),
                dynamic=True,
            )
        except Exception as err:  # torch without a working compiler
            _disable_fused(div, match, device_type, err)
            return None
        _FUSED[key] = compiled
    return _FUSED[key]


def _disable_fused(div: Divergence, match, device_type: str, err: Exception) -> None:
    import warnings

    _FUSED[_fused_key(div, match, device_type)] = None
    warnings.warn(
        f"bandpo: torch.compile of band_bounds failed on {device_type} "
        f"({type(err).__name__}: {err}); using the eager path (same results, slower). "
        f"Set {FUSED_ENV}=0 to skip the attempt.",
        RuntimeWarning,
        stacklevel=3,
    )
