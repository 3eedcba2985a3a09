"""The verl adapter against a stand-in of verl's policy-loss registry.

verl itself is not installed here (it is heavy).  ``_FakeCoreAlgos`` reproduces the documented
interface of ``verl.trainer.ppo.core_algos``: ``POLICY_LOSS_REGISTRY``,
``register_policy_loss(name)`` (a decorator factory), ``get_policy_loss_fn(name)``, and a
``"vanilla"`` entry whose return annotation tells the installed return convention.  The actor
calls the loss by keyword with ``old_log_prob, log_prob, advantages, response_mask,
loss_agg_mode, config, rollout_is_weights``; ``_FakeActorConfig`` has verl's ``get`` accessor,
``clip_ratio_c`` and ``global_batch_info``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from bandpo import band_policy_loss
from bandpo.integrations.verl import make_verl_policy_loss, register_verl_policy_loss


class _FakeCoreAlgos:
    def __init__(self, convention: str) -> None:
        self.POLICY_LOSS_REGISTRY: dict[str, Any] = {}

        if convention == "metrics":

            def vanilla(
                old_log_prob,
                log_prob,
                advantages,
                response_mask,
                loss_agg_mode="token-mean",
                config=None,
                rollout_is_weights=None,
            ) -> tuple[torch.Tensor, dict[str, Any]]:
                raise AssertionError("not called")

        else:

            def vanilla(
                old_log_prob,
                log_prob,
                advantages,
                response_mask,
                loss_agg_mode="token-mean",
                config=None,
                rollout_log_probs=None,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
                raise AssertionError("not called")

        self.register_policy_loss("vanilla")(vanilla)

    def register_policy_loss(self, name):
        def decorator(fn):
            self.POLICY_LOSS_REGISTRY[name] = fn
            return fn

        return decorator

    def get_policy_loss_fn(self, name):
        return self.POLICY_LOSS_REGISTRY[name]


@dataclass
class _FakeActorConfig:
    clip_ratio: float = 0.2
    clip_ratio_c: float = 3.0
    global_batch_info: dict = field(default_factory=dict)

    def get(self, key, default=None):
        return getattr(self, key, default)


def _batch():
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(4, 6, generator=g, dtype=torch.float64) * 6
    lp = (old + 0.5 * torch.randn(4, 6, generator=g, dtype=torch.float64)).clamp(max=0)
    adv = torch.randn(4, 6, generator=g, dtype=torch.float64)
    mask = (torch.rand(4, 6, generator=g) < 0.8).to(torch.float32)
    return old, lp, adv, mask


def test_registers_under_bandpo_and_matches_band_policy_loss():
    core = _FakeCoreAlgos("metrics")
    fn = register_verl_policy_loss(delta=0.1, divergence="tv", registry=core)
    assert core.get_policy_loss_fn("bandpo") is fn
    old, lp, adv, mask = _batch()
    config = _FakeActorConfig(clip_ratio_c=2.5)
    lp = lp.requires_grad_(True)
    loss, metrics = core.get_policy_loss_fn("bandpo")(
        old_log_prob=old,
        log_prob=lp,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode="seq-mean-token-mean",
        config=config,
        rollout_is_weights=None,
    )
    want, m = band_policy_loss(
        old,
        lp,
        adv,
        mask,
        delta=0.1,
        divergence="tv",
        loss_agg_mode="seq-mean-token-mean",
        clip_ratio_c=2.5,
    )
    assert float(loss.detach()) == float(want.detach())
    (g1,) = torch.autograd.grad(loss, lp)
    (g2,) = torch.autograd.grad(want, lp)
    assert torch.equal(g1, g2)
    assert metrics["actor/pg_clipfrac"] == float(m.clip_frac)
    assert metrics["actor/ppo_kl"] == float(m.approx_kl)
    assert metrics["actor/pg_clipfrac_lower"] == float(m.dual_clip_frac)
    assert metrics["actor/band/band_width"] == float(m.band_width)
    assert all(isinstance(v, float) for v in metrics.values())


def test_rollout_weights_and_global_batch_info_are_forwarded():
    core = _FakeCoreAlgos("metrics")
    fn = register_verl_policy_loss(registry=core)
    old, lp, adv, mask = _batch()
    w = torch.rand(old.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    info = {"dp_size": 2, "batch_num_tokens": 40}
    config = _FakeActorConfig(global_batch_info=info)
    loss, _ = fn(old, lp, adv, mask, "token-mean", config, w)
    want, _ = band_policy_loss(old, lp, adv, mask, weights=w, global_batch_info=info)
    assert float(loss) == float(want)
    assert float(loss) != float(band_policy_loss(old, lp, adv, mask)[0])


def test_legacy_tuple_convention_is_followed():
    core = _FakeCoreAlgos("tuple")
    fn = register_verl_policy_loss("bandpo_kl", registry=core, delta=0.05)
    old, lp, adv, mask = _batch()
    out = fn(old, lp, adv, mask, loss_agg_mode="token-mean", config=None, rollout_log_probs=lp)
    assert len(out) == 4
    want, m = band_policy_loss(old, lp, adv, mask)
    assert float(out[0]) == float(want)
    assert float(out[1]) == float(m.clip_frac) and float(out[3]) == float(m.dual_clip_frac)


def test_bad_settings_fail_at_registration():
    core = _FakeCoreAlgos("metrics")
    with pytest.raises(ValueError, match="unknown divergence"):
        register_verl_policy_loss(registry=core, divergence="nope")
    with pytest.raises(ValueError, match="returns"):
        make_verl_policy_loss(returns="list")
    with pytest.raises(TypeError, match="register_policy_loss"):
        register_verl_policy_loss(registry=object())
    assert "bandpo" not in core.POLICY_LOSS_REGISTRY


def test_missing_verl_raises_an_import_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "verl", None)
    with pytest.raises(ImportError, match=r"bandpo\[verl\]"):
        register_verl_policy_loss()
