"""The one table of numerical tolerances, per dtype.

Every accuracy check in bandpo (tests, ``bandpo verify``, ``bandpo.testing``) reads its bar from
here; a check that needs a different bar states why at the point of use.

Errors are measured against the mpmath oracle evaluated at the exact input value:

* ``rel``  – relative error |got − ref| / |ref| allowed for finite, non-zero, normal bounds;
* ``ulp``  – the same bar in units in the last place of the dtype (float32 bar: 8 ulp);
* ``tiny`` – below this magnitude a bound is compared in ulps of the smallest normal instead
  (subnormal and underflowed results cannot carry relative accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["TOLERANCES", "Tolerance", "tolerance_for"]


@dataclass(frozen=True)
class Tolerance:
    """Accuracy bar of one dtype.

    Attributes:
        dtype: The torch dtype.
        rel: Largest relative error against the oracle for a normal, finite, non-zero bound.
        ulp: Largest error in units in the last place (``rel`` expressed in ulps of ``dtype``).
        eps: Machine epsilon of ``dtype`` (spacing of 1.0).
        tiny: Smallest normal number of ``dtype``.
    """

    dtype: torch.dtype
    rel: float
    ulp: float
    eps: float
    tiny: float


def _make(dtype: torch.dtype, rel: float | None = None, ulp: float | None = None) -> Tolerance:
    info = torch.finfo(dtype)
    # 1 ulp of x is between eps/2·|x| and eps·|x|; a bar of k ulp is checked as rel = k·eps/2
    # on the safe (strict) side.
    if rel is None:
        rel = ulp * info.eps / 2
    if ulp is None:
        ulp = rel / info.eps
    return Tolerance(dtype=dtype, rel=rel, ulp=ulp, eps=info.eps, tiny=info.tiny)


#: dtype -> Tolerance.  float64: the 1e-12 relative bar; float32: 8 ulp (issue #4's bars).
#: bfloat16/float16 are computed in float32 and rounded once: the float32 result is itself up to
#: 8 float32-ulp off, so the final rounding can land one half-precision ulp away at the bottom of
#: a binade; their bar is rel = eps (2 ulp in the strict rel = ulp·eps/2 convention above).
TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float64: _make(torch.float64, rel=1e-12),
    torch.float32: _make(torch.float32, ulp=8),
    torch.bfloat16: _make(torch.bfloat16, ulp=2),
    torch.float16: _make(torch.float16, ulp=2),
}


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    """The :class:`Tolerance` of ``dtype`` (TypeError for a dtype without one)."""
    try:
        return TOLERANCES[dtype]
    except KeyError:
        raise TypeError(
            f"no tolerance for dtype {dtype}; floating dtypes: {', '.join(map(str, TOLERANCES))}"
        ) from None
