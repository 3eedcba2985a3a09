"""The Band-clipped policy loss: a drop-in replacement for PPO/GRPO's ratio clip.

Per token, with ratio r = π(a|s)/π_old(a|s) = exp(log_prob − old_log_prob), advantage A and a
ratio interval [r₋, r₊],

    ℓ = max(−A·r, −A·clip(r, r₋, r₊))                                   (the clipped surrogate)
    ℓ = min(ℓ, −A·c)            for A < 0 when dual-clip is on (c = clip_ratio_c, Ye et al. 2020)

and the per-token losses are aggregated over the response mask with one of verl's modes
(:data:`LOSS_AGG_MODES`).  :func:`band_policy_loss` takes the interval from the Band operator,
[r₋(p), r₊(p)] = :func:`bandpo.band_bounds` (p = π_old(a|s), BandPO arXiv 2603.04918, Eq. of
the clipped objective); :func:`clipped_policy_loss` takes any interval, so PPO clip,
Clip-Higher and DCPO run through the same code (see :mod:`bandpo.solvers.baselines`).

Masked positions are inert: they may hold 0, −inf or NaN in any input and never reach the loss,
its gradient or the metrics.  Every input is routed through ``torch.where`` *before* any
arithmetic (a NaN multiplied by a zero mask is still NaN, and so is its gradient).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

__all__ = [
    "LOG_RATIO_LIMIT",
    "LOSS_AGG_MODES",
    "PolicyLossMetrics",
    "aggregate_loss",
    "band_policy_loss",
    "clipped_policy_loss",
]

#: verl's loss aggregation names (``actor.loss_agg_mode``), all supported here.
LOSS_AGG_MODES = (
    "token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
)

#: Default bound on |log r| before the exponential.  exp(±20) spans 2e-9 … 5e8; beyond it the
#: ratio is degenerate and an overflowing exp would turn a zero gradient into 0·inf = NaN.  The
#: gradient is zero where the bound is active (same convention as verl's vanilla PPO loss).
LOG_RATIO_LIMIT = 20.0

BoundsFn = Callable[[torch.Tensor], Any]


@dataclass(frozen=True)
class PolicyLossMetrics:
    """Diagnostics of one loss evaluation, all over the masked (kept) tokens.

    Every field is a detached 0-d tensor (no host synchronisation inside the loss); call
    :meth:`as_dict` for Python floats when logging.

    Attributes:
        clip_frac: Fraction of tokens where the clipped branch is strictly larger than the
            unclipped one, max picks it and the gradient is zero (verl's ``pg_clipfrac``).
        clip_frac_upper: Fraction of tokens with A > 0 and r > r₊ (the upper end binds).
        clip_frac_lower: Fraction of tokens with A < 0 and r < r₋ (the lower end binds).
        dual_clip_frac: Fraction of tokens with A < 0 where the dual clip −A·c binds (verl's
            ``pg_clipfrac_lower``); 0 when dual-clip is off.
        approx_kl: Mean of old_log_prob − log_prob, the k1 estimate of KL(π_old ‖ π) on the
            sampled tokens (verl's ``ppo_kl``).
        approx_kl_k3: Mean of (r − 1) − log r, the non-negative k3 estimate of the same KL.
        band_width: Mean of r₊ − r₋ (inf if some r₊ is infinite).
        band_lower: Mean of r₋.
        band_upper: Mean of r₊ (inf if some r₊ is infinite).
        ratio_mean: Mean of r.
        ratio_max: Largest r (0 when no token is kept).
        n_tokens: Number of kept tokens (a float tensor, so that it sums across micro-batches).

    Notes:
        With no kept token every mean is reported as 0, never NaN.
    """

    clip_frac: torch.Tensor
    clip_frac_upper: torch.Tensor
    clip_frac_lower: torch.Tensor
    dual_clip_frac: torch.Tensor
    approx_kl: torch.Tensor
    approx_kl_k3: torch.Tensor
    band_width: torch.Tensor
    band_lower: torch.Tensor
    band_upper: torch.Tensor
    ratio_mean: torch.Tensor
    ratio_max: torch.Tensor
    n_tokens: torch.Tensor

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """The metrics as ``{prefix + name: float}`` (one host synchronisation for all)."""
        fields = asdict(self)
        values = torch.stack([v.detach().to(torch.float64).reshape(()) for v in fields.values()])
        return {prefix + k: float(v) for k, v in zip(fields, values.cpu().tolist(), strict=True)}


# ----------------------------------------------------------------------------- validation


def _check_tensor(name: str, x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _check_float(name: str, x: torch.Tensor) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    # Half types cannot resolve ratios near 1 (bf16 spacing at 1 is 2^-7): compute in float32.
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    return dtype


def _kept_mask(response_mask: torch.Tensor, shape: torch.Size, validate: bool) -> torch.Tensor:
    _check_tensor("response_mask", response_mask)
    if response_mask.shape != shape:
        raise ValueError(
            f"response_mask must have the shape of log_prob {tuple(shape)}, "
            f"got {tuple(response_mask.shape)}"
        )
    if response_mask.dtype == torch.bool:
        return response_mask
    if validate:
        ok = (response_mask == 0) | (response_mask == 1)
        if not bool(ok.all()):
            raise ValueError(
                "response_mask must hold only 0 and 1 (or be a bool tensor); "
                "token weights belong in `weights`"
            )
    return response_mask != 0


def _validate_kept(
    mask: torch.Tensor,
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    lower: torch.Tensor | None,
    upper: torch.Tensor | None,
    weights: torch.Tensor | None = None,
) -> None:
    """Checks on kept tokens only (masked ones may hold anything).  One host sync."""
    checks = [
        (
            "old_log_prob",
            "finite and <= 0 at kept tokens",
            ~(torch.isfinite(old_log_prob) & (old_log_prob <= 0)),
        ),
        ("log_prob", "not NaN at kept tokens", torch.isnan(log_prob)),
        ("advantages", "finite at kept tokens", ~torch.isfinite(advantages)),
    ]
    if lower is not None and upper is not None:
        bad = ~((lower >= 0) & (lower <= 1) & (upper >= 1))  # also catches NaN
        checks.append(("lower/upper", "0 <= lower <= 1 <= upper at kept tokens", bad))
    if weights is not None:
        checks.append(
            (
                "weights",
                "finite and >= 0 at kept tokens",
                ~(torch.isfinite(weights) & (weights >= 0)),
            )
        )
    flags = torch.stack([(bad & mask).any() for _, _, bad in checks]).cpu().tolist()
    for (name, rule, _), flag in zip(checks, flags, strict=True):
        if flag:
            raise ValueError(f"{name} must be {rule}")


# ----------------------------------------------------------------------------- aggregation


def _normaliser(
    count: Any, local: torch.Tensor, dp_size: int, what: str, like: torch.Tensor
) -> torch.Tensor:
    """max(1, count) as a 0-d tensor in ``like``'s dtype and device.

    ``count`` is the global count supplied by the caller; when it is None the local count
    ``local.sum()`` stands in, which is only right on one data-parallel rank, so dp_size > 1
    without it raises ValueError naming ``what``.  The clamp keeps an all-masked batch at 0,
    never NaN.
    """
    if count is None:
        if dp_size > 1:
            raise ValueError(f"{what} is needed when dp_size > 1")
        count = local.sum().to(like.dtype)
    return torch.clamp(torch.as_tensor(count, dtype=like.dtype, device=like.device), min=1)


def aggregate_loss(
    loss_mat: torch.Tensor,
    mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    *,
    dp_size: int = 1,
    batch_num_tokens: float | torch.Tensor | None = None,
    global_batch_size: float | torch.Tensor | None = None,
    loss_scale_factor: float | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss matrix to a scalar with one of verl's aggregation modes.

    The last dimension indexes tokens; every leading index is one sequence.  With the bool
    ``mask`` (kept tokens), T the padded length and S the number of sequences with at least one
    kept token:

    * ``token-mean``:  Σ_kept ℓ / N_tokens
    * ``seq-mean-token-sum``:  (1/S) Σ_seq Σ_t ℓ
    * ``seq-mean-token-mean``:  (1/S) Σ_seq (Σ_t ℓ / n_seq)
    * ``seq-mean-token-sum-norm``:  (1/S) Σ_seq Σ_t ℓ / T  (Dr. GRPO's constant normaliser;
      ``loss_scale_factor`` replaces T)

    Args:
        loss_mat: Per-token losses, any shape with at least one dimension.  Values at masked
            positions are ignored (selected away, never multiplied).
        mask: Bool tensor of the same shape, True where a token is kept.
        loss_agg_mode: One of :data:`LOSS_AGG_MODES`.
        dp_size: Data-parallel world size; with global normalisers the local loss is scaled by
            it so that the all-reduced mean gradient equals the global-batch mean (verl's
            convention).
        batch_num_tokens: Kept tokens in the global batch (token-mean); default: local count.
        global_batch_size: Non-empty sequences in the global batch (seq-* modes); default:
            local count.
        loss_scale_factor: Normaliser of ``seq-mean-token-sum-norm``; default: T.

    Returns:
        The 0-d loss.  Empty sequences are excluded from S; an all-masked batch gives 0 (with a
        zero gradient), never NaN.

    Raises:
        ValueError: unknown mode, a shape mismatch, or dp_size > 1 without the global count.
    """
    if loss_agg_mode not in LOSS_AGG_MODES:
        raise ValueError(
            f"loss_agg_mode must be one of {', '.join(LOSS_AGG_MODES)}; got {loss_agg_mode!r}"
        )
    if loss_mat.dim() < 1 or mask.shape != loss_mat.shape:
        raise ValueError(
            f"mask must have the shape of loss_mat {tuple(loss_mat.shape)} (at least 1-D), "
            f"got {tuple(mask.shape)}"
        )
    if not isinstance(dp_size, int) or dp_size < 1:
        raise ValueError(f"dp_size must be a positive int, got {dp_size!r}")
    zero = torch.zeros((), dtype=loss_mat.dtype, device=loss_mat.device)
    kept = torch.where(mask, loss_mat, zero)
    if loss_agg_mode == "token-mean":
        denom = _normaliser(
            batch_num_tokens, mask, dp_size, "batch_num_tokens (global kept-token count)", loss_mat
        )
        return kept.sum() / denom * dp_size
    seq_sum = kept.sum(dim=-1)
    seq_len = mask.sum(dim=-1)
    nonempty = seq_len > 0
    if loss_agg_mode == "seq-mean-token-mean":
        seq_loss = seq_sum / torch.clamp(seq_len, min=1).to(loss_mat.dtype)
    else:
        seq_loss = seq_sum
    denom = _normaliser(
        global_batch_size,
        nonempty,
        dp_size,
        "global_batch_size (global non-empty sequence count)",
        loss_mat,
    )
    loss = torch.where(nonempty, seq_loss, zero).sum() / denom * dp_size
    if loss_agg_mode == "seq-mean-token-sum-norm":
        scale = loss_mat.shape[-1] if loss_scale_factor is None else loss_scale_factor
        if not scale > 0:
            raise ValueError(f"loss_scale_factor must be positive, got {loss_scale_factor!r}")
        loss = loss / scale
    return loss


# ----------------------------------------------------------------------------- the loss


def clipped_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    lower: torch.Tensor | float,
    upper: torch.Tensor | float,
    *,
    loss_agg_mode: str = "token-mean",
    clip_ratio_c: float | None = 3.0,
    weights: torch.Tensor | None = None,
    log_ratio_limit: float | None = LOG_RATIO_LIMIT,
    validate: bool = True,
    global_batch_info: Mapping[str, Any] | None = None,
) -> tuple[torch.Tensor, PolicyLossMetrics]:
    """Clipped-surrogate policy loss for any per-token ratio interval [lower, upper].

    Per kept token, r = exp(log_prob − old_log_prob) and

        ℓ = max(−A·r, −A·clip(r, lower, upper)),   and for A < 0:  ℓ = min(ℓ, −A·c)

    then ``weights`` (if any) multiply ℓ and :func:`aggregate_loss` reduces it.

    Args:
        old_log_prob: log π_old of the sampled tokens, shape (..., T); no gradient is taken.
        log_prob: log π of the same tokens under the current policy (carries the gradient).
        advantages: A per token, same shape.
        response_mask: 0/1 or bool, same shape; masked positions may hold anything.
        lower, upper: The ratio interval, tensors broadcastable to the shape (or floats);
            detached.  They must satisfy 0 ≤ lower ≤ 1 ≤ upper at kept tokens.
        loss_agg_mode: One of :data:`LOSS_AGG_MODES`.
        clip_ratio_c: Dual-clip constant c > 1 for A < 0; ``None`` disables dual-clip.
        weights: Optional per-token weights (e.g. verl's rollout importance weights), same shape.
        log_ratio_limit: Clamp log r to [−limit, limit] before exp (gradient 0 beyond); ``None``
            disables the clamp.  See :data:`LOG_RATIO_LIMIT`.
        validate: Check arguments and kept values (one host sync).  ``False`` for hot loops.
        global_batch_info: Keyword arguments of :func:`aggregate_loss` (``dp_size``,
            ``batch_num_tokens``, ``global_batch_size``, ``loss_scale_factor``).

    Returns:
        (loss, metrics): the 0-d loss in the compute dtype (float32 for half inputs) and a
        :class:`PolicyLossMetrics`.

    Raises:
        TypeError: a non-tensor or non-float input.
        ValueError: mismatched shapes, an unknown mode, c ≤ 1, or (with ``validate``) a kept
            token with non-finite old_log_prob/advantages, NaN log_prob or an invalid interval.
    """
    for name, t in (
        ("old_log_prob", old_log_prob),
        ("log_prob", log_prob),
        ("advantages", advantages),
    ):
        _check_float(name, _check_tensor(name, t))
    shape = log_prob.shape
    if log_prob.dim() < 1:
        raise ValueError("log_prob must have at least one (token) dimension")
    for name, t in (("old_log_prob", old_log_prob), ("advantages", advantages)):
        if t.shape != shape:
            raise ValueError(
                f"{name} must have the shape of log_prob {tuple(shape)}, got {tuple(t.shape)}"
            )
    if loss_agg_mode not in LOSS_AGG_MODES:
        raise ValueError(
            f"loss_agg_mode must be one of {', '.join(LOSS_AGG_MODES)}; got {loss_agg_mode!r}"
        )
    if clip_ratio_c is not None and not (
        isinstance(clip_ratio_c, (int, float)) and clip_ratio_c > 1
    ):
        raise ValueError(
            f"clip_ratio_c must be a number > 1 or None (dual-clip off), got {clip_ratio_c!r}"
        )
    if log_ratio_limit is not None and not (log_ratio_limit > 0):
        raise ValueError(f"log_ratio_limit must be positive or None, got {log_ratio_limit!r}")
    mask = _kept_mask(response_mask, shape, validate)
    if weights is not None:
        _check_float("weights", _check_tensor("weights", weights))
        if weights.shape != shape:
            raise ValueError(
                f"weights must have the shape of log_prob {tuple(shape)}, "
                f"got {tuple(weights.shape)}"
            )

    dtype = _compute_dtype(old_log_prob, log_prob, advantages)
    device = log_prob.device
    zero = torch.zeros((), dtype=dtype, device=device)
    one = torch.ones((), dtype=dtype, device=device)

    # Select before any arithmetic: masked positions become the neutral token (p = 1, r = 1, A = 0).
    old_lp = torch.where(mask, old_log_prob.detach().to(dtype), zero)
    lp = torch.where(mask, log_prob.to(dtype), zero)
    adv = torch.where(mask, advantages.detach().to(dtype), zero)
    lo = torch.as_tensor(lower, dtype=dtype, device=device).detach()
    hi = torch.as_tensor(upper, dtype=dtype, device=device).detach()
    lo, hi = torch.broadcast_tensors(lo, hi)
    try:
        lo = torch.where(mask, lo, one)
        hi = torch.where(mask, hi, one)
    except RuntimeError as err:
        raise ValueError(f"lower/upper must broadcast to {tuple(shape)}: {err}") from None
    if validate:
        _validate_kept(mask, old_lp, lp.detach(), adv, lo, hi, weights)

    log_ratio = lp - old_lp
    if log_ratio_limit is not None:
        log_ratio = torch.clamp(log_ratio, -log_ratio_limit, log_ratio_limit)
    ratio = torch.exp(log_ratio)

    loss_unclipped = -adv * ratio
    loss_clipped = -adv * torch.clamp(ratio, lo, hi)
    loss_mat = torch.maximum(loss_unclipped, loss_clipped)
    negative = adv < 0
    if clip_ratio_c is not None:
        loss_dual = -adv * clip_ratio_c
        dual_binds = negative & (loss_mat > loss_dual)
        loss_mat = torch.where(negative, torch.minimum(loss_mat, loss_dual), loss_mat)
    else:
        dual_binds = torch.zeros_like(mask)
    if weights is not None:
        loss_mat = loss_mat * torch.where(mask, weights.detach().to(dtype), zero)

    loss = aggregate_loss(loss_mat, mask, loss_agg_mode, **dict(global_batch_info or {}))

    with torch.no_grad():
        r = ratio.detach()
        n = mask.sum().to(dtype)
        denom = torch.clamp(n, min=1)

        def mean(x: torch.Tensor) -> torch.Tensor:
            return torch.where(mask, x.to(dtype), zero).sum() / denom

        metrics = PolicyLossMetrics(
            clip_frac=mean(loss_clipped.detach() > loss_unclipped.detach()),
            clip_frac_upper=mean((adv > 0) & (r > hi)),
            clip_frac_lower=mean(negative & (r < lo)),
            dual_clip_frac=mean(dual_binds),
            approx_kl=mean(old_lp - lp.detach()),
            approx_kl_k3=mean(torch.expm1(log_ratio.detach()) - log_ratio.detach()),
            band_width=mean(hi - lo),
            band_lower=mean(lo),
            band_upper=mean(hi),
            ratio_mean=mean(r),
            ratio_max=torch.where(mask, r, zero).amax() if r.numel() else zero,
            n_tokens=n,
        )
    return loss, metrics


def band_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    delta: float = 0.05,
    divergence: Any = "kl",
    loss_agg_mode: str = "token-mean",
    clip_ratio_c: float | None = 3.0,
    weights: torch.Tensor | None = None,
    log_ratio_limit: float | None = LOG_RATIO_LIMIT,
    validate: bool = True,
    global_batch_info: Mapping[str, Any] | None = None,
    bounds_fn: BoundsFn | None = None,
    **params: Any,
) -> tuple[torch.Tensor, PolicyLossMetrics]:
    """BandPO's policy loss: the clipped surrogate with the Band interval [r₋(p), r₊(p)].

    Per kept token, with p = exp(old_log_prob), r = exp(log_prob − old_log_prob) and
    (r₋, r₊) = band_bounds(old_log_prob, delta, divergence) (no gradient through the bounds):

        ℓ = max(−A·r, −A·clip(r, r₋(p), r₊(p))),   and for A < 0:  ℓ = min(ℓ, −A·c)

    aggregated with ``loss_agg_mode`` (BandPO, arXiv 2603.04918; dual-clip from Ye et al. 2020).

    Args:
        old_log_prob: log π_old of the sampled tokens, shape (..., T); no gradient is taken.
        log_prob: log π of the same tokens under the current policy (carries the gradient).
        advantages: A per token, same shape.
        response_mask: 0/1 or bool, same shape.  Masked positions may hold 0, −inf or NaN in
            every input: they are selected away before any arithmetic and never reach the
            loss, its gradient or the metrics.
        delta: Trust-region radius δ > 0 (the paper's default 0.05).
        divergence: A registry name or :class:`bandpo.Divergence` (``"kl"`` = the paper's BandKL).
        loss_agg_mode: One of :data:`LOSS_AGG_MODES` (verl's names).
        clip_ratio_c: Dual-clip constant c > 1 for A < 0; ``None`` disables dual-clip.
        weights: Optional per-token loss weights (e.g. rollout importance weights).
        log_ratio_limit: Clamp of log r before exp (see :data:`LOG_RATIO_LIMIT`); ``None`` = off.
        validate: Check arguments and kept values (host syncs); ``False`` for hot loops.
        global_batch_info: Global normalisers for :func:`aggregate_loss` (data parallelism).
        bounds_fn: Optional replacement for the Band solver, called as ``bounds_fn(old_lp)``
            on the masked-safe old log-probabilities and returning (lower, upper); by default
            ``band_bounds(old_lp, delta, divergence, validate=validate, **params)``.
        **params: Divergence parameters (``alpha=`` for ``"alpha"``).

    Returns:
        (loss, metrics): the 0-d loss and a :class:`PolicyLossMetrics`.

    Notes:
        The bounds are evaluated at masked positions on log p = 0 (p = 1, an exact end case of
        the solver) so that no NaN or infinity is formed there.
    """
    _check_float("old_log_prob", _check_tensor("old_log_prob", old_log_prob))
    if isinstance(delta, bool) or not isinstance(delta, (int, float, torch.Tensor)):
        raise TypeError(f"delta must be a positive float or a tensor, got {type(delta).__name__}")
    if isinstance(delta, (int, float)) and (math.isnan(delta) or delta <= 0):
        raise ValueError(f"delta must be > 0 (the trust-region radius), got {delta!r}")
    mask = _kept_mask(response_mask, old_log_prob.shape, validate)
    dtype = (
        _compute_dtype(old_log_prob, log_prob)
        if isinstance(log_prob, torch.Tensor)
        else old_log_prob.dtype
    )
    with torch.no_grad():
        old_lp = torch.where(
            mask,
            old_log_prob.detach().to(dtype),
            torch.zeros((), dtype=dtype, device=old_log_prob.device),
        )
        if validate:
            # band_bounds raises on log p > 0 / NaN; name the kept-token rule here instead.
            bad = (mask & ~(torch.isfinite(old_lp) & (old_lp <= 0))).any()
            if bool(bad):
                raise ValueError("old_log_prob must be finite and <= 0 at kept tokens")
        if bounds_fn is None:
            from bandpo.solvers.band import band_bounds

            band = band_bounds(old_lp, delta, divergence, validate=validate, **params)
        else:
            band = bounds_fn(old_lp)
        lower, upper = band[0], band[1]
    return clipped_policy_loss(
        old_log_prob,
        log_prob,
        advantages,
        mask,
        lower,
        upper,
        loss_agg_mode=loss_agg_mode,
        clip_ratio_c=clip_ratio_c,
        weights=weights,
        log_ratio_limit=log_ratio_limit,
        validate=validate,
        global_batch_info=global_batch_info,
    )
