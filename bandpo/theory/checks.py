"""Checked claims: the :class:`Check` record and the machinery that decides its status.

Every statement the theory layer makes is a :class:`Check`.  A claim of the form
``expression == 0`` on the domain (0 < p < 1, δ > 0, 0 < r < 1/p) is checked in two stages:

1. **Symbolic.**  A chain of targeted SymPy rewrites (``cancel``, ``expand∘powsimp``,
   ``radsimp``, then ``simplify`` for small expressions), each under a CPU-time limit, first on
   the residual itself and then with p = 1/(1 + k), k > 0, substituted, which hands SymPy the
   assumption 0 < p < 1 through a positive symbol.  If any stage returns exactly 0 the claim is
   **proved**.
2. **Numerical.**  The residual is evaluated with mpmath at 50 significant digits (80 digits of
   working precision) at seeded random points of the domain.  When the symbolic stage failed, a
   residual below 10⁻⁴⁵ (relative to the given scale) marks the claim **numerical**: checked, not
   proved.  A numerical failure marks it **failed**, also when SymPy claimed 0.

A status is never "proved" unless a symbolic residual reduced to exactly 0 (or SymPy's
assumption system decided a sign, recorded as such in :attr:`Check.method`).
"""

from __future__ import annotations

import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import mpmath
import sympy as sp

from bandpo.theory.symbols import DELTA, K, P

__all__ = [
    "NUMERIC_DPS",
    "NUMERIC_TOL",
    "Check",
    "Status",
    "SymbolicTimeout",
    "check_numeric",
    "check_zero",
    "symbolic_zero",
    "time_limit",
]

Status = Literal["proved", "numerical", "failed", "not_applicable"]

#: Significant digits of the numerical stage.
NUMERIC_DPS = 50
#: Working precision of the numerical stage (guard digits for cancellation near p = 1).
_WORK_DPS = 80
#: A residual (relative to its scale) must be below this to pass at 50 digits.
NUMERIC_TOL = mpmath.mpf(10) ** -45

#: Seconds allowed to the symbolic stage of one claim before falling back to the numerical one.
SYMBOLIC_STEP_SECONDS = 3.0
# simplify() is only tried on residuals smaller than this (count_ops): it can run for minutes.
_SIMPLIFY_MAX_OPS = 120


@dataclass(frozen=True)
class Check:
    """One checked claim.

    Attributes:
        name: Short identifier, e.g. ``"upper.residual"``.
        statement: What is claimed (plain text, LaTeX allowed).
        status: ``"proved"`` (symbolic residual reduced to 0), ``"numerical"`` (only the
            50-digit numerical check passed), ``"failed"`` or ``"not_applicable"``.
        method: How the status was reached (the rewrite that gave 0, the points used, or why the
            claim does not apply).
        max_residual: Largest numerical residual seen (relative to the scale), as a float;
            ``None`` when no numerical stage ran.
        n_points: Number of points of the numerical stage.
    """

    name: str
    statement: str
    status: Status
    method: str
    max_residual: float | None = None
    n_points: int = 0

    @property
    def passed(self) -> bool:
        """True unless the check failed."""
        return self.status != "failed"

    def __str__(self) -> str:
        res = "" if self.max_residual is None else f", max residual {self.max_residual:.1e}"
        pts = f" at {self.n_points} points" if self.n_points else ""
        return f"[{self.status}] {self.name}: {self.statement} ({self.method}{pts}{res})"


class SymbolicTimeout(Exception):
    """A SymPy step ran past its CPU-time limit."""


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`SymbolicTimeout` after ``seconds`` of this process's CPU time (POSIX, main
    thread).

    CPU time, not wall-clock time, so that what is proved does not depend on how loaded the
    machine is (other processes, pytest-xdist workers).  Elsewhere (worker threads, Windows) the
    block runs without a limit.  Not re-entrant: an inner limit replaces an outer one, so callers
    keep SymPy steps unnested.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _raise(signum, frame):
        raise SymbolicTimeout(f"SymPy step exceeded {seconds:g} s of CPU time")

    previous = signal.signal(signal.SIGPROF, _raise)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _rewrites() -> list[tuple[str, Callable[[sp.Expr], sp.Expr]]]:
    return [
        ("cancel", sp.cancel),
        ("expand(powsimp)", lambda e: sp.expand(sp.powsimp(e))),
        ("radsimp", lambda e: sp.radsimp(sp.together(e))),
        ("simplify", sp.simplify),
    ]


def symbolic_zero(
    expr: sp.Expr,
    seconds: float = SYMBOLIC_STEP_SECONDS,
    domain: Sequence[tuple[str, Mapping[sp.Symbol, sp.Expr]]] = (),
) -> str | None:
    """Try to reduce ``expr`` to exactly 0 on the domain 0 < p < 1 with positive symbols.

    Args:
        expr: The residual.
        seconds: CPU-time budget of all rewrites together.
        domain: Further (label, substitution) pairs that encode a restriction of the domain the
            claim is made on (e.g. δ = 2/(1 + e), e > 0, for 0 < δ < 2); tried after the plain
            residual and after p = 1/(1 + k).

    Returns:
        A description of the rewrite that gave 0, or None when none did (within the time
        limits).
    """
    expr = sp.sympify(expr)
    if expr == 0:
        return "residual is identically 0"
    candidates = [("", expr)]
    if expr.has(P):
        candidates.append((" with p = 1/(1+k), k > 0", expr.subs(P, 1 / (1 + K))))
    for label, sub in domain:
        candidates.append((f" with {label}", expr.subs(sub)))
    deadline = time.process_time() + seconds
    for suffix, e in candidates:
        for label, fn in _rewrites():
            if label == "simplify" and sp.count_ops(e) > _SIMPLIFY_MAX_OPS:
                continue
            left = deadline - time.process_time()
            if left <= 0.05:
                return None
            try:
                with time_limit(left):
                    out = fn(e)
            except SymbolicTimeout:
                continue
            except (NotImplementedError, TypeError, ValueError, RecursionError):
                continue
            if out == 0:
                return f"{label}(residual) == 0{suffix}"
    return None


Point = Mapping[sp.Symbol, Any]


def _evaluate(expr: sp.Expr, symbols: Sequence[sp.Symbol], points: Iterable[Point]) -> list:
    fn = sp.lambdify(list(symbols), expr, modules="mpmath")
    out = []
    with mpmath.workdps(_WORK_DPS):
        for pt in points:
            out.append(fn(*[mpmath.mpf(pt[s]) for s in symbols]))
    return out


def numeric_residual(
    residual: sp.Expr, points: Sequence[Point], scale: sp.Expr | None = None
) -> mpmath.mpf:
    """max over points of |residual| / max(1, |scale|) at 80 working digits."""
    symbols = sorted(
        (residual.free_symbols | (scale.free_symbols if scale is not None else set())),
        key=lambda s: s.name,
    )
    vals = _evaluate(residual, symbols, points)
    scales = _evaluate(scale, symbols, points) if scale is not None else [1] * len(vals)
    worst = mpmath.mpf(0)
    with mpmath.workdps(_WORK_DPS):
        for v, s in zip(vals, scales, strict=True):
            v = mpmath.mpmathify(v)
            if not mpmath.isfinite(v):
                return mpmath.inf
            if mpmath.im(v) != 0:
                # a real quantity computed through complex radicals keeps a rounding-level
                # imaginary part; anything larger is a genuine failure
                if abs(mpmath.im(v)) > NUMERIC_TOL * max(1, abs(v)):
                    return mpmath.inf
                v = mpmath.re(v)
            worst = max(worst, abs(v) / max(mpmath.mpf(1), abs(mpmath.mpmathify(s))))
    return worst


def _as_float(x: Any) -> float:
    if mpmath.isinf(x):
        return math.inf
    return float(mpmath.mpf(x)) if x != 0 else 0.0


def check_zero(
    name: str,
    statement: str,
    residual: sp.Expr,
    points: Sequence[Point],
    *,
    scale: sp.Expr | None = None,
    symbolic: bool = True,
    domain: Sequence[tuple[str, Mapping[sp.Symbol, sp.Expr]]] = (),
) -> Check:
    """Check the claim ``residual == 0``: symbolically first, then at 50 digits at ``points``.

    Args:
        name, statement: Identify the claim.
        residual: SymPy expression claimed to vanish on the domain.
        points: Numerical-stage points, each a mapping symbol -> value (mpf or decimal str).
        scale: Residuals are measured relative to max(1, |scale|).
        symbolic: False skips the symbolic stage (then the status is at best "numerical").
        domain: Substitutions that restrict the domain for the symbolic stage (see
            :func:`symbolic_zero`); the statement must say the claim is made on that domain.

    Returns:
        The :class:`Check`: "proved" when the symbolic stage gave 0 and the numerical stage
        agrees, "numerical" when only the numerical stage passed, "failed" otherwise.
    """
    how = symbolic_zero(residual, domain=domain) if symbolic else None
    worst = numeric_residual(residual, points, scale) if points else None
    ok_num = worst is not None and worst <= NUMERIC_TOL
    if how is not None and (worst is None or ok_num):
        status: Status = "proved"
        method = how + ("; confirmed at 50 digits" if ok_num else "")
    elif how is not None:
        status, method = "failed", f"{how}, but the 50-digit residual is {_as_float(worst):.1e}"
    elif ok_num:
        status = "numerical"
        method = "SymPy did not reduce the residual to 0; 50-digit residual at seeded points"
    else:
        status, method = "failed", "symbolic residual not 0 and the 50-digit residual is not small"
    return Check(
        name,
        statement,
        status,
        method,
        None if worst is None else _as_float(worst),
        len(points),
    )


def check_numeric(
    name: str,
    statement: str,
    errors: Sequence[Any],
    *,
    tol: Any = NUMERIC_TOL,
    method: str,
) -> Check:
    """A claim checked only numerically: pass when every error is ≤ ``tol`` (never "proved")."""
    worst = max((abs(mpmath.mpmathify(e)) for e in errors), default=mpmath.mpf(0))
    status: Status = "numerical" if errors and worst <= tol else "failed"
    return Check(name, statement, status, method, _as_float(worst), len(errors))


def proved(name: str, statement: str, method: str) -> Check:
    """A claim SymPy established without a residual (a limit, a sign from its assumptions)."""
    return Check(name, statement, "proved", method)


def not_applicable(name: str, statement: str, reason: str) -> Check:
    """A claim that does not apply to this divergence, with the reason."""
    return Check(name, statement, "not_applicable", reason)


def failed(name: str, statement: str, reason: str) -> Check:
    """A claim that could not be established at all."""
    return Check(name, statement, "failed", reason)


# ------------------------------------------------------------------------------ sample points


def log_uniform(rng: random.Random, lo: float, hi: float) -> str:
    """A decimal string log-uniform in [lo, hi] (strings keep the points exact in mpmath)."""
    return repr(10 ** rng.uniform(math.log10(lo), math.log10(hi)))


def domain_points(
    seed: int, n: int, *, with_delta: bool = True, delta_range: tuple[float, float] = (1e-4, 2.0)
) -> list[dict[sp.Symbol, str]]:
    """Seeded points (p, δ): p log-uniform towards both ends of (0, 1), δ log-uniform."""
    rng = random.Random(seed)
    pts = []
    for i in range(n):
        if i % 2 == 0:
            p = log_uniform(rng, 1e-6, 0.5)
        else:
            with mpmath.workdps(_WORK_DPS):
                p = mpmath.nstr(1 - mpmath.mpf(log_uniform(rng, 1e-6, 0.5)), 40)
        pt = {P: p}
        if with_delta:
            pt[DELTA] = log_uniform(rng, *delta_range)
        pts.append(pt)
    return pts


def elapsed(t0: float) -> float:
    """Seconds since ``t0`` (``time.perf_counter``)."""
    return time.perf_counter() - t0
