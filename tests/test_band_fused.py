"""The fused (torch.compile) path of band_bounds: clean fallback, and equality with eager."""

from __future__ import annotations

import functools

import pytest
import torch

from bandpo.divergences import get_divergence
from bandpo.solvers import band as band_mod
from bandpo.solvers.bench import golden_error
from bandpo.tolerances import tolerance_for


@pytest.fixture
def fresh_fused_cache():
    saved = dict(band_mod._FUSED)
    band_mod._FUSED.clear()
    yield
    band_mod._FUSED.clear()
    band_mod._FUSED.update(saved)


def test_fused_mode_switch(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv(band_mod.FUSED_ENV, raising=False)
    assert not band_mod._use_fused(cpu) and band_mod._use_fused(cuda)
    monkeypatch.setenv(band_mod.FUSED_ENV, "1")
    assert band_mod._use_fused(cpu)
    monkeypatch.setenv(band_mod.FUSED_ENV, "0")
    assert not band_mod._use_fused(cuda)


@pytest.mark.parametrize("where", ["compile", "call"])
def test_compiler_failure_falls_back_to_eager(monkeypatch, fresh_fused_cache, where):
    def broken_compile(fn, **kwargs):
        if where == "compile":
            raise RuntimeError("no compiler here")

        def run(*args):
            raise RuntimeError("compiled kernel failed")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setenv(band_mod.FUSED_ENV, "1")
    lp = torch.log(torch.rand(50, dtype=torch.float64))
    with pytest.warns(RuntimeWarning, match="eager path"):
        got = band_mod.band_bounds(lp, 0.05, "kl")
    monkeypatch.setenv(band_mod.FUSED_ENV, "0")
    ref = band_mod.band_bounds(lp, 0.05, "kl")
    assert torch.equal(got.lower, ref.lower) and torch.equal(got.upper, ref.upper)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kl", "chi2"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_meets_the_accuracy_bars_on_golden(name, dtype, fresh_fused_cache):
    """CPU torch.compile (C++ codegen; the first call compiles for 20-100 s).  The fused kernel
    uses its own vectorised transcendental functions, so it is not bitwise equal to eager; it
    must meet the same bars against the golden tables."""
    div = get_divergence(name)
    tol = tolerance_for(dtype)
    rel, ulp = golden_error(div, dtype, functools.partial(band_mod._solve, div, fused=True))
    # the float64 bar is relative (1e-12), the float32 bar is in ulps (8)
    if dtype == torch.float64:
        assert rel <= tol.rel, rel
    else:
        assert ulp <= tol.ulp, ulp
