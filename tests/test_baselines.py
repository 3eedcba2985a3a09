"""Baselines: PPO clip, Clip-Higher, DCPO (THEORY.md §6) and the paper-style bisection."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch

from bandpo.solvers.band import Band
from bandpo.solvers.baselines import clip_higher, dcpo, paper_bisection, ppo_clip
from bandpo.solvers.oracle import oracle_band

LP = torch.log(torch.tensor([1e-8, 1e-3, 0.04, 0.3, 0.9, 1.0], dtype=torch.float64))


def test_ppo_and_clip_higher_are_constant_bands():
    b = ppo_clip(LP, eps=0.2)
    assert isinstance(b, Band) and b.lower.shape == LP.shape
    assert torch.all(b.lower == 0.8) and torch.all(b.upper == 1.2)
    c = clip_higher(LP.float())
    assert c.lower.dtype == torch.float32
    assert torch.all(c.lower == torch.tensor(0.8)) and torch.all(c.upper == torch.tensor(1.28))


def test_dcpo_formula():
    b = dcpo(LP)
    p = LP.exp()
    for i, pi in enumerate(p.tolist()):
        lo = 0.5 + 0.5 * math.sqrt(max(1 - 4 * 0.16 / pi, 0))
        up = min(0.5 + 0.5 * math.sqrt(1 + 4 * 0.2 / pi), 10.0)
        assert b.lower[i].item() == pytest.approx(lo, rel=1e-15)
        assert b.upper[i].item() == pytest.approx(up, rel=1e-15)
    # p → 0: lower ½ and upper capped at r_max, both sides of the lower threshold p = 4ε₋
    e = dcpo(
        torch.tensor(
            [-math.inf, math.log(0.64 * (1 - 1e-9)), math.log(0.64 * (1 + 1e-9))],
            dtype=torch.float64,
        )
    )
    assert e.lower[0] == 0.5 and e.upper[0] == 10.0
    assert e.lower[1] == 0.5 and e.lower[2] > 0.5


def test_nan_stays_at_its_position():
    lp = torch.tensor([-0.5, math.nan, -2.0])
    for b in (ppo_clip(lp), clip_higher(lp), dcpo(lp), paper_bisection(lp, 0.05)):
        assert torch.isnan(b.lower[1]) and torch.isnan(b.upper[1])
        assert not torch.isnan(b.lower[[0, 2]]).any()


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="eps"):
        ppo_clip(LP, eps=-0.1)
    with pytest.raises(TypeError, match="old_log_prob"):
        dcpo([0.1])
    with pytest.raises(ValueError, match="delta"):
        paper_bisection(LP, 0.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_paper_bisection_reaches_its_absolute_tolerance(dtype):
    """Inside the paper's comfort zone the bisection is within its 1e-6 absolute tolerance."""
    lp = torch.log(torch.tensor([0.01, 0.1, 0.5, 0.8], dtype=torch.float64))
    b = paper_bisection(lp.to(dtype), 0.05, "kl")
    assert b.lower.dtype == dtype
    for i, x in enumerate(lp.tolist()):
        with mpmath.workdps(40):
            ref = oracle_band(mpmath.exp(mpmath.mpf(x)), 0.05, "kl", dps=30)
        slack = 1e-6 + 4 * torch.finfo(dtype).eps * float(ref.upper)
        assert abs(b.lower[i].item() - float(ref.lower)) <= slack
        assert abs(b.upper[i].item() - float(ref.upper)) <= slack


def test_paper_bisection_defects_are_real():
    """What the baseline gets wrong, by construction (and what bench/testing report)."""
    lp = torch.log(torch.tensor([1e-3], dtype=torch.float64))
    b = paper_bisection(lp, 0.05, "kl")
    ref = oracle_band(mpmath.mpf(1) / 1000, 0.05, "kl")
    # r₋ ≈ 7e-23 is below the 1e-6 absolute tolerance: no relative accuracy at all
    assert float(ref.lower) < 1e-20 and b.lower.item() > 1e3 * float(ref.lower)
    # a saturated end is not returned exactly: tv upper at p = 0.99, δ = 0.5 is 1/p
    s = paper_bisection(torch.log(torch.tensor([0.99], dtype=torch.float64)), 0.5, "tv")
    assert s.upper.item() != 1 / 0.99 and abs(s.upper.item() - 1 / 0.99) <= 1e-6


def test_paper_bisection_clip_p_reproduces_the_paper_range():
    lp = torch.log(torch.tensor([1e-9, 1e-6], dtype=torch.float64))
    b = paper_bisection(lp, 0.05, "tv", clip_p=True)
    assert b.upper[0].item() == pytest.approx(b.upper[1].item(), rel=1e-9)
