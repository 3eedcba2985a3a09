"""TRL adapter: ``GRPOTrainer`` with the Band-clipped policy loss.

TRL's ``GRPOTrainer`` computes its clipped surrogate inside ``_compute_loss(model, inputs)``;
there is no narrower hook.  :class:`BandLossMixin` overrides that method: it obtains the
per-token log-probabilities and entropies the way the trainer does, and replaces the
[1 − ε, 1 + ε] clip by the Band interval of :func:`bandpo.band_policy_loss`.  Everything else
(generation, rewards, group-relative advantages, the reference-model KL term, logging) stays
TRL's.  Use it as::

    from bandpo.integrations.trl import BandGRPOTrainer, BandLossConfig

    trainer = BandGRPOTrainer(
        model=model, reward_funcs=reward_fn, args=GRPOConfig(..., num_iterations=2),
        train_dataset=dataset, processing_class=tokenizer,
        band=BandLossConfig(delta=0.05, divergence="kl"),
    )
    trainer.train()

or mix :class:`BandLossMixin` in front of your own ``GRPOTrainer`` subclass.

Aggregation follows ``GRPOConfig.loss_type`` unless ``BandLossConfig.loss_agg_mode`` is set:
``grpo`` → seq-mean-token-mean, ``bnpo`` → token-mean, ``dr_grpo`` → seq-mean-token-sum-norm
(normaliser ``max_completion_length``), ``dapo`` → token-mean over the global token count (TRL's
``num_items_in_batch``).  Token-level importance sampling only (``importance_sampling_level
="token"``); the entropy bonus is not supported (a ValueError says so at construction).

Logged metrics (besides TRL's reward and completion statistics): ``entropy``, ``kl`` (with
β ≠ 0), ``clip_ratio/low_mean``, ``clip_ratio/high_mean``, ``clip_ratio/region_mean`` (the Band
ends binding, under TRL's names) and ``band/*`` (band width and ends, dual-clip fraction, approx
KL, ratio mean and max).

Note: with ``num_iterations=1`` and ``steps_per_generation <= gradient_accumulation_steps`` TRL
reuses the current log-probabilities as the old ones, so r ≡ 1 and no clip ever binds; use
``num_iterations > 1`` (several optimisation epochs per batch) to exercise the Band.
Written against TRL 1.16 (it calls the trainer's ``_get_per_token_logps_and_entropies``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from bandpo.divergences import resolve_divergence
from bandpo.integrations import require
from bandpo.loss import LOSS_AGG_MODES, aggregate_loss, band_policy_loss

_trl = require("trl", "trl", "bandpo.integrations.trl")
GRPOTrainer = _trl.GRPOTrainer

__all__ = ["BandGRPOTrainer", "BandLossConfig", "BandLossMixin"]

#: TRL loss_type -> the verl aggregation mode computing the same normalisation.
_AGG_FOR_LOSS_TYPE = {
    "grpo": "seq-mean-token-mean",
    "bnpo": "token-mean",
    "dr_grpo": "seq-mean-token-sum-norm",
    "dapo": "token-mean",
}

# Multimodal inputs the trainer forwards to its log-prob helper when present.
_FORWARD_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


@dataclass(frozen=True)
class BandLossConfig:
    """Settings of the Band-clipped loss inside a TRL trainer.

    Attributes:
        delta: Trust-region radius δ > 0 (BandPO's default 0.05).
        divergence: Registry name (``"kl"`` = BandKL, ``"tv"``, ``"chi2"``, ...).
        clip_ratio_c: Dual-clip constant c > 1 for negative advantages; ``None`` = off.
        loss_agg_mode: A verl aggregation name, or ``None`` to follow ``args.loss_type``.
        params: Divergence parameters, e.g. ``{"alpha": 0.5}``.
    """

    delta: float = 0.05
    divergence: str = "kl"
    clip_ratio_c: float | None = 3.0
    loss_agg_mode: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


class BandLossMixin:
    """Put in front of a ``trl.GRPOTrainer`` (subclass) to use the Band-clipped policy loss.

    Args:
        *args, **kwargs: Passed on to the trainer.
        band: A :class:`BandLossConfig` (default: BandKL, δ = 0.05, dual-clip c = 3).
    """

    def __init__(self, *args: Any, band: BandLossConfig | None = None, **kwargs: Any) -> None:
        band = BandLossConfig() if band is None else band
        if not isinstance(band, BandLossConfig):
            raise TypeError(f"band must be a BandLossConfig, got {type(band).__name__}")
        resolve_divergence(band.divergence, **band.params)  # unknown names fail here
        if band.loss_agg_mode is not None and band.loss_agg_mode not in LOSS_AGG_MODES:
            raise ValueError(f"band.loss_agg_mode must be one of {LOSS_AGG_MODES} or None")
        self.band = band
        super().__init__(*args, **kwargs)
        if band.loss_agg_mode is None and self.loss_type not in _AGG_FOR_LOSS_TYPE:
            raise ValueError(
                f"loss_type={self.loss_type!r} is not a clipped-ratio loss; the Band loss supports "
                f"{', '.join(_AGG_FOR_LOSS_TYPE)} (or set BandLossConfig.loss_agg_mode)"
            )
        if self.importance_sampling_level != "token":
            raise ValueError(
                "the Band loss clips per-token ratios: use importance_sampling_level='token'"
            )
        if getattr(self, "_entropy_bonus_enabled", False):
            raise ValueError(
                "the entropy bonus is not supported with the Band loss (set entropy_coef=0)"
            )

    # ------------------------------------------------------------------ helpers
    def _band_aggregation(
        self, inputs: dict[str, Any], batch_size: int, mode: str
    ) -> tuple[str, dict, float]:
        """(mode, global_batch_info, extra divisor) reproducing TRL's normalisation."""
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        if self.band.loss_agg_mode is not None:
            return self.band.loss_agg_mode, {}, accumulation
        loss_type = self.loss_type
        agg = _AGG_FOR_LOSS_TYPE[loss_type]
        if loss_type == "dr_grpo":
            info = {
                "global_batch_size": batch_size,
                "loss_scale_factor": self.max_completion_length,
            }
            return agg, info, accumulation
        if loss_type == "dapo":
            normalizer = (
                inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            )
            if mode == "train":
                normalizer = (
                    normalizer
                    * self.current_gradient_accumulation_steps
                    / self.args.steps_per_generation
                )
            return agg, {"batch_num_tokens": normalizer}, 1.0
        return agg, {}, accumulation

    def _band_global_mean(self, values: torch.Tensor, count: torch.Tensor) -> list[float]:
        """Token-weighted means across processes of several local means (one reduce)."""
        stacked = torch.cat([values * count, count.reshape(1)]).float()
        totals = self.accelerator.reduce(stacked, reduction="sum")
        return (totals[:-1] / totals[-1].clamp(min=1.0)).tolist()

    # ------------------------------------------------------------------ the loss
    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        mask = (
            completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        )

        helper = self._get_per_token_logps_and_entropies
        accepted = inspect.signature(helper).parameters
        extra = {k: inputs.get(k) for k in _FORWARD_KEYS if k in accepted}
        if "compute_aux_loss" in accepted:
            extra["compute_aux_loss"] = self.aux_loss_enabled
        out = helper(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True, **extra
        )
        per_token_logps, entropies = out[0], out[1]
        aux_loss = out[2] if len(out) > 2 else None

        advantages = inputs["advantages"]
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1)
        advantages = advantages.expand_as(per_token_logps)
        old = inputs.get("old_per_token_logps")
        old = per_token_logps.detach() if old is None else old

        # TRL's optional multiplicative factors on the policy term, folded into per-token weights.
        weights = None
        factors = []
        if self.off_policy_mask_threshold is not None:
            sampling = inputs.get("sampling_per_token_logps", old)
            factors.append(
                self.get_off_policy_mask(
                    advantages[:, :1],
                    per_token_logps,
                    sampling,
                    mask,
                    self.off_policy_mask_threshold,
                )
            )
        if self.top_entropy_quantile < 1.0:
            factors.append(
                self.get_high_entropy_mask(entropies, mask, 1 - self.top_entropy_quantile)
            )
        if self.use_vllm and self.vllm_importance_sampling_correction:
            factors.append(inputs["importance_sampling_ratio"])
        for factor in factors:
            factor = factor.to(per_token_logps.dtype).expand_as(per_token_logps)
            weights = factor if weights is None else weights * factor

        mode = "train" if self.model.training else "eval"
        agg, info, divisor = self._band_aggregation(inputs, per_token_logps.size(0), mode)
        band = self.band
        loss, metrics = band_policy_loss(
            old,
            per_token_logps,
            advantages,
            mask,
            delta=band.delta,
            divergence=band.divergence,
            loss_agg_mode=agg,
            clip_ratio_c=band.clip_ratio_c,
            weights=weights,
            global_batch_info=info,
            **band.params,
        )
        keep = mask.bool()
        if self.beta != 0.0:
            ref = inputs["ref_per_token_logps"]
            # k3 estimate of KL(π ‖ π_ref), as TRL adds it: exp(ref − lp) − (ref − lp) − 1.
            diff = torch.where(keep, ref - per_token_logps, torch.zeros_like(per_token_logps))
            per_token_kl = torch.exp(diff) - diff - 1
            if self.args.use_bias_correction_kl:
                per_token_kl = per_token_kl * torch.exp(per_token_logps - old).detach()
            loss = loss + self.beta * aggregate_loss(per_token_kl, keep, agg, **info)
        loss = loss / divisor
        if aux_loss is not None and self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * aux_loss / (
                self.current_gradient_accumulation_steps if mode == "train" else 1.0
            )

        with torch.no_grad():
            zero = torch.zeros((), dtype=entropies.dtype, device=entropies.device)
            n = keep.sum().float()
            local = {
                "entropy": torch.where(keep, entropies, zero).sum() / n.clamp(min=1.0),
                "clip_ratio/low_mean": metrics.clip_frac_lower,
                "clip_ratio/high_mean": metrics.clip_frac_upper,
                "clip_ratio/region_mean": metrics.clip_frac_lower + metrics.clip_frac_upper,
                "band/clip_frac": metrics.clip_frac,
                "band/dual_clip_frac": metrics.dual_clip_frac,
                "band/approx_kl": metrics.approx_kl,
                "band/width": metrics.band_width,
                "band/lower_mean": metrics.band_lower,
                "band/upper_mean": metrics.band_upper,
                "band/ratio_mean": metrics.ratio_mean,
            }
            if self.beta != 0.0:
                local["kl"] = torch.where(keep, per_token_kl, zero).sum() / n.clamp(min=1.0)
            values = torch.stack([v.float().reshape(()) for v in local.values()])
            for key, value in zip(local, self._band_global_mean(values, n), strict=True):
                self._metrics[mode][key].append(value)
            ratio_max = self.accelerator.gather(metrics.ratio_max.float().reshape(1)).max().item()
            self._metrics[mode]["band/ratio_max"].append(ratio_max)
        return loss


class BandGRPOTrainer(BandLossMixin, GRPOTrainer):
    """``trl.GRPOTrainer`` with the Band-clipped policy loss (see :class:`BandLossMixin`)."""
