"""The fused (torch.compile) path of band_bounds: clean fallback, and equality with eager."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bandpo.divergences import get_divergence
from bandpo.golden import GOLDEN_DELTAS, load_golden
from bandpo.solvers import band as band_mod


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
def test_fused_equals_eager_on_golden(name, dtype, fresh_fused_cache):
    """CPU torch.compile (C++ codegen; the first call compiles for 20-100 s)."""
    div = get_divergence(name)
    t = load_golden(div)
    for d in GOLDEN_DELTAS:
        lp = torch.tensor(t.log_p[t.delta == d], dtype=dtype)
        fused = band_mod._solve(div, lp, d, fused=True)
        eager = band_mod._solve(div, lp, d, fused=False)
        for a, b in ((fused.lower, eager.lower), (fused.upper, eager.upper)):
            a, b = a.double().numpy(), b.double().numpy()
            same = (a == b) | (np.abs(a - b) <= 4 * np.finfo(np.float64).eps * np.abs(b))
            assert same.all()
