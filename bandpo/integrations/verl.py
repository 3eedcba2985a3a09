"""verl adapter: the Band-clipped loss as a policy loss in verl's registry.

verl looks its actor loss up by name (``actor_rollout_ref.actor.policy_loss.loss_mode``) in the
registry filled by ``verl.trainer.ppo.core_algos.register_policy_loss(name)``, and calls it with
the keywords ``old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config,
rollout_is_weights``.  :func:`register_verl_policy_loss` registers :func:`make_verl_policy_loss`
under ``"bandpo"``::

    from bandpo.integrations.verl import register_verl_policy_loss
    register_verl_policy_loss(delta=0.05, divergence="kl")   # before the trainer starts
    # then: actor_rollout_ref.actor.policy_loss.loss_mode=bandpo

From the actor ``config`` the loss reads what verl's own PPO loss reads: ``clip_ratio_c`` (the
dual-clip constant, default 3) and ``global_batch_info`` (global token/sequence counts for
data-parallel aggregation).  ``clip_ratio``/``clip_ratio_low``/``clip_ratio_high`` are unused:
the Band interval replaces them.

Two return conventions exist in verl: ``(loss, metrics_dict)`` (current) and the earlier
``(loss, clipfrac, ppo_kl, clipfrac_lower)``.  ``returns="auto"`` follows whichever the installed
verl's built-in ``"vanilla"`` loss uses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch

from bandpo.divergences import resolve_divergence
from bandpo.integrations import require
from bandpo.loss import band_policy_loss

__all__ = ["VERL_LOSS_NAME", "make_verl_policy_loss", "register_verl_policy_loss"]

#: The name the loss is registered under by default.
VERL_LOSS_NAME = "bandpo"

Returns = Literal["auto", "metrics", "tuple"]


def _config_get(config: Any, key: str, default: Any) -> Any:
    if config is None:
        return default
    if isinstance(config, Mapping):
        return config.get(key, default)
    getter = getattr(config, "get", None)
    if callable(getter):
        return getter(key, default)
    return getattr(config, key, default)


def make_verl_policy_loss(
    *,
    delta: float = 0.05,
    divergence: Any = "kl",
    returns: Literal["metrics", "tuple"] = "metrics",
    metric_prefix: str = "actor/",
    **params: Any,
) -> Callable[..., Any]:
    """Build a verl policy-loss function computing :func:`bandpo.band_policy_loss`.

    Args:
        delta: Trust-region radius δ > 0.
        divergence: Registry name or Divergence (``"kl"`` = BandKL).
        returns: ``"metrics"`` → ``(loss, {name: float})`` (verl's current convention);
            ``"tuple"`` → ``(loss, clipfrac, ppo_kl, clipfrac_lower)`` as 0-d tensors (earlier
            verl).
        metric_prefix: Prefix of the metric names (verl's actor metrics use ``"actor/"``).
        **params: Divergence parameters (``alpha=``).

    Returns:
        ``fn(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean",
        config=None, rollout_is_weights=None, rollout_log_probs=None)``.  The metrics dict holds
        verl's ``pg_clipfrac``, ``ppo_kl``, ``pg_clipfrac_lower`` (the dual-clip fraction, as in
        verl) and bandpo's ``band/*`` diagnostics.
    """
    div = resolve_divergence(divergence, **params)  # fail at registration, not at step 1
    if returns not in ("metrics", "tuple"):
        raise ValueError(f"returns must be 'metrics' or 'tuple', got {returns!r}")

    def bandpo_policy_loss(
        old_log_prob: torch.Tensor,
        log_prob: torch.Tensor,
        advantages: torch.Tensor,
        response_mask: torch.Tensor,
        loss_agg_mode: str = "token-mean",
        config: Any = None,
        rollout_is_weights: torch.Tensor | None = None,
        rollout_log_probs: torch.Tensor | None = None,
    ) -> Any:
        """BandPO policy loss (bandpo.band_policy_loss) with verl's policy-loss signature."""
        del rollout_log_probs  # earlier verl passed it for its own truncated-IS; unused here
        global_batch_info = _config_get(config, "global_batch_info", None)
        loss, m = band_policy_loss(
            old_log_prob,
            log_prob,
            advantages,
            response_mask,
            delta=delta,
            divergence=div,
            loss_agg_mode=loss_agg_mode,
            clip_ratio_c=_config_get(config, "clip_ratio_c", 3.0),
            weights=rollout_is_weights,
            global_batch_info=dict(global_batch_info) if global_batch_info else None,
        )
        if returns == "tuple":
            return loss, m.clip_frac, m.approx_kl, m.dual_clip_frac
        values = m.as_dict()
        metrics = {
            f"{metric_prefix}pg_clipfrac": values["clip_frac"],
            f"{metric_prefix}ppo_kl": values["approx_kl"],
            f"{metric_prefix}pg_clipfrac_lower": values["dual_clip_frac"],
        }
        for key in (
            "clip_frac_upper",
            "clip_frac_lower",
            "approx_kl_k3",
            "band_width",
            "band_lower",
            "band_upper",
            "ratio_mean",
            "ratio_max",
        ):
            metrics[f"{metric_prefix}band/{key}"] = values[key]
        return loss, metrics

    bandpo_policy_loss.__qualname__ = bandpo_policy_loss.__name__
    return bandpo_policy_loss


def _installed_convention(core_algos: Any) -> Literal["metrics", "tuple"]:
    """Which return convention the installed verl's own ``"vanilla"`` loss follows."""
    registry = getattr(core_algos, "POLICY_LOSS_REGISTRY", None)
    vanilla = registry.get("vanilla") if isinstance(registry, Mapping) else None
    if vanilla is None:
        return "metrics"
    annotation = inspect.signature(vanilla).return_annotation
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return "metrics" if "dict" in text else "tuple"


def register_verl_policy_loss(
    name: str = VERL_LOSS_NAME,
    *,
    delta: float = 0.05,
    divergence: Any = "kl",
    returns: Returns = "auto",
    registry: Any = None,
    **params: Any,
) -> Callable[..., Any]:
    """Register the Band-clipped loss in verl's policy-loss registry.

    Args:
        name: Registry name; select it with ``actor_rollout_ref.actor.policy_loss.loss_mode``.
        delta: Trust-region radius δ > 0.
        divergence: Registry name or Divergence.
        returns: ``"auto"`` (follow the installed verl), ``"metrics"`` or ``"tuple"``.
        registry: The module (or any object) providing ``register_policy_loss(name)``; default
            ``verl.trainer.ppo.core_algos``.  Tests pass a stand-in here.
        **params: Divergence parameters.

    Returns:
        The registered function.

    Raises:
        ImportError: verl is not installed (the message names the ``verl`` extra).
    """
    if registry is None:
        registry = require("verl.trainer.ppo.core_algos", "verl", "bandpo.integrations.verl")
    register = getattr(registry, "register_policy_loss", None)
    if not callable(register):
        raise TypeError("registry must provide register_policy_loss(name) (verl's core_algos API)")
    if returns == "auto":
        returns = _installed_convention(registry)
    fn = make_verl_policy_loss(delta=delta, divergence=divergence, returns=returns, **params)
    return register(name)(fn)
