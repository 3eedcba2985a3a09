"""Entropy collapse on a synthetic softmax bandit shaped like LLM decoding.

The setting (BandPO's motivating failure, THEORY.md §1): a fixed ratio clip lets a token with
old probability p gain at most ε·p per batch, so correct tokens that sit in the tail of the
policy are clipped early while the head keeps its mass, and the entropy collapses onto whatever
correct token was already likely.  The experiment measures this on a problem where every
quantity is exact:

* ``n_prompts`` independent prompts, each a softmax policy π = softmax(θ) over a vocabulary of
  ``vocab_size`` tokens; θ are the trained parameters (tabular logits).
* Initial policy: ``n_rewarded`` correct tokens with probabilities log-spaced from
  ``p_rewarded_max`` (0.08) down to ``p_rewarded_min`` (1e-3), jittered per prompt; the other
  tokens share the remaining mass in a Zipf law (exponent ``zipf_exponent``), so the most likely
  token is wrong and the correct ones are in the tail.
* Each step: sample a group of G = ``group_size`` tokens per prompt from π_old, reward 1 for a
  correct token and 0 otherwise, GRPO advantages A = (R − mean_group R)/(std_group R + 1e-6),
  then ``epochs`` full-batch SGD steps on the clipped surrogate (so the ratio moves away from 1
  and the clip binds), with π_old fixed.
* Every method runs through the same loss, :func:`bandpo.loss.clipped_policy_loss`; only the
  ratio interval [r₋(p), r₊(p)] differs: PPO clip (0.2), Clip-Higher (0.2/0.28), DCPO's
  p-dependent interval (only its clip rule), and the Band of ``kl``, ``tv`` and ``chi2`` at δ.
* All methods × seeds × prompts are one batched tensor.  Each (method, seed) run has its own
  parameters; the loss is a sum of per-run losses, so runs do not interact.  Seed s of every
  method starts from the same initial policy and samples from the same uniforms (common random
  numbers), so a method's curves do not depend on which other methods run beside it.

Measured per step, averaged over prompts: the entropy of π (nats), the expected reward
Σ_correct π, the probability mass of the correct tokens that started in the tail
(p₀ < ``tail_threshold``), which shows whether rare correct tokens survive, and the entropy of π
restricted to the correct tokens (renormalised), which measures how many distinct correct
answers the policy keeps (ln n_rewarded when it spreads evenly over them, 0 when it has
collapsed onto one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bandpo.loss import clipped_policy_loss

__all__ = [
    "DEFAULT_METHODS",
    "EntropyConfig",
    "EntropyResult",
    "Method",
    "MethodSummary",
    "make_method",
    "plot_entropy_experiment",
    "run_entropy_experiment",
]

#: The methods compared by default (names accepted by :func:`make_method`).
DEFAULT_METHODS: tuple[str, ...] = ("ppo", "clip-higher", "dcpo", "band-kl", "band-tv", "band-chi2")

BoundsFn = Callable[[torch.Tensor], Any]


@dataclass(frozen=True)
class Method:
    """One clipping rule: a name, a plot label and the interval as a function of log p.

    Attributes:
        name: Short name (``"ppo"``, ``"band-kl"``, ...).
        label: Legend label (matplotlib mathtext allowed).
        bounds: ``bounds(old_log_prob) -> (lower, upper)`` tensors of the input's shape.
        family: ``"baseline"`` or ``"band"`` (styling only).
        divergence: The divergence name of a Band method, else ``None``.
    """

    name: str
    label: str
    bounds: BoundsFn = field(repr=False)
    family: str = "baseline"
    divergence: str | None = None


def make_method(name: str, delta: float = 0.05) -> Method:
    """Build a :class:`Method` by name.

    Args:
        name: ``"ppo"`` (ε = 0.2), ``"clip-higher"`` (0.2/0.28), ``"dcpo"`` (ε₋ = 0.16, ε₊ = 0.2,
            r_max = 10) or ``"band-<divergence>"`` for any registered divergence (``"band-kl"``,
            ``"band-tv"``, ``"band-chi2"``, ...).
        delta: δ of the Band methods.

    Raises:
        ValueError: an unknown name.
    """
    from bandpo.solvers import baselines

    if name == "ppo":
        return Method(
            name, r"PPO clip ($\epsilon=0.2$)", lambda lp: baselines.ppo_clip(lp, eps=0.2)
        )
    if name == "clip-higher":
        return Method(
            name,
            r"Clip-Higher ($0.2/0.28$)",
            lambda lp: baselines.clip_higher(lp, eps_low=0.2, eps_high=0.28),
        )
    if name == "dcpo":
        return Method(name, "DCPO", lambda lp: baselines.dcpo(lp))
    if name.startswith("band-"):
        from bandpo.divergences import get_divergence
        from bandpo.solvers.band import band_bounds

        div = get_divergence(name.removeprefix("band-"))
        label = f"Band-{div.name.upper() if len(div.name) <= 3 else div.name} ($\\delta={delta:g}$)"
        if div.name == "chi2":
            label = rf"Band-$\chi^2$ ($\delta={delta:g}$)"
        return Method(
            name,
            label,
            lambda lp: band_bounds(lp, delta, div, validate=False),
            family="band",
            divergence=div.name,
        )
    raise ValueError(f"unknown method {name!r}; use ppo, clip-higher, dcpo or band-<divergence>")


@dataclass(frozen=True)
class EntropyConfig:
    """Parameters of the bandit experiment (defaults: the CLI's full run).

    Attributes:
        vocab_size: Tokens per prompt (≥ n_rewarded + 2; the full run uses 1,000+).
        n_prompts: Independent prompts (softmax policies) per run.
        n_rewarded: Correct tokens per prompt.
        p_rewarded_max, p_rewarded_min: Range of their initial probabilities (log-spaced).
        jitter: Half-width of the per-prompt jitter of log p of the correct tokens (nats).
        zipf_exponent: Exponent of the Zipf law of the incorrect tokens.
        group_size: G, samples per prompt per step (GRPO group).
        epochs: SGD steps on each batch (π_old fixed within a batch).
        steps: Batches (policy-improvement steps).
        lr: SGD learning rate on the logits.
        delta: δ of the Band methods.
        clip_ratio_c: Dual-clip constant (None = off).
        tail_threshold: Correct tokens with p₀ below it form the "tail" mass.
        seeds: Random seeds; one run per (method, seed).
        methods: Method names (see :func:`make_method`).
        record_every: Record curves every this many steps (and at the end).
        num_threads: torch intra-op threads during the run (restored afterwards); ``None``
            keeps the caller's setting.  The default 1 is fastest here: the tensors are small,
            and on a shared 2-core machine multi-threaded kernels spin against other processes
            (measured 2.9 s with 1 thread against 94.6 s with 2 on a 15-step run under load).
    """

    vocab_size: int = 1024
    n_prompts: int = 8
    n_rewarded: int = 6
    p_rewarded_max: float = 0.08
    p_rewarded_min: float = 1e-3
    jitter: float = 0.25
    zipf_exponent: float = 1.0
    group_size: int = 16
    epochs: int = 8
    steps: int = 150
    lr: float = 0.5
    delta: float = 0.05
    clip_ratio_c: float | None = 3.0
    tail_threshold: float = 0.01
    seeds: tuple[int, ...] = tuple(range(16))
    methods: tuple[str, ...] = DEFAULT_METHODS
    record_every: int = 1
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        ints = {
            "vocab_size": self.vocab_size,
            "n_prompts": self.n_prompts,
            "n_rewarded": self.n_rewarded,
            "group_size": self.group_size,
            "epochs": self.epochs,
            "steps": self.steps,
            "record_every": self.record_every,
        }
        for key, value in ints.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 (group-relative advantages), got {self.group_size}"
            )
        if self.vocab_size < self.n_rewarded + 2:
            raise ValueError(f"vocab_size must be >= n_rewarded + 2, got {self.vocab_size}")
        if not 0 < self.p_rewarded_min <= self.p_rewarded_max:
            raise ValueError("need 0 < p_rewarded_min <= p_rewarded_max")
        if self.n_rewarded * self.p_rewarded_max * math.exp(self.jitter) >= 1:
            raise ValueError("the correct tokens' initial mass must stay below 1")
        if not (self.lr > 0 and self.delta > 0):
            raise ValueError("lr and delta must be positive")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        if not self.methods:
            raise ValueError("methods must not be empty")


@dataclass(frozen=True)
class MethodSummary:
    """Final values of one method across seeds (mean, standard deviation, 95 % t-interval).

    Attributes:
        method, label: The method.
        entropy_mean, entropy_std, entropy_ci95: Final entropy (nats).
        entropy_vs_reference_mean, entropy_vs_reference_ci95: Paired (same-seed) difference of
            the final entropy against ``reference`` and its 95 % t-interval.
        reference: The reference method of that difference.
        reward_mean, reward_std, reward_ci95: Final expected reward.
        tail_mass_mean, tail_mass_std: Final mass on the correct tokens that started in the tail.
        correct_entropy_mean, correct_entropy_std: Final entropy among the correct tokens.
        entropy_at_reward_mean, entropy_at_reward_std: Entropy at the first recorded step where
            the expected reward reaches ``reward_level`` (the last step if it never does): the
            collapse compared at equal progress rather than at equal step.
        reward_level: That level.
        clip_frac_mean: Fraction of sampled tokens whose clip bound, averaged over the run.
        n_seeds: Number of seeds.
    """

    method: str
    label: str
    entropy_mean: float
    entropy_std: float
    entropy_ci95: float
    entropy_vs_reference_mean: float
    entropy_vs_reference_ci95: float
    reference: str
    reward_mean: float
    reward_std: float
    reward_ci95: float
    tail_mass_mean: float
    tail_mass_std: float
    correct_entropy_mean: float
    correct_entropy_std: float
    entropy_at_reward_mean: float
    entropy_at_reward_std: float
    reward_level: float
    clip_frac_mean: float
    n_seeds: int


def _t975(n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1)) if n > 1 else float("nan")


@dataclass(frozen=True)
class EntropyResult:
    """Curves of a run: arrays of shape (methods, seeds, records).

    Attributes:
        config: The configuration.
        methods, labels, families: Method names, legend labels, ``"band"``/``"baseline"``.
        steps: The recorded step indices (0 = the initial policy).
        entropy: Entropy of π in nats, mean over prompts.
        reward: Expected reward Σ_correct π, mean over prompts.
        tail_mass: Mass of the correct tokens with p₀ < tail_threshold, mean over prompts.
        correct_entropy: Entropy of π restricted to the correct tokens (renormalised), nats,
            mean over prompts.
        clip_frac: Fraction of sampled tokens whose clip bound (upper or lower end), averaged
            over the epochs of each step, shape (methods, seeds, steps).
        initial_entropy: Entropy of the initial policy (nats, mean over prompts and seeds).
        seconds: Wall time of the run.
    """

    config: EntropyConfig
    methods: tuple[str, ...]
    labels: tuple[str, ...]
    families: tuple[str, ...]
    steps: np.ndarray
    entropy: np.ndarray
    reward: np.ndarray
    tail_mass: np.ndarray
    correct_entropy: np.ndarray
    clip_frac: np.ndarray
    initial_entropy: float
    seconds: float

    def summary(self, reward_level: float = 0.9, reference: str = "ppo") -> list[MethodSummary]:
        """Final entropy and reward per method, with spread over seeds.

        Args:
            reward_level: Level of :attr:`MethodSummary.entropy_at_reward_mean`.
            reference: Method against which the paired entropy difference is computed (seed s
                of every method shares its initial policy and its random numbers, so the
                per-seed difference removes most of the seed-to-seed spread); the first
                method when ``reference`` did not run.
        """
        out = []
        n = len(self.config.seeds)
        t = _t975(n)
        ref = self.methods.index(reference) if reference in self.methods else 0
        for i, name in enumerate(self.methods):
            ent, rew, tail = self.entropy[i, :, -1], self.reward[i, :, -1], self.tail_mass[i, :, -1]
            cent = self.correct_entropy[i, :, -1]
            reached = self.reward[i] >= reward_level  # (seeds, records)
            first = np.where(reached.any(axis=1), reached.argmax(axis=1), reached.shape[1] - 1)
            ent_at = self.entropy[i, np.arange(n), first]
            sd = lambda x: float(np.std(x, ddof=1)) if n > 1 else 0.0  # noqa: E731
            diff = ent - self.entropy[ref, :, -1]
            out.append(
                MethodSummary(
                    method=name,
                    label=self.labels[i],
                    entropy_mean=float(ent.mean()),
                    entropy_std=sd(ent),
                    entropy_ci95=t * sd(ent) / math.sqrt(n) if n > 1 else 0.0,
                    entropy_vs_reference_mean=float(diff.mean()),
                    entropy_vs_reference_ci95=t * sd(diff) / math.sqrt(n) if n > 1 else 0.0,
                    reference=self.methods[ref],
                    reward_mean=float(rew.mean()),
                    reward_std=sd(rew),
                    reward_ci95=t * sd(rew) / math.sqrt(n) if n > 1 else 0.0,
                    tail_mass_mean=float(tail.mean()),
                    tail_mass_std=sd(tail),
                    correct_entropy_mean=float(cent.mean()),
                    correct_entropy_std=sd(cent),
                    entropy_at_reward_mean=float(ent_at.mean()),
                    entropy_at_reward_std=sd(ent_at),
                    reward_level=reward_level,
                    clip_frac_mean=float(self.clip_frac[i].mean()),
                    n_seeds=n,
                )
            )
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """The configuration, the summary table and the curves as JSON (written if ``path``)."""
        payload = {
            "experiment": "entropy",
            "config": asdict(self.config),
            "seconds": self.seconds,
            "initial_entropy": self.initial_entropy,
            "summary": [asdict(s) for s in self.summary()],
            "steps": self.steps.tolist(),
            "curves": {
                name: {
                    "entropy": self.entropy[i].tolist(),
                    "reward": self.reward[i].tolist(),
                    "tail_mass": self.tail_mass[i].tolist(),
                    "correct_entropy": self.correct_entropy[i].tolist(),
                    "clip_frac": self.clip_frac[i].tolist(),
                }
                for i, name in enumerate(self.methods)
            },
        }
        text = json.dumps(payload, indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text


# ----------------------------------------------------------------------------- the bandit


def _initial_logits(cfg: EntropyConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial log-probabilities (n_prompts, V) and the correct-token mask, for one seed."""
    V, K, R = cfg.vocab_size, cfg.n_prompts, cfg.n_rewarded
    log_pr = torch.linspace(
        math.log(cfg.p_rewarded_max), math.log(cfg.p_rewarded_min), R, dtype=torch.float64
    )
    jitter = (2 * torch.rand(K, R, generator=gen, dtype=torch.float64) - 1) * cfg.jitter
    log_pr = torch.clamp(
        log_pr + jitter, math.log(cfg.p_rewarded_min), math.log(cfg.p_rewarded_max)
    )
    ranks = torch.arange(1, V - R + 1, dtype=torch.float64)
    zipf = torch.log_softmax(-cfg.zipf_exponent * torch.log(ranks), dim=0)  # incorrect tokens
    rest = torch.log1p(-log_pr.exp().sum(dim=1, keepdim=True))  # log of their total mass
    logp = torch.cat([log_pr, zipf.expand(K, -1) + rest], dim=1)
    correct = torch.zeros(K, V, dtype=torch.bool)
    correct[:, :R] = True
    # A random permutation per prompt: token ids carry no information.
    perm = torch.argsort(torch.rand(K, V, generator=gen), dim=1)
    return torch.gather(logp, 1, perm), torch.gather(correct, 1, perm)


def run_entropy_experiment(
    config: EntropyConfig | None = None,
    *,
    methods: Sequence[Method] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EntropyResult:
    """Run every (method, seed) pair of the bandit experiment, batched in one tensor.

    Args:
        config: An :class:`EntropyConfig` (default: the full run).
        methods: Explicit :class:`Method` objects; default: ``make_method(name, config.delta)``
            for each name in ``config.methods``.
        progress: Called as ``progress(step, total)`` after each step.

    Returns:
        An :class:`EntropyResult`.

    Notes:
        Runs in float64 on CPU (the tail probabilities reach 1e-6 and below).  Seed s of every
        method starts from the same initial policy; samples are drawn per run.
    """
    cfg = EntropyConfig() if config is None else config
    previous = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _run(cfg, methods, progress)
    finally:
        torch.set_num_threads(previous)


def _run(
    cfg: EntropyConfig,
    methods: Sequence[Method] | None,
    progress: Callable[[int, int], None] | None,
) -> EntropyResult:
    import time

    meths = (
        tuple(make_method(m, cfg.delta) for m in cfg.methods) if methods is None else tuple(methods)
    )
    M, S, K, V, G = len(meths), len(cfg.seeds), cfg.n_prompts, cfg.vocab_size, cfg.group_size
    dtype = torch.float64
    start = time.perf_counter()

    init, correct = [], []
    for seed in cfg.seeds:
        lp, c = _initial_logits(cfg, torch.Generator().manual_seed(int(seed)))
        init.append(lp)
        correct.append(c)
    init_lp = torch.stack(init)  # (S, K, V)
    correct_t = torch.stack(correct)  # (S, K, V)
    tail0 = correct_t & (init_lp < math.log(cfg.tail_threshold))
    theta = init_lp.unsqueeze(0).expand(M, S, K, V).clone().requires_grad_(True)
    # Common random numbers: run (method, seed s) samples by inverse CDF from uniforms drawn
    # from seed s's own stream, shared by every method.  A method's curves therefore do not
    # depend on which other methods run beside it, and method differences are not sampling noise
    # of independent streams.
    samplers = [torch.Generator().manual_seed(int(seed) * 7919 + 17) for seed in cfg.seeds]

    records = sorted(set(range(0, cfg.steps + 1, cfg.record_every)) | {cfg.steps})
    ent_c, rew_c, tail_c, cent_c = [], [], [], []
    clip = torch.zeros(M, S, cfg.steps, dtype=dtype)

    def record() -> None:
        with torch.no_grad():
            logp = torch.log_softmax(theta, dim=-1)
            p = logp.exp()
            ent = -(torch.where(p > 0, p * logp, torch.zeros((), dtype=dtype))).sum(-1)
            ent_c.append(ent.mean(-1))
            rew_c.append(torch.where(correct_t, p, 0.0).sum(-1).mean(-1))
            tail_c.append(torch.where(tail0, p, 0.0).sum(-1).mean(-1))
            # Entropy among the correct tokens: H(q), q = π·1_correct / Σ_correct π.
            lq = torch.where(correct_t, logp, -math.inf)
            lq = lq - torch.logsumexp(lq, dim=-1, keepdim=True)
            q = lq.exp()
            cent_c.append(-(torch.where(q > 0, q * lq, 0.0)).sum(-1).mean(-1))

    record()
    # The per-run loss is the sum over prompts of the per-prompt token mean: token-mean over
    # all M·S·K·G samples times M·S·K.  Runs share no parameters, so their gradients separate.
    scale = M * S * K
    for step in range(1, cfg.steps + 1):
        with torch.no_grad():
            old_logp_all = torch.log_softmax(theta, dim=-1)
            u = torch.stack([torch.rand(K, G, generator=g, dtype=dtype) for g in samplers])
            cdf = torch.cumsum(old_logp_all.exp(), dim=-1)
            u = u.expand(M, S, K, G) * cdf[..., -1:]  # the CDF ends at 1 up to rounding
            idx = torch.searchsorted(cdf, u.contiguous(), right=True).clamp(max=V - 1)
            old_lp = torch.gather(old_logp_all, -1, idx)
            reward = torch.gather(correct_t.expand(M, S, K, V), -1, idx).to(dtype)
            mean = reward.mean(-1, keepdim=True)
            std = reward.std(-1, keepdim=True)
            adv = (reward - mean) / (std + 1e-6)
            lower = torch.empty_like(old_lp)
            upper = torch.empty_like(old_lp)
            for i, m in enumerate(meths):
                lo, hi = m.bounds(old_lp[i])
                lower[i], upper[i] = lo, hi
        mask = torch.ones_like(old_lp, dtype=torch.bool)
        for _ in range(cfg.epochs):
            logp = torch.gather(torch.log_softmax(theta, dim=-1), -1, idx)
            loss, _ = clipped_policy_loss(
                old_lp.reshape(-1, G),
                logp.reshape(-1, G),
                adv.reshape(-1, G),
                mask.reshape(-1, G),
                lower.reshape(-1, G),
                upper.reshape(-1, G),
                loss_agg_mode="token-mean",
                clip_ratio_c=cfg.clip_ratio_c,
                validate=False,
            )
            (grad,) = torch.autograd.grad(loss * scale, theta)
            with torch.no_grad():
                r = torch.exp(logp.detach() - old_lp)
                binds = ((adv > 0) & (r > upper)) | ((adv < 0) & (r < lower))
                clip[:, :, step - 1] += binds.to(dtype).mean(dim=(-1, -2)) / cfg.epochs
                theta -= cfg.lr * grad
        if step in records:
            record()
        if progress is not None:
            progress(step, cfg.steps)

    def stack(curves: list[torch.Tensor]) -> np.ndarray:
        return torch.stack(curves, dim=-1).numpy()

    return EntropyResult(
        config=cfg,
        methods=tuple(m.name for m in meths),
        labels=tuple(m.label for m in meths),
        families=tuple(m.family for m in meths),
        steps=np.asarray(records),
        entropy=stack(ent_c),
        reward=stack(rew_c),
        tail_mass=stack(tail_c),
        correct_entropy=stack(cent_c),
        clip_frac=clip.numpy(),
        initial_entropy=float(ent_c[0][0].mean()),
        seconds=time.perf_counter() - start,
    )


# ----------------------------------------------------------------------------- the figure


def _method_style(name: str, family: str, divergence: str | None, index: int) -> dict[str, Any]:
    from bandpo.visualize.style import BASELINE_STYLE, OKABE_ITO, divergence_style

    key = {"ppo": "ppo_clip", "clip-higher": "clip_higher", "dcpo": "dcpo"}.get(name)
    if key is not None:
        style = dict(BASELINE_STYLE[key])
        style.pop("label", None)
        return style
    if family == "band" and divergence is not None:
        from bandpo.divergences import get_divergence

        style = dict(divergence_style(get_divergence(divergence)))
        style.pop("label", None)
        style["linestyle"] = "-"
        style["lw"] = 2.0
        return style
    return {"color": OKABE_ITO[index % len(OKABE_ITO)], "linestyle": "-"}


def plot_entropy_experiment(result: EntropyResult, *, band_alpha: float = 0.18):
    """Four panels against step: entropy, expected reward, tail mass and the entropy among the
    correct tokens; each curve is the mean over seeds with its 95 % t-interval shaded (clipped
    to the quantity's range).

    Returns:
        The matplotlib Figure (save it with :func:`bandpo.visualize.style.save_figure`).
    """
    import matplotlib.pyplot as plt

    from bandpo.visualize.style import REFERENCE_COLOR, figure_style

    cfg = result.config
    n = len(cfg.seeds)
    t = _t975(n) if n > 1 else 0.0
    panels = (
        ("(a) entropy of the policy", "entropy of $\\pi$ (nats)", result.entropy, "log", None),
        (
            "(b) expected reward (= probability mass on the correct tokens)",
            "expected reward",
            result.reward,
            "linear",
            1.0,
        ),
        (
            f"(c) mass on correct tokens that started rare ($p_0<{cfg.tail_threshold:g}$)",
            "probability mass",
            result.tail_mass,
            "log",
            1.0,
        ),
        (
            "(d) entropy among the correct tokens",
            "$H(\\pi\\,|\\,\\mathrm{correct})$ (nats)",
            result.correct_entropy,
            "linear",
            None,
        ),
    )
    with figure_style():
        fig, axes = plt.subplots(2, 2, figsize=(10.5, 7.2), layout="constrained")
        for ax, (title, ylabel, data, yscale, cap) in zip(axes.flat, panels, strict=True):
            for i, name in enumerate(result.methods):
                style = _method_style(name, result.families[i], _band_div(name), i)
                mean = data[i].mean(axis=0)
                half = t * data[i].std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else 0 * mean
                ax.plot(result.steps, mean, label=result.labels[i], **style)
                # The interval is clipped to the quantity's range (masses in [0, 1], entropies
                # >= 0; on the log axis at mean/10), since few seeds can give a t-interval
                # that crosses a bound the quantity cannot cross.
                lo = np.maximum(mean - half, mean / 10 if yscale == "log" else 0.0)
                hi = mean + half if cap is None else np.minimum(mean + half, cap)
                ax.fill_between(result.steps, lo, hi, color=style["color"], alpha=band_alpha, lw=0)
            ax.set_title(title, loc="left")
            ax.set_xlabel("step (batch; logarithmic after 1)")
            ax.set_ylabel(ylabel)
            ax.set_yscale(yscale)
            # Most of the change happens in the first tens of steps: log-scale the step axis,
            # linear between 0 (the initial policy) and 1.
            ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
            ax.set_xlim(0, result.steps[-1])
        axes[0, 1].set_ylim(0, 1.02)
        ln_r = math.log(cfg.n_rewarded)
        axes[1, 1].axhline(ln_r, color=REFERENCE_COLOR, lw=0.8, ls=":")
        axes[1, 1].annotate(
            f"ln {cfg.n_rewarded} (all correct tokens equally likely)",
            (result.steps[-1], ln_r),
            xytext=(-4, -10),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color=REFERENCE_COLOR,
        )
        axes[1, 1].set_ylim(0, ln_r * 1.08)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
        fig.suptitle(
            f"Softmax bandit, V={cfg.vocab_size}: {cfg.n_prompts} prompts, "
            f"{cfg.n_rewarded} correct tokens with $p_0\\in[{cfg.p_rewarded_min:g}, "
            f"{cfg.p_rewarded_max:g}]$, G={cfg.group_size}, {cfg.epochs} SGD epochs per batch, "
            f"{n} seeds (mean, 95% interval)",
            fontsize=10,
        )
    return fig


def _band_div(name: str) -> str | None:
    return name.removeprefix("band-") if name.startswith("band-") else None
