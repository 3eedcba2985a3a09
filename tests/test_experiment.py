"""The entropy-collapse bandit: a tiny configuration runs, its curves are finite and exact where
they can be, and the CLI writes its outputs."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from bandpo.experiments.entropy import (
    DEFAULT_METHODS,
    EntropyConfig,
    EntropyResult,
    _initial_logits,
    make_method,
    plot_entropy_experiment,
    run_entropy_experiment,
)

TINY = EntropyConfig(
    vocab_size=64,
    n_prompts=2,
    n_rewarded=3,
    group_size=8,
    epochs=3,
    steps=6,
    seeds=(0, 1),
)


@pytest.fixture(scope="module")
def tiny_result() -> EntropyResult:
    return run_entropy_experiment(TINY)


def test_initial_policy_puts_the_correct_tokens_in_the_tail():
    cfg = EntropyConfig(vocab_size=1024, seeds=(0,))
    logp, correct = _initial_logits(cfg, torch.Generator().manual_seed(0))
    assert logp.shape == (cfg.n_prompts, 1024) and correct.sum(-1).tolist() == [6] * cfg.n_prompts
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(cfg.n_prompts, dtype=logp.dtype))
    p_correct = logp.exp()[correct]
    assert p_correct.min() >= cfg.p_rewarded_min * (1 - 1e-12)
    assert p_correct.max() <= cfg.p_rewarded_max * (1 + 1e-12)
    # The most likely token of every prompt is an incorrect one.
    top = logp.argmax(-1)
    assert not correct[torch.arange(cfg.n_prompts), top].any()


def test_tiny_run_gives_finite_curves_of_the_right_shape(tiny_result):
    res = tiny_result
    M, S, R = len(DEFAULT_METHODS), len(TINY.seeds), TINY.steps + 1
    assert res.methods == DEFAULT_METHODS
    for curve in (res.entropy, res.reward, res.tail_mass, res.correct_entropy):
        assert curve.shape == (M, S, R)
        assert np.isfinite(curve).all()
    assert res.clip_frac.shape == (M, S, TINY.steps)
    assert ((res.reward >= 0) & (res.reward <= 1 + 1e-12)).all()
    assert (res.correct_entropy <= math.log(TINY.n_rewarded) + 1e-12).all()
    # Every method starts from the same policy: identical step-0 values across methods.
    for curve in (res.entropy, res.reward, res.tail_mass):
        assert np.all(curve[:, :, 0] == curve[:1, :, 0])
    # Step-0 values are those of the initial policy, computed independently here.
    logp, correct = _initial_logits(TINY, torch.Generator().manual_seed(TINY.seeds[0]))
    p = logp.exp()
    assert res.reward[0, 0, 0] == pytest.approx(float(p[correct].sum() / TINY.n_prompts), rel=1e-12)
    want_h = float(-(p * logp).sum(-1).mean())
    assert res.entropy[0, 0, 0] == pytest.approx(want_h, rel=1e-12)


def test_a_methods_curves_do_not_depend_on_the_other_methods(tiny_result):
    # Common random numbers per seed: PPO alone reproduces PPO inside the full comparison.
    alone = run_entropy_experiment(dataclasses.replace(TINY, methods=("ppo",)))
    i = tiny_result.methods.index("ppo")
    for name in ("entropy", "reward", "tail_mass", "correct_entropy"):
        np.testing.assert_array_equal(getattr(alone, name)[0], getattr(tiny_result, name)[i])


def test_several_epochs_make_the_ppo_clip_bind(tiny_result):
    ppo = tiny_result.methods.index("ppo")
    assert tiny_result.clip_frac[ppo].max() > 0


def test_learning_raises_the_reward(tiny_result):
    # Six steps of GRPO on a bandit: every method raises the mean expected reward over seeds.
    assert (
        tiny_result.reward[:, :, -1].mean(axis=1) > tiny_result.reward[:, :, 0].mean(axis=1)
    ).all()


def test_summary_json_and_figure(tiny_result, tmp_path):
    rows = tiny_result.summary()
    assert [r.method for r in rows] == list(DEFAULT_METHODS)
    for r in rows:
        assert r.n_seeds == 2 and math.isfinite(r.entropy_mean) and r.entropy_std >= 0
    payload = json.loads(tiny_result.to_json(tmp_path / "e.json"))
    assert payload["summary"][0]["method"] == "ppo"
    assert len(payload["curves"]["band-kl"]["entropy"][0]) == TINY.steps + 1
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_entropy_experiment(tiny_result)
    assert len(fig.axes) == 4
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(DEFAULT_METHODS)


def test_bad_configuration_and_method_names_raise():
    with pytest.raises(ValueError, match="group_size"):
        EntropyConfig(group_size=1)
    with pytest.raises(ValueError, match="vocab_size"):
        EntropyConfig(vocab_size=3)
    with pytest.raises(ValueError, match="seeds"):
        EntropyConfig(seeds=())
    with pytest.raises(ValueError, match="unknown method"):
        make_method("grpo")
    with pytest.raises(ValueError, match="unknown divergence"):
        make_method("band-nope")


def test_cli_writes_figure_json_and_prints_the_table(tmp_path):
    from typer.testing import CliRunner

    from bandpo.cli import app

    args = ["experiment", "entropy", "--out", str(tmp_path), "--seeds", "0,1"]
    args += ["--steps", "3", "--vocab-size", "64", "--epochs", "2", "--methods", "ppo,band-kl"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "entropy.png").stat().st_size > 0
    payload = json.loads((tmp_path / "entropy.json").read_text())
    assert [s["method"] for s in payload["summary"]] == ["ppo", "band-kl"]
    assert "band-kl" in result.output and "entropy" in result.output
