"""Closed-form Band ends in numerically stable torch form (the fast path of ``band_bounds``).

The theory layer (``bandpo.theory.derive``) proves closed-form roots of g_f(p, r) = δ for the
generators below.  Written as printed they cancel catastrophically near the saturation threshold
of the lower end (r₋ = 1 − √(…) → 0), so each is rewritten here (derivations in the comments) so
that every subtraction left is either of exact numbers or of the form

    p − p*(δ) = p*·expm1(log p − log p*),

where p*(δ) is the lower end's saturation threshold and log p* is computed once per call in
double-double precision (for a Python-number δ; a tensor δ uses float64, and loses that last
digit guarantee within ~1e-13 relative of the threshold).  log p is exact input, and
log p − log p* is exact by Sterbenz's lemma where it matters, so r₋ keeps full relative accuracy
right down to saturation.

Which divergence uses which form is decided from the registry, not by name: a divergence whose
SymPy generator is a positive constant c times one of the templates (``tv``, ``chi2``,
``neyman``, ``hellinger``, ``lecam``) has Band_f(p, δ) = Band_template(p, δ/c) (so ``alpha`` at
α = 2, −1 and ½ are χ²/2, Neyman/2 and 2·Hellinger).  tests/test_band_closed.py ties each form
to ``derive(name).lower/.upper``.

Notation: q = 1 − p = −expm1(log p), k = q/p = expm1(−log p), 1/p = exp(−log p).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import mpmath
import sympy as sp
import torch

from bandpo.divergences import Divergence, U, get_divergence

__all__ = [
    "CLOSED_FAMILIES",
    "ClosedMatch",
    "closed_band",
    "closed_band_fast",
    "closed_match",
    "threshold_dd",
]

#: Templates with a stable torch closed form here (their SymPy forms come from the registry).
CLOSED_FAMILIES = ("tv", "chi2", "neyman", "hellinger", "lecam")


@dataclass(frozen=True)
class ClosedMatch:
    """f = scale · f_family, so Band_f(p, δ) = Band_family(p, δ/scale)."""

    family: str
    scale: float


@lru_cache(maxsize=256)
def _match_cached(name: str, params: tuple) -> ClosedMatch | None:
    div = get_divergence(name, **dict(params))
    for fam in CLOSED_FAMILIES:
        tmpl = get_divergence(fam).f
        # cheap numeric screen before asking SymPy: f/f_T must be the same at two points
        a = (div.f / tmpl).subs(U, sp.Rational(3, 7)).evalf(30)
        b = (div.f / tmpl).subs(U, sp.Rational(11, 3)).evalf(30)
        if not (a.is_finite and b.is_finite) or abs(a - b) > 1e-20 * (abs(a) + 1):
            continue
        ratio = sp.simplify(div.f / tmpl)
        if not ratio.free_symbols and ratio.is_positive:
            return ClosedMatch(fam, float(ratio))
    return None


def closed_match(div: Divergence) -> ClosedMatch | None:
    """The closed-form family of ``div`` and its scale, or None (then the root finder runs)."""
    return _match_cached(div.name, tuple(sorted(div.params.items())))


# --------------------------------------------------------------------- per-call δ precomputation


def _log_threshold_dd(fam: str, delta: float) -> tuple[float, float]:
    """log p*(δ) of the family's lower-end threshold as a double-double (hi, lo), δ a float."""
    with mpmath.workdps(40):
        d = mpmath.mpf(delta)
        if fam == "tv":  # r₋ = 1 − δ/p = 0 at p = δ
            v = mpmath.log(d)
        elif fam == "chi2":  # δ(1 − p)/p = 1 at p = δ/(1 + δ)
            v = mpmath.log(d) - mpmath.log1p(d)
        elif fam == "lecam":  # 2p/(2 − p) = δ at p = 2δ/(2 + δ)
            v = mpmath.log(2 * d) - mpmath.log(2 + d)
        elif fam == "hellinger":  # p* = δ(4 − δ)/4 (δ < 2)
            v = mpmath.log(d) + mpmath.log1p(-d / 4) if d < 4 else mpmath.mpf("-inf")
        else:  # neyman: the ends never saturate
            return 0.0, 0.0
        hi = float(v)
        return hi, float(v - hi)


def _log_threshold_t(fam: str, delta: torch.Tensor) -> torch.Tensor:
    """The same threshold in float64 for a tensor δ."""
    if fam == "tv":
        return torch.log(delta)
    if fam == "chi2":
        return torch.log(delta) - torch.log1p(delta)
    if fam == "lecam":
        return torch.log(2 * delta) - torch.log(2 + delta)
    if fam == "hellinger":
        return torch.log(delta) + torch.log1p(-delta / 4)
    return torch.zeros_like(delta)


# ---------------------------------------------------------------------------------- the forms


def _tv(lp, p, q, inv_p, k, d, t):
    # r± = 1 ± δ/p.  Upper saturates (= 1/p) when δ ≥ 1 − p; 1 + δ/p is continuous into 1/p.
    upper = torch.where(q <= d, inv_p, 1 + d * inv_p)
    # r₋ = 1 − δ/p = −expm1(log δ − log p) = −expm1(−t), t = log p − log p*; saturated for t ≤ 0
    lower = -torch.expm1(-t)
    return lower, upper, t <= 0


def _chi2(lp, p, q, inv_p, k, d, t):
    # r± = 1 ± sqrt(δ(1 − p)/p) = 1 ± sqrt(δk)
    s = torch.sqrt(d * k)
    upper = torch.where(k <= d, inv_p, 1 + s)  # g(p, 1/p) = (1 − p)/p
    # 1 − sqrt(δk) = (1 − δk)/(1 + sqrt(δk)) and 1 − δk = ((1 + δ)p − δ)/p = (δ/p)·expm1(t)
    lower = d * inv_p * torch.expm1(t) / (1 + s)
    return lower, upper, t <= 0


def _neyman(lp, p, q, inv_p, k, d, t):
    # derive: r₊ = (δ + 2p + D)/(2p(1 + δ)), r₋ = 1 − (δ(2p − 1) + D)/(2p(1 + δ)),
    # D = sqrt(δ(δ + 4pq)).  r₋ = (2p + δ − D)/(2p(1 + δ)) and (2p + δ)² − D² = 4p²(1 + δ), so
    # r₋ = 2p/(2p + δ + D): no cancellation.  Neither end saturates (f(0⁺) = +∞).
    dd = torch.sqrt(d * (d + 4 * p * q))
    upper = torch.minimum((d + 2 * p + dd) * inv_p / (2 * (1 + d)), inv_p)
    lower = 2 * p / (2 * p + d + dd)
    return lower, upper, torch.zeros_like(lower, dtype=torch.bool)


def _lecam(lp, p, q, inv_p, k, d, t):
    # derive: r₊ = 1 + (δ(1 − 2p) + E)/(p(2 + δ)), E = sqrt(δ(δ + 8pq)).  For p > ½ the numerator
    # cancels; E² − δ²(q − p)² = 4pqδ(2 + δ) gives δ(q − p) + E = 4pqδ(2 + δ)/(E + δ(p − q)).
    e = torch.sqrt(d * (d + 8 * p * q))
    qp = q - p
    num = torch.where(qp >= 0, d * qp + e, 4 * p * q * d * (2 + d) / (e - d * qp))
    # saturated where g(p, 1/p) = 2q/(1 + p) ≤ δ
    upper = torch.where(2 * q <= d * (1 + p), inv_p, 1 + num * inv_p / (2 + d))
    # r₋ = (2p + δq − E)/(p(2 + δ)); (2p + δq)² − E² = p(2 + δ)²(p − p*), p* = 2δ/(2 + δ), so
    # r₋ = (2 + δ)(p − p*)/(2p + δq + E) = 2δ·expm1(t)/(2p + δq + E).
    lower = 2 * d * torch.expm1(t) / (2 * p + d * q + e)
    return lower, upper, t <= 0


def _hellinger(lp, p, q, inv_p, k, d, t):
    # derive: r± = (1 − δ/2 ± ½·sqrt(δ(4 − δ)k))², valid for δ < 2 (c = 1 − δ/2 > 0); for δ ≥ 2
    # both ends saturate (H² ≤ 2).
    c = 1 - d / 2
    h = 0.5 * torch.sqrt(d * (4 - d) * k)
    # saturated where g(p, 1/p) = 2 − 2√p ≤ δ, i.e. √p ≥ c (always for δ ≥ 2)
    c_t = torch.as_tensor(c, dtype=lp.dtype, device=lp.device)
    sat_up = (c_t <= 0) | (0.5 * lp >= torch.log(c_t))
    upper = torch.where(sat_up, inv_p, torch.square(c + h))
    # c − h = (c² − h²)/(c + h) and c² − h² = (4p − δ(4 − δ))/(4p) = (p*/p)·expm1(t), p* = δ(4−δ)/4
    lower = torch.square(torch.exp(-t) * torch.expm1(t) / (c + h))
    sat_lo = (t <= 0) | (c_t <= 0)
    return lower, upper, sat_lo


_FORMS: dict[str, Callable] = {
    "tv": _tv,
    "chi2": _chi2,
    "neyman": _neyman,
    "lecam": _lecam,
    "hellinger": _hellinger,
}


def threshold_dd(match: ClosedMatch, delta) -> tuple:
    """(hi, lo) of log p*(δ/scale): double-double for a Python-number δ, float64 for a tensor."""
    if isinstance(delta, torch.Tensor):
        hi = _log_threshold_t(match.family, delta / match.scale)
        return hi, torch.zeros_like(hi)
    d = delta / match.scale
    if math.isinf(d):
        return math.inf, 0.0
    return _log_threshold_dd(match.family, d)


def closed_band(
    match: ClosedMatch, lp: torch.Tensor, delta: torch.Tensor, hi, lo
) -> tuple[torch.Tensor, torch.Tensor]:
    """(r₋, r₊) in float64 from the closed form of ``match`` for log p < 0 (extremes excluded).

    Pure tensor code (no host synchronisation), so that it can be fused by ``torch.compile``.

    Args:
        match: The family and scale from :func:`closed_match`.
        lp: float64 log-probabilities (broadcast already against δ).
        delta: float64 tensor, the divergence's δ before scaling.
        hi, lo: :func:`threshold_dd` of δ (floats or tensors).
    """
    d = delta / match.scale
    t = (lp - hi) - lo
    p = torch.exp(lp)
    q = -torch.expm1(lp)
    # 1/p is exp(−log p) everywhere in bandpo (a saturated end is exactly this number);
    # k = (1 − p)/p = q·(1/p), one rounding on accurate factors, saves an expm1
    inv_p = torch.exp(-lp)
    k = q * inv_p
    lower, upper, sat_lo = _FORMS[match.family](lp, p, q, inv_p, k, d, t)
    lower = torch.where(sat_lo, torch.zeros((), dtype=lp.dtype, device=lp.device), lower)
    return lower, upper


# ------------------------------------------------------------------ the eager scalar-δ fast path
#
# The same forms, for a finite Python-number δ, written for eager CPU speed: every elementwise
# op works in the input's own precision (float32 stays float32) and in place, into the two
# output buffers and at most a few temporaries, with no boolean masks (``torch.where`` and
# ``masked_fill`` cost as much as two ``exp`` on CPU).  Saturation is a clamp: the saturated
# lower end is where the unclamped form goes negative (r₋ = 0), and the upper end is
# min(form, 1/p) where the form passes 1/p past saturation (tv, chi2, neyman, lecam) or a
# threshold on 1/p selects it (hellinger).  The extremes come out of the same arithmetic:
# log p = −inf gives (0, +inf), NaN stays NaN (clamp, minimum and maximum propagate it), and
# log p = 0 gives the p = 1 perspective band (checked against the golden tables).
#
# All the forms use m = 1 − p*/p = −expm1(−t), t = log p − log p*, from the two-term threshold
# (hi, lo): log p − hi is exact (Sterbenz) where it matters, so r₋ keeps full relative accuracy
# down to saturation in float32 as in float64.


def _one_minus_ratio_(buf: torch.Tensor, lp: torch.Tensor, hi: float, lo: float) -> torch.Tensor:
    """m = 1 − p*/p = −expm1((hi − log p) + lo) written into ``buf``, clamped at 0 (the
    saturated lower end)."""
    torch.sub(lp, hi, out=buf)
    return buf.neg_().add_(lo).expm1_().neg_().clamp_min_(0.0)


def _fast_tv(lp, d, hi, lo, lower, upper, tmp):
    # r₊ = 1 + δ/p, saturated at 1/p where δ ≥ 1 − p; δ/p = (√δ·p^(−½))² stays finite in
    # float32 where 1/p overflows
    torch.mul(lp, -0.5, out=upper).exp_().mul_(math.sqrt(d)).square_().add_(1.0)
    torch.minimum(upper, torch.neg(lp, out=lower).exp_(), out=upper)
    _one_minus_ratio_(lower, lp, hi, lo)  # r₋ = 1 − δ/p


def _fast_chi2(lp, d, hi, lo, lower, upper, tmp):
    torch.neg(lp, out=lower).exp_()  # 1/p
    # r± = 1 ± s, s = sqrt(δk) = sqrt(δq)·p^(−½), k = (1 − p)/p: never through k itself, which
    # overflows float32 (p < 3e−39) where s does not
    s1 = (
        torch.expm1(lp, out=tmp[0])
        .mul_(-d)
        .sqrt_()
        .mul_(torch.mul(lp, -0.5, out=upper).exp_())
        .add_(1.0)
    )
    torch.minimum(s1, lower, out=upper)  # saturated (1/p) where k ≤ δ
    # r₋ = (1 − δk)/(1 + s) and 1 − δk = (1 + δ)·(1 − p*/p); p → 0 gives 0/inf = 0
    _one_minus_ratio_(lower, lp, hi, lo).mul_(1.0 + d).div_(s1)


def _fast_neyman(lp, d, hi, lo, lower, upper, tmp):
    torch.exp(lp, out=lower)  # p
    den = (
        torch.expm1(lp, out=tmp[0]).mul_(lower).mul_(-4.0 * d).add_(d * d).sqrt_()
    )  # D = sqrt(δ(δ + 4pq))
    den.add_(d).add_(lower, alpha=2.0)
    # r₋ = 2p/(2p + δ + D); r₊ = (2p + δ + D)/(2p(1 + δ)), at most 1/p (never saturated)
    # 2p/den as (2·√p/den)·√p: p itself is subnormal in float32 (p < 1.2e−38) where r₋ needs
    # its full relative accuracy before the last rounding
    sqrt_p = torch.mul(lp, 0.5, out=upper).exp_()
    torch.mul(sqrt_p, 2.0, out=lower).div_(den).mul_(sqrt_p)
    # ·p^(−½)·p^(−½), not ·(1/p): 1/p overflows float32 (p < 3e−39) where r₊ may not
    half = torch.mul(lp, -0.5, out=upper).exp_()
    den.mul_(0.5 / (1.0 + d)).mul_(half).mul_(half)
    torch.minimum(den, torch.neg(lp, out=upper).exp_(), out=upper)


def _fast_lecam(lp, d, hi, lo, lower, upper, tmp):
    p = torch.exp(lp, out=lower)
    q = torch.expm1(lp, out=upper).neg_()
    num = torch.mul(p, q, out=tmp[0])
    e = torch.mul(num, 8.0 * d, out=tmp[1]).add_(d * d).sqrt_()  # E = sqrt(δ(δ + 8pq))
    # r₊ = 1 + N/(p(2 + δ)), N = E + a, a = δ(q − p); for a < 0 the stable form is
    # N = 4pqδ(2 + δ)/(E + |a|).  Selected without a mask: N = lerp(C/(E + |a|), E + |a|, w),
    # w = [a ≥ 0] from sign(), and lerp is exact at w ∈ {0, 1}.
    w = torch.sub(q, p, out=tmp[2])
    ea = torch.abs(w, out=tmp[3]).mul_(d).add_(e)
    num.mul_(4.0 * d * (2.0 + d)).div_(ea)
    w.sign_().add_(1.0).clamp_max_(1.0)
    num.lerp_(ea, w)
    den = e.add_(q, alpha=d).add_(p, alpha=2.0)  # 2p + δq + E
    # ·p^(−½)·p^(−½), not ·(1/p): 1/p overflows float32 (p < 3e−39) where r₊ may not
    half = torch.mul(lp, -0.5, out=upper).exp_()  # (q is no longer needed)
    num.mul_(1.0 / (2.0 + d)).mul_(half).mul_(half).add_(1.0)
    torch.neg(lp, out=upper).exp_()  # 1/p
    torch.minimum(num, upper, out=upper)  # saturated where 2q ≤ δ(1 + p)
    # r₋ = (2 + δ)·p·(1 − p*/p)/(2p + δq + E)
    lower.mul_(_one_minus_ratio_(w, lp, hi, lo)).mul_(2.0 + d).div_(den)


def _fast_hellinger(lp, d, hi, lo, lower, upper, tmp):
    c = 1.0 - d / 2.0
    torch.neg(lp, out=upper).exp_()  # 1/p
    if c <= 0.0:  # δ ≥ 2: H² ≤ 2 always, both ends saturated
        torch.clamp(lp, 0.0, 0.0, out=lower)  # clamp keeps NaN
        return
    # r± = (c ± h)², h = ½·sqrt(δ(4 − δ)q)·p^(−½) (k = q/p overflows float32 where h does
    # not); c − h = (1 − p*/p)/(c + h)
    half = torch.mul(lp, -0.5, out=lower).exp_()
    ch = torch.expm1(lp, out=tmp[0]).mul_(-0.25 * d * (4.0 - d)).sqrt_().mul_(half).add_(c)
    _one_minus_ratio_(lower, lp, hi, lo).div_(ch).square_()
    # r₊ saturates (1/p) where √p ≥ c, i.e. 1/p ≤ 1/c²; there (c + h)² ≤ 1/p, so
    # r₊ = max((c + h)², 1/p·[1/p ≤ 1/c²]), the indicator by a threshold (no mask)
    torch.nn.functional.threshold_(upper.neg_(), -1.0 / (c * c), 0.0)
    torch.maximum(ch.square_(), upper.neg_(), out=upper)


#: scratch tensors of the input's shape that each form uses (allocated as one block)
_FAST_TEMPS = {"tv": 0, "chi2": 1, "neyman": 1, "lecam": 4, "hellinger": 1}

_FAST_FORMS: dict[str, Callable] = {
    "tv": _fast_tv,
    "chi2": _fast_chi2,
    "neyman": _fast_neyman,
    "lecam": _fast_lecam,
    "hellinger": _fast_hellinger,
}


def closed_band_fast(
    match: ClosedMatch, lp: torch.Tensor, delta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(r₋, r₊) of ``match`` for a finite Python-number δ, in ``lp``'s dtype (float32/float64).

    Every log p ≤ 0 is handled, the extremes included (see the comment above); log p > 0 must be
    excluded by the caller.  The lower end's threshold log p* is a double-double, split again
    for a float32 ``lp`` so that log p − hi stays exact in float32.  Both ends are written into
    one (2, *shape) allocation (one allocation instead of two: on CPU, fresh pages cost more
    than the arithmetic), returned as its two contiguous halves.
    """
    d = delta / match.scale
    hi, lo = _log_threshold_dd(match.family, d)
    if lp.dtype != torch.float64:
        hi32 = float(torch.tensor(hi, dtype=lp.dtype))
        lo = float(torch.tensor((hi - hi32) + lo, dtype=lp.dtype))
        hi = hi32
    lp = lp.contiguous()
    out = torch.empty((2, *lp.shape), dtype=lp.dtype, device=lp.device)
    tmp = torch.empty((_FAST_TEMPS[match.family], *lp.shape), dtype=lp.dtype, device=lp.device)
    _FAST_FORMS[match.family](lp, d, hi, lo, out[0], out[1], tmp)
    # In float32 an end within an ulp of 1 (p → 1, or p = 1 exactly) can round to the wrong side
    # of 1; r₋ ≤ 1 ≤ r₊ holds exactly, so these clamps only undo rounding (NaN passes through).
    out[0].clamp_max_(1.0)
    out[1].clamp_min_(1.0)
    return out[0], out[1]
