"""The f-divergence registry: every divergence bandpo knows, defined once.

An f-divergence between a new policy π and the old policy q is

    D_f(π ‖ q) = Σ_i q_i · f(π_i / q_i),      f convex on (0, ∞),  f(1) = 0.

Each entry of :data:`DIVERGENCES` holds the generator f(u) as a SymPy expression (the single
source of truth) together with the hand-written forms other layers need: a numerically stable
torch form of f and f′ (for :mod:`bandpo.solvers.band`) and an exact DCP encoding (for
:mod:`bandpo.solvers.convex`).  Tests check each hand-written form against the SymPy f.

Derived quantities (cached per entry):

* ``f_at_zero``  – f(0⁺) = lim_{u→0⁺} f(u), possibly +∞ (then the lower band end never saturates);
* ``f2_at_one``  – f″(1), the curvature that sets the small-δ band width;
* ``slope_at_infinity`` – f′(∞) = lim_{u→∞} f(u)/u, which charges mass moved off the support of a
  one-hot old policy (the band at exactly p = 1, THEORY.md §4).

Reference: BandPO, arXiv 2603.04918, §3 and Prop. 4; names follow ``shared/design/THEORY.md`` §3.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

import sympy as sp
import torch

__all__ = [
    "DIVERGENCES",
    "Divergence",
    "U",
    "divergence_names",
    "get_divergence",
    "resolve_divergence",
]

#: The ratio variable u = π/q of the generator f(u); positive by construction.
U = sp.Symbol("u", positive=True)

_HALF = sp.Rational(1, 2)


@dataclass(frozen=True, eq=False)
class Divergence:
    """One f-divergence: the SymPy generator and the forms derived from it.

    Attributes:
        name: Registry key (THEORY.md §3), e.g. ``"kl"``.
        label: LaTeX label for figures, e.g. ``r"$\\mathrm{KL}(\\pi_{\\mathrm{old}}\\|\\pi)$"``.
        description: One line saying what D_f(π ‖ π_old) is.
        f: The generator f(u) as a SymPy expression in :data:`U` (parameters substituted).
        params: Parameter values (``{"alpha": α}`` for ``alpha``, otherwise empty).
        f_torch: Numerically stable torch form of f(u), elementwise on a tensor u ≥ 0.
        df_torch: Numerically stable torch form of f′(u), elementwise on a tensor u > 0.
        cvxpy_f: Exact DCP encoding: maps a CVXPY expression u (elementwise, u ≥ 0) to the
            convex expression f(u), elementwise.
        strictly_convex: Whether f is strictly convex (``tv`` is not: its optimiser over the
            simplex is not unique).
    """

    name: str
    label: str
    description: str
    f: sp.Expr
    params: Mapping[str, float] = field(default_factory=dict)
    f_torch: Callable[[torch.Tensor], torch.Tensor] = field(repr=False, default=None)  # type: ignore[assignment]
    df_torch: Callable[[torch.Tensor], torch.Tensor] = field(repr=False, default=None)  # type: ignore[assignment]
    cvxpy_f: Callable[[Any], Any] = field(repr=False, default=None)
    strictly_convex: bool = True

    @property
    def key(self) -> str:
        """A name that includes the parameters, e.g. ``"alpha_0.5"`` (file names, tables)."""
        if not self.params:
            return self.name
        return self.name + "".join(f"_{v:g}" for v in self.params.values())

    @property
    def display_name(self) -> str:
        """``"alpha(α=0.5)"`` style name for tables."""
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.name}({inner})"

    @cached_property
    def f_at_zero(self) -> sp.Expr:
        """f(0⁺) = lim_{u→0⁺} f(u) (may be ``sympy.oo``)."""
        return sp.limit(self.f, U, 0, "+")

    @cached_property
    def f2_at_one(self) -> sp.Expr:
        """f″(1), the local curvature of the trust region (``sympy.nan`` where f is not twice
        differentiable at 1, as for ``tv``'s kink)."""
        value = sp.simplify(sp.diff(self.f, U, 2).subs(U, 1))
        if value.has(sp.DiracDelta) or not value.is_finite:
            return sp.nan
        return value

    @cached_property
    def slope_at_infinity(self) -> sp.Expr:
        """f′(∞) = lim_{u→∞} f(u)/u (may be ``sympy.oo``)."""
        return sp.limit(self.f / U, U, sp.oo)

    @cached_property
    def df(self) -> sp.Expr:
        """f′(u) as a SymPy expression."""
        return sp.diff(self.f, U)

    def g(self, p: sp.Expr, r: sp.Expr) -> sp.Expr:
        """The two-point reduction g_f(p, r) = p·f(r) + (1 − p)·f((1 − r·p)/(1 − p)) (SymPy)."""
        return p * self.f.subs(U, r) + (1 - p) * self.f.subs(U, (1 - r * p) / (1 - p))

    @cached_property
    def f_mpmath(self) -> Callable[[Any], Any]:
        """f as an mpmath function (lambdified from the SymPy expression)."""
        return sp.lambdify(U, self.f, modules="mpmath")

    def with_params(self, **params: Any) -> Divergence:
        """Return this divergence with new parameter values (see :func:`get_divergence`)."""
        return get_divergence(self.name, **params)


# --------------------------------------------------------------------------- hand-written forms
# Each pair (f, f') below is the stable evaluation of the SymPy generator next to it in
# _BUILDERS; tests/test_divergences.py checks them against sp.lambdify of that generator.


def _xlogx(u: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(u, u)


def _log_near_one(u: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """log u, from log1p(d) with d = u − 1 near u = 1 (d exact there) and log(u) elsewhere."""
    return torch.where(torch.abs(d) < 0.5, torch.log1p(d), torch.log(u))


def _kl_f(u):
    d = u - 1
    return d - _log_near_one(u, d)


def _kl_df(u):
    return 1 - 1 / u


def _kl_reverse_f(u):
    return _xlogx(u) - (u - 1)


def _kl_reverse_df(u):
    return torch.log(u)


def _tv_f(u):
    return 0.5 * torch.abs(u - 1)


def _tv_df(u):
    return 0.5 * torch.sign(u - 1)


def _chi2_f(u):
    return torch.square(u - 1)


def _chi2_df(u):
    return 2 * (u - 1)


def _neyman_f(u):
    d = u - 1
    # d·(d/u) rather than d²/u: no overflow of d² for u up to the float range
    return d * (d / u)


def _neyman_df(u):
    return 1 - 1 / torch.square(u)


def _hellinger_f(u):
    # (√u − 1)² = (u − 1)²/(√u + 1)²: no cancellation near u = 1
    return torch.square((u - 1) / (torch.sqrt(u) + 1))


def _hellinger_df(u):
    return 1 - torch.rsqrt(u)


def _js_f(u):
    w = (u - 1) / (u + 1)  # 2u/(u+1) = 1 + w and 2/(u+1) = 1 − w
    near = torch.abs(w) < 0.5
    # near u = 1 the log1p forms avoid cancellation; far from it w rounds to ±1 and
    # log1p(∓w) would give −inf, so the logs are taken of u directly
    a = torch.where(
        near,
        torch.special.xlog1py(u, w),
        torch.special.xlogy(u, 2 * u) - u * torch.log1p(u),
    )
    b = torch.where(near, torch.log1p(-w), math.log(2.0) - torch.log1p(u))
    return 0.5 * (a + b)


def _js_df(u):
    w = (u - 1) / (u + 1)
    # ½ ln(2u/(u + 1)): log1p(w) near u = 1, the plain ratio where w nears −1 (u → 0)
    return 0.5 * torch.where(torch.abs(w) < 0.5, torch.log1p(w), torch.log(2 * u / (u + 1)))


def _jeffreys_f(u):
    # (u − 1)·ln u is a product of two accurate factors: no cancellation anywhere
    return (u - 1) * torch.log(u)


def _jeffreys_df(u):
    return torch.log(u) + 1 - 1 / u


def _lecam_f(u):
    d = u - 1
    return d * (d / (u + 1))


def _lecam_df(u):
    return ((u - 1) / (u + 1)) * ((u + 3) / (u + 1))


def _alpha_forms(a: float):
    def f(u):
        # u^α − 1 − α(u − 1) with expm1 for accuracy near u = 1
        return (torch.expm1(a * torch.log(u)) - a * (u - 1)) / (a * (a - 1))

    def df(u):
        return torch.expm1((a - 1) * torch.log(u)) / (a - 1)

    return f, df


# ---- DCP encodings: exact identities that make each f a composition of convex atoms.


def _cvx_kl(u):
    import cvxpy as cp

    return u - 1 - cp.log(u)


def _cvx_kl_reverse(u):
    import cvxpy as cp

    return -cp.entr(u) - u + 1


def _cvx_tv(u):
    import cvxpy as cp

    return 0.5 * cp.abs(u - 1)


def _cvx_chi2(u):
    import cvxpy as cp

    return cp.square(u - 1)


def _cvx_neyman(u):
    import cvxpy as cp

    # (u − 1)²/u = u − 2 + 1/u
    return u - 2 + cp.inv_pos(u)


def _cvx_hellinger(u):
    import cvxpy as cp

    # (√u − 1)² = u − 2√u + 1
    return u + 1 - 2 * cp.sqrt(u)


def _cvx_js(u):
    import cvxpy as cp

    # ½[u ln(2u/(u+1)) + ln(2/(u+1))] = ½[rel_entr(u, m) − ln m],  m = (u + 1)/2
    m = (u + 1) / 2
    return 0.5 * (cp.rel_entr(u, m) - cp.log(m))


def _cvx_jeffreys(u):
    import cvxpy as cp

    # (u − 1) ln u = u ln u − ln u
    return -cp.entr(u) - cp.log(u)


def _cvx_lecam(u):
    import cvxpy as cp

    # (u − 1)²/(u + 1) = (u + 1) − 4 + 4/(u + 1)
    return u - 3 + 4 * cp.inv_pos(u + 1)


def _cvx_alpha(a: float):
    def enc(u):
        import cvxpy as cp

        # u^α is convex for α ∉ [0, 1] and concave inside; α(α − 1) carries the same sign.
        return (cp.power(u, a) - a * u - (1 - a)) / (a * (a - 1))

    return enc


# ------------------------------------------------------------------------------ the registry


def _validate_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number, got {type(alpha).__name__}")
    a = float(alpha)
    if not math.isfinite(a):
        raise ValueError(f"alpha must be finite and not in {{0, 1}}, got {alpha!r}")
    if a in (0.0, 1.0):
        raise ValueError(
            f"alpha must be finite and not in {{0, 1}}, got {alpha!r}: alpha -> 0 is 'kl' "
            "and alpha -> 1 is 'kl_reverse', use those names"
        )
    return a


def _alpha_expr(a: float) -> sp.Expr:
    ar = sp.nsimplify(a) if float(sp.nsimplify(a)) == a else sp.Float(a, 30)
    return (U**ar - ar * U - (1 - ar)) / (ar * (ar - 1))


_DEFAULT_ALPHA = 0.5


def _build(name: str, **params: Any) -> Divergence:
    if name == "alpha":
        unknown = set(params) - {"alpha"}
        if unknown:
            raise TypeError(f"divergence 'alpha' takes only the parameter alpha, got {unknown}")
        a = _validate_alpha(params.get("alpha", _DEFAULT_ALPHA))
        f, df = _alpha_forms(a)
        return Divergence(
            name="alpha",
            label=rf"$D_{{\alpha={a:g}}}$",
            description="Amari alpha-divergence (alpha->0: kl, alpha->1: kl_reverse, 2: chi2/2)",
            f=_alpha_expr(a),
            params=MappingProxyType({"alpha": a}),
            f_torch=f,
            df_torch=df,
            cvxpy_f=_cvx_alpha(a),
        )
    if params:
        raise TypeError(f"divergence {name!r} takes no parameters, got {sorted(params)}")
    spec = _SIMPLE[name]
    return Divergence(name=name, params=MappingProxyType({}), **spec)


_SIMPLE: dict[str, dict[str, Any]] = {
    "kl": dict(
        label=r"$\mathrm{KL}(\pi_{\mathrm{old}}\|\pi)$",
        description="KL(pi_old || pi): the paper's BandKL (TRPO/TRGPPO direction)",
        f=U - 1 - sp.log(U),
        f_torch=_kl_f,
        df_torch=_kl_df,
        cvxpy_f=_cvx_kl,
    ),
    "kl_reverse": dict(
        label=r"$\mathrm{KL}(\pi\|\pi_{\mathrm{old}})$",
        description="KL(pi || pi_old)",
        f=U * sp.log(U) - U + 1,
        f_torch=_kl_reverse_f,
        df_torch=_kl_reverse_df,
        cvxpy_f=_cvx_kl_reverse,
    ),
    "tv": dict(
        label=r"$\mathrm{TV}$",
        description="total variation distance",
        f=_HALF * sp.Abs(U - 1),
        f_torch=_tv_f,
        df_torch=_tv_df,
        cvxpy_f=_cvx_tv,
        strictly_convex=False,
    ),
    "chi2": dict(
        label=r"Pearson $\chi^2$",
        description="Pearson chi-squared",
        f=(U - 1) ** 2,
        f_torch=_chi2_f,
        df_torch=_chi2_df,
        cvxpy_f=_cvx_chi2,
    ),
    "neyman": dict(
        label=r"Neyman $\chi^2$",
        description="Neyman chi-squared",
        f=(U - 1) ** 2 / U,
        f_torch=_neyman_f,
        df_torch=_neyman_df,
        cvxpy_f=_cvx_neyman,
    ),
    "hellinger": dict(
        label=r"$H^2$",
        description="squared Hellinger distance without the 1/2 factor (range [0, 2])",
        f=(sp.sqrt(U) - 1) ** 2,
        f_torch=_hellinger_f,
        df_torch=_hellinger_df,
        cvxpy_f=_cvx_hellinger,
    ),
    "js": dict(
        label=r"$\mathrm{JS}$",
        description="Jensen-Shannon divergence",
        f=_HALF * (U * sp.log(2 * U / (U + 1)) + sp.log(2 / (U + 1))),
        f_torch=_js_f,
        df_torch=_js_df,
        cvxpy_f=_cvx_js,
    ),
    "jeffreys": dict(
        label=r"$\mathrm{J}$ (Jeffreys)",
        description="Jeffreys divergence (symmetrised KL)",
        f=(U - 1) * sp.log(U),
        f_torch=_jeffreys_f,
        df_torch=_jeffreys_df,
        cvxpy_f=_cvx_jeffreys,
    ),
    "lecam": dict(
        label=r"$\Delta$ (Le Cam)",
        description="triangular discrimination (Vincze-Le Cam)",
        f=(U - 1) ** 2 / (U + 1),
        f_torch=_lecam_f,
        df_torch=_lecam_df,
        cvxpy_f=_cvx_lecam,
    ),
}

_NAMES: tuple[str, ...] = (*_SIMPLE, "alpha")

#: name -> Divergence for every name of THEORY.md §3 (``alpha`` at its default α = 0.5).
DIVERGENCES: Mapping[str, Divergence] = MappingProxyType({n: _build(n) for n in _NAMES})


def divergence_names() -> tuple[str, ...]:
    """The registered names, in registry order."""
    return _NAMES


def get_divergence(name: str, **params: Any) -> Divergence:
    """Look up a divergence by name, with parameters for the parametric ones.

    Args:
        name: One of :func:`divergence_names` (``"kl"``, ``"tv"``, ..., ``"alpha"``).
        **params: ``alpha=`` for ``"alpha"`` (finite, not 0 or 1; default 0.5).

    Returns:
        The :class:`Divergence`.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or a bad parameter value.
        TypeError: a parameter the divergence does not take, or of the wrong type.
    """
    if not isinstance(name, str):
        raise TypeError(f"divergence must be a name (str), got {type(name).__name__}")
    if name not in _NAMES:
        raise ValueError(f"unknown divergence {name!r}; valid names: {', '.join(_NAMES)}")
    if not params:
        return DIVERGENCES[name]
    return _build(name, **params)


def resolve_divergence(divergence: str | Divergence, **params: Any) -> Divergence:
    """Accept a name (plus parameters) or a :class:`Divergence` and return the Divergence."""
    if isinstance(divergence, Divergence):
        if params:
            return divergence.with_params(**params)
        return divergence
    return get_divergence(divergence, **params)
