"""Post-processing a training framework applies to the band, re-applied to the reference.

Frameworks rarely use the raw band: they cap the upper ratio (an ``upper_bound_max``), or take
the union with a fixed interval (BandPO's "relaxation" with Clip-Higher, THEORY.md §6).  Pass the
same rule as ``check_solver(..., transform=...)`` and the kit applies it to the reference, so only
real errors are reported.  A transform is any callable

    transform(lower, upper, log_p) -> (lower, upper)

on torch tensors of the dtype under test (``log_p`` is the exact input as a log-probability).
Structural checks that the rule may legitimately break (upper ≤ 1/p, exact saturation,
feasibility) are skipped at the points the rule changed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["Transform", "cap_upper", "chain", "floor_lower", "union_interval"]

Transform = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def cap_upper(max_value: float) -> Transform:
    """upper ← min(upper, max_value): an ``upper_bound_max`` cap.

    Args:
        max_value: The cap (> 1).
    """
    if not max_value >= 1:
        raise ValueError(f"max_value must be >= 1, got {max_value!r}")

    def transform(lower: torch.Tensor, upper: torch.Tensor, log_p: torch.Tensor):
        return lower, torch.clamp(upper, max=max_value)

    transform.__name__ = f"cap_upper({max_value:g})"
    return transform


def floor_lower(min_value: float) -> Transform:
    """lower ← max(lower, min_value): a floor on the lower ratio (``0 ≤ min_value ≤ 1``)."""
    if not 0 <= min_value <= 1:
        raise ValueError(f"min_value must be in [0, 1], got {min_value!r}")

    def transform(lower: torch.Tensor, upper: torch.Tensor, log_p: torch.Tensor):
        return torch.clamp(lower, min=min_value), upper

    transform.__name__ = f"floor_lower({min_value:g})"
    return transform


def union_interval(low: float, high: float) -> Transform:
    """[lower, upper] ← [min(lower, low), max(upper, high)]: union with a fixed interval.

    ``union_interval(1 - 0.2, 1 + 0.28)`` is the Clip-Higher relaxation.  The constants are
    rounded to the dtype under test, as a framework's tensors would hold them.
    """
    if not low <= 1 <= high:
        raise ValueError(f"need low <= 1 <= high, got low={low!r}, high={high!r}")

    def transform(lower: torch.Tensor, upper: torch.Tensor, log_p: torch.Tensor):
        return torch.clamp(lower, max=low), torch.clamp(upper, min=high)

    transform.__name__ = f"union_interval({low:g}, {high:g})"
    return transform


def chain(*transforms: Transform) -> Transform:
    """Apply several transforms in order."""

    def transform(lower: torch.Tensor, upper: torch.Tensor, log_p: torch.Tensor):
        for t in transforms:
            lower, upper = t(lower, upper, log_p)
        return lower, upper

    transform.__name__ = " ∘ ".join(getattr(t, "__name__", "transform") for t in transforms)
    return transform
