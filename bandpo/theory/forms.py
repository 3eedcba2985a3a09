"""Shape rewrites that make SymPy results read like the published formulas.

None of these changes a value on the domain (all symbols positive, 0 < p < 1); every result that
goes into a record is re-checked by a residual anyway.
"""

from __future__ import annotations

import time

import sympy as sp

from bandpo.theory.checks import SymbolicTimeout, time_limit
from bandpo.theory.symbols import P

__all__ = ["factor_radicands", "merge_sqrt", "nice", "transcendental_generators"]

_Q = sp.Symbol("q", positive=True)  # q = 1 − p, so that results print as (1 − p)


def _is_sqrt(f: sp.Expr) -> bool:
    return f.is_Pow and f.exp in (sp.S.Half, -sp.S.Half)


def merge_sqrt(e: sp.Expr) -> sp.Expr:
    """√a·√b/√c → √(a·b/c) in every product (valid: the radicands are positive on the domain)."""

    def rule(m: sp.Expr) -> sp.Expr:
        sq = [f for f in m.args if _is_sqrt(f)]
        if len(sq) < 2:
            return m
        others = [f for f in m.args if not _is_sqrt(f)]
        inner = sp.Mul(*[f.base if f.exp > 0 else 1 / f.base for f in sq])
        # unevaluated: SymPy would split √(δ·x) back into √δ·√x for positive δ
        return sp.Mul(*others, sp.Pow(inner, sp.S.Half, evaluate=False), evaluate=False)

    return e.replace(lambda x: x.is_Mul, rule)


def factor_radicands(e: sp.Expr) -> sp.Expr:
    """Factor each square-root radicand, in terms of (1 − p) where that is shorter."""

    def rule(pw: sp.Expr) -> sp.Expr:
        b = pw.base
        forms = [b, sp.factor(b)]
        if b.has(P):
            forms.append(sp.factor(b.subs(P, 1 - _Q)).subs(_Q, 1 - P))
        best = min(forms, key=_score)
        if best == b:
            return pw
        return sp.Pow(best, pw.exp, evaluate=False)

    return e.replace(lambda x: _is_sqrt(x) and x.base.is_Add, rule)


def _score(e: sp.Expr) -> tuple[int, int]:
    return (sp.count_ops(e), len(str(e)))


def nice(e: sp.Expr, *, seconds: float = 3.0, around_one: bool = False) -> sp.Expr:
    """The shortest of a few equivalent forms of ``e`` (by operation count, then length).

    Args:
        e: Expression in p (and δ, r, ...), valid for 0 < p < 1.
        seconds: Wall-clock budget of all rewrites together (each one is also capped at 1 s;
            factor() can stall on high-degree radicals): ``e`` itself is always a candidate.
        around_one: Also try the shape 1 + (e − 1) (band ends: 1 ± distance), preferred on ties.
    """
    if e is None or not isinstance(e, sp.Expr) or e.is_Number:
        return e
    deadline = time.process_time() + seconds

    def attempt(fn, into: list) -> None:
        left = min(1.0, deadline - time.process_time())
        if left <= 0.02:
            return
        try:
            with time_limit(left):
                out = fn()
        except (SymbolicTimeout, NotImplementedError, TypeError, ValueError, RecursionError):
            return
        if out is not None and not out.has(sp.I, sp.zoo, sp.nan):
            into.append(out)

    cands: list[sp.Expr] = [e]
    attempt(lambda: sp.factor(e), cands)
    if sp.count_ops(e) < 60:
        attempt(lambda: sp.simplify(e), cands)
    attempt(lambda: merge_sqrt(sp.factor(e)), cands)
    if e.has(P):
        attempt(lambda: sp.simplify(e.subs(P, 1 - _Q)).subs(_Q, 1 - P), cands)
        attempt(lambda: merge_sqrt(sp.factor(e.subs(P, 1 - _Q))).subs(_Q, 1 - P), cands)
    for c in list(cands):
        attempt(lambda c=c: factor_radicands(c), cands)
    best = min(cands, key=_score)
    if around_one:
        dist: list[sp.Expr] = []
        for make in (
            lambda: sp.expand(e - 1),
            lambda: sp.factor(e - 1),
            lambda: sp.simplify(e - 1),
        ):
            attempt(lambda make=make: merge_sqrt(make()), dist)
        if e.has(P):
            attempt(lambda: merge_sqrt(sp.factor((e - 1).subs(P, 1 - _Q))).subs(_Q, 1 - P), dist)
        for d in list(dist):
            attempt(lambda d=d: factor_radicands(d), dist)
        if dist:
            shaped = 1 + min(dist, key=_score)
            if _score(shaped)[0] <= _score(best)[0] + 1:
                return shaped
    return best


def transcendental_generators(expr: sp.Expr, var: sp.Symbol) -> set[sp.Expr]:
    """The log/exp terms of ``expr`` (logs expanded) whose argument depends on ``var``.

    Two or more of them (``log(r)`` and ``log(1 − p·r)``) make ``expr = δ`` neither algebraic
    nor of the Lambert-W type a·x + b·log(x) = c, so ``solve`` cannot succeed there; callers
    skip the (slow) attempt and say so.
    """
    e = sp.expand_log(expr, force=True)
    return {a for a in e.atoms(sp.log, sp.exp) if a.has(var)} | {
        a for a in e.atoms(sp.Pow) if a.exp.has(var)
    }
