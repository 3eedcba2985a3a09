"""The Band-clipped policy loss against a naive per-token reference, gradients included.

The reference (``_reference_loss``) evaluates the defining formula token by token with Python
control flow on 0-d tensors, so that autograd differentiates the same formula through an
independent code path; aggregation is written as explicit loops.  Band intervals of the
reference come from the mpmath oracle (``oracle_band``), not from the torch solver.
"""

from __future__ import annotations

import math

import pytest
import torch

from bandpo import band_policy_loss, oracle_band
from bandpo.loss import (
    LOG_RATIO_LIMIT,
    LOSS_AGG_MODES,
    PolicyLossMetrics,
    aggregate_loss,
    clipped_policy_loss,
)
from bandpo.tolerances import tolerance_for

F64 = tolerance_for(torch.float64)


# ----------------------------------------------------------------------------- the reference


def _reference_token(old, lp, a, lo, hi, c):
    """ℓ = max(−A·r, −A·clip(r, lo, hi)), then min(ℓ, −A·c) for A < 0 (0-d tensors)."""
    log_r = lp - old
    log_r = torch.clamp(log_r, -LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    r = torch.exp(log_r)
    if r < lo:
        r_clipped = torch.as_tensor(lo, dtype=r.dtype)
    elif r > hi:
        r_clipped = torch.as_tensor(hi, dtype=r.dtype)
    else:
        r_clipped = r
    l1 = -a * r
    l2 = -a * r_clipped
    loss = l2 if l2 > l1 else l1
    if c is not None and a < 0:
        cap = -a * c
        if loss > cap:
            loss = cap
    return loss


def _reference_loss(old, lp, adv, mask, lower, upper, mode, c):
    """Per-token loop + the aggregation definitions written out (2-D inputs)."""
    B, T = lp.shape
    per_seq_sum, per_seq_n = [], []
    for i in range(B):
        s = torch.zeros((), dtype=lp.dtype)
        n = 0
        for j in range(T):
            if mask[i, j]:
                s = s + _reference_token(
                    old[i, j], lp[i, j], adv[i, j], float(lower[i, j]), float(upper[i, j]), c
                )
                n += 1
        per_seq_sum.append(s)
        per_seq_n.append(n)
    nonempty = [k for k in range(B) if per_seq_n[k] > 0]
    if mode == "token-mean":
        total = sum(per_seq_sum, torch.zeros((), dtype=lp.dtype))
        return total / max(sum(per_seq_n), 1)
    if not nonempty:
        return torch.zeros((), dtype=lp.dtype)
    if mode == "seq-mean-token-mean":
        return sum(per_seq_sum[k] / per_seq_n[k] for k in nonempty) / len(nonempty)
    if mode == "seq-mean-token-sum":
        return sum(per_seq_sum[k] for k in nonempty) / len(nonempty)
    if mode == "seq-mean-token-sum-norm":
        return sum(per_seq_sum[k] for k in nonempty) / len(nonempty) / T
    raise AssertionError(mode)


def _batch(seed, B=5, T=7, dtype=torch.float64, empty_row=True):
    """Random batch: old log p spread over 1e-4..1, ratios near and far from 1, mixed-sign A."""
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g, dtype=dtype) * 9.0  # p from 1.2e-4 to 1
    log_r = torch.randn(B, T, generator=g, dtype=dtype)  # many tokens outside any clip
    lp = (old + log_r).clamp(max=0.0)
    adv = torch.randn(B, T, generator=g, dtype=dtype) * 1.5
    mask = torch.rand(B, T, generator=g) < 0.75
    mask[0, :] = True
    # Pin one kept token on each side of every branch: A < 0 with r = 5 (dual clip binds),
    # A > 0 with r = 5 (upper end binds), A < 0 with r = 0.02 (lower end binds for lower > 0.02).
    for j, (p_old, r, a) in enumerate([(0.01, 5.0, -1.3), (0.02, 5.0, 0.8), (0.5, 0.02, -0.6)]):
        old[0, j] = math.log(p_old)
        lp[0, j] = math.log(p_old * r)
        adv[0, j] = a
    if empty_row:
        mask[-1, :] = False  # an all-masked sequence (must not count in the seq-* means)
    return old, lp, adv, mask


def _assert_close(got, want, what):
    got = torch.as_tensor(got, dtype=torch.float64).detach()
    want = torch.as_tensor(want, dtype=torch.float64).detach()
    scale = max(abs(float(want)), 1e-300)
    assert abs(float(got) - float(want)) <= F64.rel * scale + 1e-300, f"{what}: {got} vs {want}"


def _assert_grad_close(got, want, what):
    err = (got - want).abs().max().item()
    scale = want.abs().max().item()
    assert err <= 16 * F64.rel * max(scale, 1.0), (
        f"{what}: max |Δgrad| = {err:.3e} (scale {scale:.3e})"
    )


# ----------------------------------------------------------------------------- clipped loss


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
@pytest.mark.parametrize("c", [3.0, None], ids=["dual-clip", "no-dual-clip"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clipped_loss_matches_reference(mode, c, seed):
    old, lp, adv, mask = _batch(seed)
    g = torch.Generator().manual_seed(100 + seed)
    lower = torch.rand(old.shape, generator=g, dtype=old.dtype) * 0.9  # [0, 0.9)
    upper = 1.0 + torch.rand(old.shape, generator=g, dtype=old.dtype) * 2.0  # [1, 3)
    lp1 = lp.clone().requires_grad_(True)
    loss, m = clipped_policy_loss(
        old, lp1, adv, mask, lower, upper, loss_agg_mode=mode, clip_ratio_c=c
    )
    # Every branch of the formula is exercised by this batch.
    assert float(m.clip_frac_upper) > 0 and float(m.clip_frac_lower) > 0
    assert (float(m.dual_clip_frac) > 0) == (c is not None)
    (grad,) = torch.autograd.grad(loss, lp1)
    lp2 = lp.clone().requires_grad_(True)
    ref = _reference_loss(old, lp2, adv, mask, lower, upper, mode, c)
    (ref_grad,) = torch.autograd.grad(ref, lp2)
    _assert_close(loss, ref, f"loss {mode}")
    _assert_grad_close(grad, ref_grad, f"grad {mode}")
    assert torch.all(grad[~mask] == 0)


def test_dual_clip_changes_the_loss_only_for_negative_advantages():
    # One token, A < 0, r = 5 > c = 3: the dual clip caps the loss at −A·c.
    old = torch.log(torch.tensor([[0.1, 0.1]], dtype=torch.float64))
    lp = (old + math.log(5.0)).requires_grad_(True)
    adv = torch.tensor([[-2.0, 2.0]], dtype=torch.float64)
    mask = torch.ones_like(adv, dtype=torch.bool)
    lo, hi = torch.full_like(adv, 0.8), torch.full_like(adv, 1.2)
    on, m_on = clipped_policy_loss(
        old, lp, adv, mask, lo, hi, loss_agg_mode="seq-mean-token-sum", clip_ratio_c=3.0
    )
    off, m_off = clipped_policy_loss(
        old, lp, adv, mask, lo, hi, loss_agg_mode="seq-mean-token-sum", clip_ratio_c=None
    )
    # token 1: A=-2, r=5: ℓ = max(10, 2·1.2) = 10, dual: min(10, 6) = 6
    # token 2: A=2, r=5: ℓ = max(-10, -2.4) = -2.4
    _assert_close(on, 6.0 - 2.4, "dual-clip on")
    _assert_close(off, 10.0 - 2.4, "dual-clip off")
    assert float(m_on.dual_clip_frac) == 0.5 and float(m_off.dual_clip_frac) == 0.0
    (g_on,) = torch.autograd.grad(on, lp)
    assert g_on.tolist() == [[0.0, 0.0]]  # both tokens sit on a flat (clipped) branch


# ----------------------------------------------------------------------------- Band loss


@pytest.mark.parametrize("divergence", ["kl", "tv", "chi2"])
@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
def test_band_loss_matches_reference_with_oracle_bounds(divergence, mode):
    delta = 0.05
    old, lp, adv, mask = _batch(7, B=3, T=6)
    lower = torch.ones_like(old)
    upper = torch.ones_like(old)
    for idx in zip(*torch.nonzero(mask, as_tuple=True), strict=True):
        band = oracle_band(math.exp(float(old[idx])), delta, divergence, dps=30)
        lower[idx], upper[idx] = float(band.lower), float(band.upper)
    lp1 = lp.clone().requires_grad_(True)
    loss, metrics = band_policy_loss(
        old, lp1, adv, mask, delta=delta, divergence=divergence, loss_agg_mode=mode
    )
    (grad,) = torch.autograd.grad(loss, lp1)
    lp2 = lp.clone().requires_grad_(True)
    ref = _reference_loss(old, lp2, adv, mask, lower, upper, mode, 3.0)
    (ref_grad,) = torch.autograd.grad(ref, lp2)
    _assert_close(loss, ref, f"band loss {divergence}")
    _assert_grad_close(grad, ref_grad, f"band grad {divergence}")
    width = (upper - lower)[mask].mean()
    assert abs(float(metrics.band_width) - float(width)) <= 1e-9 * float(width)


@pytest.mark.parametrize("fill", [float("nan"), float("-inf"), 0.0, float("inf")])
@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_masked_garbage_is_inert(fill, mode):
    old, lp, adv, mask = _batch(3)
    clean_old = torch.where(mask, old, 0.0)
    clean_lp = torch.where(mask, lp, 0.0).requires_grad_(True)
    clean_adv = torch.where(mask, adv, 0.0)
    ref_loss, ref_m = band_policy_loss(clean_old, clean_lp, clean_adv, mask, loss_agg_mode=mode)
    (ref_grad,) = torch.autograd.grad(ref_loss, clean_lp)

    dirty_old = torch.where(mask, old, fill)
    dirty_lp = torch.where(mask, lp, fill).requires_grad_(True)
    dirty_adv = torch.where(mask, adv, fill)
    for response_mask in (mask, mask.to(torch.float32), mask.to(torch.int64)):
        loss, m = band_policy_loss(
            dirty_old, dirty_lp, dirty_adv, response_mask, loss_agg_mode=mode
        )
        (grad,) = torch.autograd.grad(loss, dirty_lp)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        assert float(loss.detach()) == float(ref_loss.detach())
        assert torch.equal(grad, ref_grad)
        assert torch.all(grad[~mask] == 0)
        for key, value in m.as_dict().items():
            assert math.isfinite(value), key
            assert value == ref_m.as_dict()[key], key


def test_all_masked_batch_gives_zero_loss_and_gradient():
    old, lp, adv, mask = _batch(4)
    none = torch.zeros_like(mask)
    lp = torch.full_like(lp, float("nan")).requires_grad_(True)
    for mode in LOSS_AGG_MODES:
        loss, m = band_policy_loss(old * float("nan"), lp, adv, none, loss_agg_mode=mode)
        (grad,) = torch.autograd.grad(loss, lp)
        assert float(loss.detach()) == 0.0 and torch.all(grad == 0)
        assert all(v == 0.0 for v in m.as_dict().values())


def test_no_gradient_flows_into_old_log_prob_or_advantages():
    old, lp, adv, mask = _batch(5)
    old = old.clone().requires_grad_(True)
    adv = adv.clone().requires_grad_(True)
    lp = lp.clone().requires_grad_(True)
    loss, _ = band_policy_loss(old, lp, adv, mask)
    loss.backward()
    assert old.grad is None and adv.grad is None
    assert lp.grad is not None and lp.grad.abs().sum() > 0


def test_half_precision_inputs_are_computed_in_float32():
    old, lp, adv, mask = _batch(6)
    ref, _ = band_policy_loss(old.float(), lp.float(), adv.float(), mask)
    got, _ = band_policy_loss(old.bfloat16(), lp.bfloat16(), adv.bfloat16(), mask)
    assert got.dtype == torch.float32 and ref.dtype == torch.float32
    # bf16 rounding of the inputs moves the loss; the computation itself is float32.
    want, _ = band_policy_loss(
        old.bfloat16().float(), lp.bfloat16().float(), adv.bfloat16().float(), mask
    )
    assert float(got) == float(want)


# ----------------------------------------------------------------------------- metrics


def test_metrics_values_on_a_constructed_batch():
    # Four kept tokens (p = 0.1 each, PPO interval [0.8, 1.2]) and one masked:
    #  A=+1, r=1.5 → upper clip binds;   A=-1, r=0.5 → lower clip binds;
    #  A=-1, r=4   → dual clip binds;    A=+1, r=1.0 → nothing binds.
    p = 0.1
    ratios = torch.tensor([[1.5, 0.5, 4.0, 1.0, 7.0]], dtype=torch.float64)
    old = torch.full_like(ratios, math.log(p))
    lp = old + torch.log(ratios)
    adv = torch.tensor([[1.0, -1.0, -1.0, 1.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    loss, m = clipped_policy_loss(old, lp, adv, mask, 0.8, 1.2, clip_ratio_c=3.0)
    d = m.as_dict()
    assert d["clip_frac_upper"] == 0.25
    assert d["clip_frac_lower"] == 0.25
    assert d["dual_clip_frac"] == 0.25
    assert d["clip_frac"] == 0.5  # clipped branch strictly larger: tokens 1 and 2
    assert d["n_tokens"] == 4
    assert d["band_width"] == pytest.approx(0.4, rel=F64.rel)
    assert d["ratio_max"] == pytest.approx(4.0, rel=F64.rel)
    assert d["ratio_mean"] == pytest.approx((1.5 + 0.5 + 4.0 + 1.0) / 4, rel=F64.rel)
    log_r = torch.log(ratios[0, :4])
    assert d["approx_kl"] == pytest.approx(float(-log_r.mean()), rel=F64.rel)
    assert d["approx_kl_k3"] == pytest.approx(float((log_r.exp() - 1 - log_r).mean()), rel=F64.rel)
    # ℓ: -1.2, 0.8, min(4, 3) = 3, -1.0 → token mean 1.6/4
    assert float(loss) == pytest.approx(0.4, rel=F64.rel)
    assert isinstance(m, PolicyLossMetrics)
    assert set(m.as_dict("actor/")) == {f"actor/{k}" for k in d}


# ----------------------------------------------------------------------------- aggregation


def test_global_batch_normalisers_follow_data_parallel_convention():
    old, _, _, mask = _batch(8)
    loss_mat = torch.randn(old.shape, dtype=torch.float64)
    local = aggregate_loss(loss_mat, mask, "token-mean")
    n_local = int(mask.sum())
    dist = aggregate_loss(loss_mat, mask, "token-mean", dp_size=2, batch_num_tokens=3 * n_local)
    _assert_close(dist, local * n_local / (3 * n_local) * 2, "token-mean dp")
    s_local = int((mask.sum(-1) > 0).sum())
    dist = aggregate_loss(
        loss_mat,
        mask,
        "seq-mean-token-sum-norm",
        dp_size=4,
        global_batch_size=10,
        loss_scale_factor=32,
    )
    want = aggregate_loss(loss_mat, mask, "seq-mean-token-sum") * s_local / 10 * 4 / 32
    _assert_close(dist, want, "seq-mean-token-sum-norm dp")
    with pytest.raises(ValueError, match="batch_num_tokens"):
        aggregate_loss(loss_mat, mask, "token-mean", dp_size=2)
    with pytest.raises(ValueError, match="global_batch_size"):
        aggregate_loss(loss_mat, mask, "seq-mean-token-mean", dp_size=2)


def test_weights_scale_the_per_token_loss():
    old, lp, adv, mask = _batch(9)
    w = torch.rand(old.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w_dirty = torch.where(mask, w, float("nan"))
    got, _ = band_policy_loss(
        old, lp, adv, mask, weights=w_dirty, loss_agg_mode="seq-mean-token-sum"
    )
    # Weighted reference: scale the advantages instead (ℓ is positively homogeneous in A).
    want, _ = band_policy_loss(old, lp, adv * w, mask, loss_agg_mode="seq-mean-token-sum")
    _assert_close(got, want, "weights")


# ----------------------------------------------------------------------------- bad input


def test_bad_arguments_raise_clear_errors():
    old, lp, adv, mask = _batch(10)
    with pytest.raises(ValueError, match="loss_agg_mode"):
        band_policy_loss(old, lp, adv, mask, loss_agg_mode="mean")
    with pytest.raises(ValueError, match="advantages must have the shape"):
        band_policy_loss(old, lp, adv[:, :-1], mask)
    with pytest.raises(ValueError, match="response_mask must have the shape"):
        band_policy_loss(old, lp, adv, mask[:, :-1])
    with pytest.raises(ValueError, match="clip_ratio_c"):
        band_policy_loss(old, lp, adv, mask, clip_ratio_c=1.0)
    with pytest.raises(ValueError, match="delta"):
        band_policy_loss(old, lp, adv, mask, delta=0.0)
    with pytest.raises(ValueError, match="delta"):
        band_policy_loss(old, lp, adv, mask, delta=float("nan"))
    with pytest.raises(TypeError, match="delta"):
        band_policy_loss(old, lp, adv, mask, delta="0.05")
    with pytest.raises(TypeError, match="log_prob"):
        band_policy_loss(old, lp.to(torch.int64), adv, mask)
    with pytest.raises(TypeError, match="old_log_prob"):
        band_policy_loss(old.tolist(), lp, adv, mask)
    with pytest.raises(ValueError, match="response_mask must hold only 0 and 1"):
        band_policy_loss(old, lp, adv, mask.to(torch.float64) * 0.5)
    with pytest.raises(ValueError, match="unknown divergence"):
        band_policy_loss(old, lp, adv, mask, divergence="nope")
    kept_nan = torch.where(mask, float("nan"), old)
    with pytest.raises(ValueError, match="old_log_prob must be finite"):
        band_policy_loss(kept_nan, lp, adv, mask)
    with pytest.raises(ValueError, match="advantages must be finite"):
        band_policy_loss(old, lp, torch.where(mask, float("inf"), adv), mask)
    with pytest.raises(ValueError, match="log_prob must be not NaN"):
        band_policy_loss(old, torch.where(mask, float("nan"), lp), adv, mask)
    with pytest.raises(ValueError, match="lower/upper"):
        clipped_policy_loss(old, lp, adv, mask, 1.1, 1.2)
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        band_policy_loss(old, lp, adv, mask, weights=torch.where(mask, -1.0, 1.0))
