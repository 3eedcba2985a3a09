"""The generic Band root finder in torch (float64 working precision), for any registered f.

Both band ends are the same problem by the mirror identity (THEORY.md §4): with masses a + b = 1,

    G_{a,b}(v) = a·f(v) + b·f(w),      w = 1 − (a/b)·(v − 1) = 1 − (a/b)·expm1(ln v),

G is convex, decreasing on v ∈ [0, 1] and G(1) = 0.  The lower end is r₋ = v* for (a, b) = (p, q),
the upper end r₊ = w(v*) for (a, b) = (q, p), where q = 1 − p = −expm1(log p) and v* solves
G(v*) = δ.  The end saturates (r₋ = 0, r₊ = 1/p) when G(0⁺) = a·f(0⁺) + b·f(1/b) ≤ δ.

The root is found in y = ln(−ln v) (so x = ln v = −e^y) by Newton's method on
F(y) = ln G − ln δ.  In that variable F is close to linear in every regime bandpo meets:
G ≈ ½f″(1)(a/b)x² near v = 1 (small δ), G ≈ −a·c·x for a logarithmic singularity of f at 0
(``kl``, ``jeffreys``), so each Newton step is nearly exact.  A bracket [y_lo, y_hi] is kept
with ``torch.where`` and any step that leaves it (or is NaN) is replaced by bisection, so the
iteration cannot diverge; the iteration count is fixed, so there is no host synchronisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp
import torch

from bandpo.divergences import Divergence, U

__all__ = ["Consts", "apply_extremes", "consts_of", "end_root", "perspective_lower", "root_band"]

#: Newton iterations of the generic root finder, per behaviour of f at 0 (see ``Consts.kind``).
#: Measured on a 1100 × 12 grid (p from 1e-300 to 1 − 1e-12, δ from 1e-8 to 20) against 80
#: iterations: "log" converges to 1e-15 in 4, "power" in 6, "finite" in 10; each has 1-2 spare.
N_ITER: dict[str, int] = {"log": 6, "power": 7, "finite": 12}

# Bracket of y = ln(−ln v): v = exp(−e^{6.6138}) = exp(−745.2) is 0 in float64 and
# v = exp(−e^{−800}) rounds to 1.
_Y_LO = -800.0
_Y_HI = 7.5  # v = exp(−1808): bisection toward it crosses the float64 underflow (−745) fast


@dataclass(frozen=True)
class Consts:
    """Numbers the solver takes from the registry entry (as Python floats, ±inf allowed)."""

    f0: float  # f(0⁺)
    f2: float  # f″(1) (nan at a kink, e.g. tv)
    slope: float  # f′(∞) = lim f(u)/u
    kind: str  # behaviour of f at 0: "finite" f(0⁺), "log" (f ~ −c ln u) or "power" (f ~ c u^−k)
    m: float  # for "finite": f(u) − f(0⁺) ~ −c·u^m as u → 0 (m = lim u f′/(f − f(0⁺)))
    c_log: float  # for "log": f(u) ~ −c_log·ln u as u → 0


def _to_float(v: sp.Expr) -> float:
    if v in (sp.oo, sp.zoo):
        return math.inf
    if v == -sp.oo:
        return -math.inf
    if v is sp.nan:
        return math.nan
    return float(sp.N(v, 30))


@lru_cache(maxsize=256)
def _consts_cached(name: str, params: tuple) -> Consts:
    from bandpo.divergences import get_divergence

    div = get_divergence(name, **dict(params))
    f0 = _to_float(div.f_at_zero)
    m = 1.0
    c_log = 1.0
    if math.isfinite(f0):
        kind = "finite"
        m_expr = sp.limit(U * div.df / (div.f - div.f_at_zero), U, 0, "+")
        if m_expr.is_finite and m_expr.is_positive:
            m = float(m_expr)
    else:
        # f ~ −c·ln u (c finite) or a faster, power-law blow-up
        ratio = sp.limit(div.f / (-sp.log(U)), U, 0, "+")
        kind = "log" if ratio.is_finite else "power"
        if kind == "log" and ratio.is_positive:
            c_log = float(ratio)
    return Consts(f0, _to_float(div.f2_at_one), _to_float(div.slope_at_infinity), kind, m, c_log)


def consts_of(div: Divergence) -> Consts:
    """The registry's f(0⁺), f″(1) and f′(∞) of ``div`` as floats (cached per name/params)."""
    return _consts_cached(div.name, tuple(sorted(div.params.items())))


def _g_and_slope(div: Divergence, a, b, ratio, x):
    """G(e^x) and dG/dx for the masses (a, b); ratio = a/b.

    x is evaluated no lower than −740, where e^x is still a normal-range float64 number: below
    that v would underflow to 0 and f(0) = +inf would hide a root beyond the float64 range.
    """
    x = torch.clamp(x, min=-740.0)
    v = torch.exp(x)
    w = 1 - ratio * torch.expm1(x)
    g = a * div.f_torch(v) + b * div.f_torch(w)
    dg = a * v * (div.df_torch(v) - div.df_torch(w))
    return g, dg


def _step(kind: str, m: float, y, x, g, dg, fy, delta, y_lo, y_hi):
    """One safeguarded Newton step from y = ln(−x), x = ln v, for F(y) = ln G − ln δ.

    The variable in which G is nearly linear depends on the regime, and the registry's f says
    which regimes occur (:attr:`Consts.kind`):

    * near v = 1 (G ≈ c·x², every f) and for a logarithmic singularity f(v) ~ −c·ln v at 0
      (``"log"``: G ≈ −a·c·x): Newton in y on F is exact to leading order;
    * a power singularity f(v) ~ c·v^{−k} (``"power"``): for v < 1/e, ln G ≈ const − k·x, so
      Newton in x on F;
    * a finite f(0⁺) (``"finite"``) with f(v) − f(0⁺) ~ −c·v^m: for v < 1/2, G(0⁺) − G is
      close to proportional to v^m, so Newton in z = v^m on G.

    A step that leaves the bracket [y_lo, y_hi], or is NaN, is replaced by bisection in y.
    """
    dfy = dg * x / g
    y_new = y - fy / dfy  # Newton in y
    if kind == "power":
        # Newton in x: x·(1 − τ), τ = F/F_y (written in y so that a zero step keeps y exactly)
        y_new = torch.where(x < -1, y + torch.log1p(-fy / dfy), y_new)
    elif kind == "finite":
        # Newton in z = v^m: z·(1 − m(G − δ)/(dG/dx)), i.e. x + log1p(−m(G − δ)/(dG/dx))/m
        step_x = torch.log1p(-m * (g - delta) / dg) / m
        y_new = torch.where(x < -0.6931471805599453, y + torch.log1p(step_x / x), y_new)
    # a non-finite G or slope (f′ overflows deep in the tail) gives no usable step either
    # a converged step that rounds just past the bracket end it sits on is kept (clamped), not
    # replaced by a bisection that would throw the converged iterate away
    tiny_step = (y_new - y).abs() <= 1e-12 * (1 + y.abs())
    y_new = torch.where(tiny_step, torch.minimum(torch.maximum(y_new, y_lo), y_hi), y_new)
    ok = (y_new >= y_lo) & (y_new <= y_hi) & torch.isfinite(dfy)
    mid = 0.5 * (y_lo + y_hi)
    if kind == "log":
        # G grows only like −ln v: a root that Newton in y (exact there) puts beyond the top
        # sentinel lies below the float64 range, so go to v = 0 at once and stay there
        to_top = ((y_new > y_hi) & (y_hi >= _Y_HI)) | (y >= _Y_HI)
        mid = torch.where(to_top, y_hi, mid)
    return torch.where(ok, y_new, mid)


def end_root(div: Divergence, c: Consts, a, b, ratio, delta, log_delta, n_iter: int | None = None):
    """x* = ln v* with G_{a,b}(e^{x*}) = δ, for unsaturated ends (float64 tensors).

    Saturated or degenerate entries return garbage that the caller replaces.
    """
    # Initial guess: the small-δ expansion G ≈ ½ f″(1) (a/b) (v − 1)²  ⇒  1 − v ≈ sqrt(2δ b/(f″ a)).
    f2 = c.f2 if math.isfinite(c.f2) and c.f2 > 0 else 1.0
    d = torch.sqrt((2.0 / f2) * delta / ratio)
    x0 = torch.log1p(-torch.clamp(d, max=0.5))
    if c.kind == "log":
        # deep in the tail G ≈ a·c·(−x): add that scale so both regimes start close
        x0 = x0 - delta / (a * c.c_log)
    y = torch.log(-x0)
    y_lo = torch.full_like(y, _Y_LO)
    y_hi = torch.full_like(y, _Y_HI)
    n = N_ITER[c.kind] if n_iter is None else n_iter
    for i in range(n):
        x = -torch.exp(y)
        g, dg = _g_and_slope(div, a, b, ratio, x)
        fy = torch.log(g / delta)  # not ln G − ln δ: that cancels ~|ln δ|·eps near the root
        # the bracket test compares G with δ itself (ln G may round to ln δ); NaN comes from the
        # deep tail (v → 0, where G → G(0⁺) > δ), so it counts as above, and so does a negative G
        # (a registry f_torch that loses its value at u below ~1e-16, e.g. js, returns -inf there)
        above = ~(g <= delta) | (g < 0)
        y_hi = torch.where(above, y, y_hi)
        y_lo = torch.where(above, y_lo, y)
        y_next = _step(c.kind, c.m, y, x, g, dg, fy, delta, y_lo, y_hi)
        if i + 1 < n:
            y = y_next
    # Closing step, in x itself: near a deep root (|x| ~ 700) adjacent floats of y are |x|·ulp(y)
    # apart in x, i.e. ~1e-12 relative in v, while Newton in x resolves x to ulp(x).  Where the
    # last evaluation is converged (|F| small) its Newton step in x is taken; else the y iterate.
    x_close = x - fy * g / dg
    converged = (fy.abs() < 1e-6) & torch.isfinite(x_close)
    return torch.where(converged, x_close, -torch.exp(y_next))


def _perspective_lower(div: Divergence, c: Consts, delta, log_delta, n_iter: int | None = None):
    """r₋ at p = 1: the root of f(r) + (1 − r)·f′(∞) = δ on (0, 1) (THEORY.md §4)."""
    if math.isinf(c.slope):
        # mass moved off a one-hot support costs +inf: the band is [1, 1]
        return torch.ones_like(delta)
    slope = c.slope
    y = torch.zeros_like(delta)
    y_lo = torch.full_like(delta, _Y_LO)
    y_hi = torch.full_like(delta, _Y_HI)
    for _ in range(N_ITER[c.kind] if n_iter is None else n_iter):
        x = -torch.exp(y)
        v = torch.exp(x)
        g = div.f_torch(v) - torch.expm1(x) * slope
        dg = v * (div.df_torch(v) - slope)
        fy = torch.log(g / delta)  # not ln G − ln δ: that cancels ~|ln δ|·eps near the root
        # the bracket test compares G with δ itself (ln G may round to ln δ); NaN comes from the
        # deep tail (v → 0, where G → G(0⁺) > δ), so it counts as above, and so does a negative G
        # (a registry f_torch that loses its value at u below ~1e-16, e.g. js, returns -inf there)
        above = ~(g <= delta) | (g < 0)
        y_hi = torch.where(above, y, y_hi)
        y_lo = torch.where(above, y_lo, y)
        y = _step(c.kind, c.m, y, x, g, dg, fy, delta, y_lo, y_hi)
    lower = torch.exp(-torch.exp(y))
    sat = (c.f0 + slope) <= delta if math.isfinite(c.f0) else torch.isinf(delta)
    return torch.where(sat, torch.zeros_like(lower), lower)


def root_band(
    div: Divergence, c: Consts, lp: torch.Tensor, delta
) -> tuple[torch.Tensor, torch.Tensor]:
    """(r₋, r₊) in float64 by the root finder, for 0 < p < 1 (extremes are fixed by the caller).

    ``lp`` is already broadcast against ``delta`` (a float64 tensor); ``c`` is
    :func:`consts_of` ``(div)``, computed by the caller outside any compiled region.
    """
    log_delta = torch.log(delta)
    p = torch.exp(lp)
    q = -torch.expm1(lp)
    inv_p = torch.exp(-lp)
    ratio_lo = p / q  # a/b of the lower end
    ratio_up = q / p  # a/b of the upper end

    # saturation tests: G(0⁺) = a·f(0⁺) + b·f(1/b) ≤ δ
    if math.isinf(c.f0):
        sat_lo = torch.isinf(delta).expand(lp.shape)
        sat_up = sat_lo
    else:
        sat_lo = p * c.f0 + q * div.f_torch(1 / q) <= delta
        sat_up = q * c.f0 + p * div.f_torch(inv_p) <= delta

    lower = torch.exp(end_root(div, c, p, q, ratio_lo, delta, log_delta))
    u_up = end_root(div, c, q, p, ratio_up, delta, log_delta)
    upper = torch.minimum(1 - ratio_up * torch.expm1(u_up), inv_p)
    lower = torch.where(sat_lo, torch.zeros((), dtype=lp.dtype, device=lp.device), lower)
    upper = torch.where(sat_up, inv_p, upper)
    return lower, upper


def perspective_lower(div: Divergence, c: Consts, delta: torch.Tensor) -> torch.Tensor:
    """r₋ at p = 1 on δ's own shape (0 at δ = +inf): per-call work, done outside the hot path."""
    low1 = _perspective_lower(div, c, delta, torch.log(delta))
    return torch.where(torch.isinf(delta), torch.zeros_like(low1), low1)


def apply_extremes(div: Divergence, c: Consts, lp: torch.Tensor, delta, lower, upper, low1):
    """Overwrite the exactly defined end cases (see ``band_bounds``' Notes) on float64 tensors.

    log p = 0 → the perspective band [low1, 1] (``low1`` = :func:`perspective_lower`);
    log p = −inf → (0, +inf); δ = +inf →
    [0, 1/p]; NaN (and log p > 0, outside the domain) → NaN at that position only.
    """
    zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
    inf = torch.full((), math.inf, dtype=lp.dtype, device=lp.device)
    nan = torch.full((), math.nan, dtype=lp.dtype, device=lp.device)
    inf_delta = torch.isinf(delta)
    lower = torch.where(inf_delta, zero, lower)
    upper = torch.where(inf_delta, torch.exp(-lp), upper)
    at_one = lp == 0
    lower = torch.where(at_one, low1, lower)
    upper = torch.where(at_one, torch.ones((), dtype=lp.dtype, device=lp.device), upper)
    at_zero = torch.isneginf(lp)
    lower = torch.where(at_zero, zero, lower)
    upper = torch.where(at_zero, inf, upper)
    bad = torch.isnan(lp) | (lp > 0)
    return torch.where(bad, nan, lower), torch.where(bad, nan, upper)


# --------------------------------------------------------------------- the eager KL fast path
#
# For a generator that is c·(u − 1 − ln u) (``kl``, scaled by c) the linear parts of f cancel
# between the two masses (a·(v − 1) + b·(w − 1) = 0), so with x = ln v, z = 1 − v = −expm1(x)
# and k = a/b,
#
#     G(x) = −a·x − b·ln(1 + k·z),      dG/dx = −k·z/(1 + k·z),
#
# four transcendental functions per step and no branch (G″ = k·v/(1 + k·z)² is arithmetic
# too): Halley's iteration in y = ln(−x) on F = ln(G/δ) (nearly linear in y in both regimes, as
# in :func:`end_root`), from :func:`end_root`'s initial guess, then its closing Newton step in
# x.  Measured against 6 steps on 400 000 p (−log p log-uniform in [1e−14, 699]) × 12 δ in
# [1e−8, 20]: 2 steps agree within 2.3e−13 relative, 1 step only within 3.3e−7; on the golden
# tables 2 steps give 8.6e−14 in float64 and 0 ulp in float32, hence ``KL_ITER`` = 2.
# It runs unguarded, so it is used only where that was checked: log p in [−700, 0) (1/p finite
# in float64); the caller sends every other entry (log p = 0, −inf, NaN) to the general path.
# Work is done in float64, block by block, in scratch tensors allocated once per call.

KL_ITER = 2
KL_BLOCK = 1 << 16
KL_MIN_LOG_P = -700.0


@lru_cache(maxsize=256)
def _kl_scale_cached(name: str, params: tuple) -> float | None:
    from bandpo.divergences import get_divergence

    div = get_divergence(name, **dict(params))
    kl = U - 1 - sp.log(U)
    ratio = sp.simplify(div.f / kl)
    if ratio.free_symbols or not ratio.is_positive:
        return None
    return float(ratio)


def kl_scale(div: Divergence) -> float | None:
    """c where f = c·(u − 1 − ln u) (the registry's ``kl`` and its multiples), else None."""
    return _kl_scale_cached(div.name, tuple(sorted(div.params.items())))


def _kl_end_x(a, b, k, delta: float, n_iter: int, ws) -> torch.Tensor:
    """x = ln v at the root of G(x) = −a·x − b·ln(1 + k·z) = δ (see the comment above).

    ``ws``: eight scratch tensors of ``a``'s shape; every step writes into them (no allocation
    in the loop).  Returns one of them.
    """
    y, x, em, kz, w, g, t1, t2 = ws
    # y = ln(−x₀), x₀ = log1p(−min(sqrt(2δ/k), ½)) − δ/a: end_root's initial guess
    torch.reciprocal(k, out=y).mul_(2.0 * delta).sqrt_().clamp_max_(0.5).neg_().log1p_()
    y.sub_(torch.reciprocal(a, out=t1).mul_(delta)).neg_().log_()
    nk = torch.neg(k, out=t2)  # −k, so that k·z = (−k)·expm1(x) is one product
    for i in range(n_iter + 1):
        torch.exp(y, out=x).neg_()
        # −z = expm1(x); expm1 is −1 exactly below x = −40 (e^x < eps/2), and far below it
        # (deep roots, x ~ −δ/p) the vectorised expm1 takes a slow path: clamp first
        torch.clamp(x, min=-50.0, out=em).expm1_()
        torch.mul(em, nk, out=kz)  # k·z
        torch.add(kz, 1.0, out=w)  # w = 1 + k·z
        ng = torch.log1p(kz, out=g).mul_(b).addcmul_(a, x)  # −G (log1p: k·z may be tiny)
        # F = ln(G/δ) = log1p(G/δ − 1), not ln G − ln δ (cancellation)
        f = torch.mul(ng, -1.0 / delta, out=t1).sub_(1.0).log1p_()
        r = kz.div_(w).div_(ng)  # G′/G, G′ = dG/dx = −k·z/w
        if i == n_iter:
            return x.sub_(f.div_(r))  # closing Newton step in x
        # Halley in y: F′ = x·G′/G, F″ = F′ + x²·(G″/G − (G′/G)²), G″/G = −k·v/(w²·(−G)),
        # v = 1 − z = 1 + em
        fpp = em.add_(1.0).mul_(nk).div_(w).div_(w).div_(ng)  # G″/G
        fp = r.mul_(x)
        # F″ = x·(x·G″/G) − F′² + F′: x·x in two products and x²·(G′/G)² as F′², because x²
        # overflows for the deep roots of tiny p (x ≈ −δ/p, |x| > 1e154 for p < 1e-155)
        fpp.mul_(x).mul_(x).sub_(torch.square(fp, out=w)).add_(fp)
        step = f.div_(fp)  # the Newton step F/F′, then Halley's 1/(1 − F·F″/(2F′²)) factor
        y.sub_(step.div_(fpp.div_(fp).mul_(step).mul_(-0.5).add_(1.0)))
    raise AssertionError("unreachable")


def kl_band_fast(lp: torch.Tensor, delta: float, scale: float, n_iter: int = KL_ITER):
    """(r₋, r₊) for f = scale·(u − 1 − ln u), a finite Python-number δ and every log p in
    [``KL_MIN_LOG_P``, 0) (the caller checks), in ``lp``'s dtype; float64 inside.

    The work is done block by block in a fixed set of float64 scratch tensors (allocated once
    per call): fresh memory per elementwise op costs more than the op on CPU.
    """
    d = delta / scale
    flat = lp.reshape(-1)
    n = flat.numel()
    out = torch.empty((2, n), dtype=lp.dtype, device=lp.device)
    blk = min(KL_BLOCK, n)
    # r₋ = e^x is 0 in the output dtype below this x: clamping there keeps exp off its slow
    # underflow path without changing the result
    x_min = math.log(torch.finfo(lp.dtype).smallest_normal * torch.finfo(lp.dtype).eps) - 2.0
    scratch = torch.empty((12, blk), dtype=torch.float64, device=lp.device)
    for start in range(0, n, blk):
        m = min(blk, n - start)
        lpb, p, q, k, *ws = (t[:m] for t in scratch)
        lpb.copy_(flat[start : start + m])
        torch.exp(lpb, out=p)
        torch.expm1(lpb, out=q).neg_()
        torch.div(p, q, out=k)
        out[0, start : start + m] = _kl_end_x(p, q, k, d, n_iter, ws).clamp_min_(x_min).exp_()
        k.reciprocal_()  # q/p: the upper end is the lower end of the mirrored masses
        upper = _kl_end_x(q, p, k, d, n_iter, ws).clamp_min_(-50.0).expm1_()
        upper.mul_(k).neg_().add_(1.0)
        out[1, start : start + m] = torch.minimum(upper, lpb.neg_().exp_(), out=upper)
    return out[0].view(lp.shape), out[1].view(lp.shape)
