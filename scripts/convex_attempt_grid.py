"""Measure every (solver pass, formulation) attempt of convex_bound on its own, per case and end.

Usage:
    python scripts/convex_attempt_grid.py --vocab 1000 --out out/grid_1000.jsonl
    python scripts/convex_attempt_grid.py --vocab 32768 --shapes zipf,dirichlet \\
        --divergences kl,chi2 --out out/grid_32768.jsonl
    python scripts/convex_attempt_grid.py --summarise out/grid_1000.jsonl out/grid_32768.jsonl

For each divergence, distribution shape (``bandpo.solvers.convex_reduction.draw_distribution``,
seed 100 + shape index) and action kind (head, sampled, tail), each end of the band is solved by
``convex_bound(..., attempts=[(key, formulation)])`` for every pair asked for, and compared with
the oracle at issue 5's bar (relative 1e-6, absolute 1e-9 below 1e-3).  One JSON line per
attempt: the case, the pair, the outcome ("ok", "WRONG <err>" or the status of the rejected
attempt) and the wall time.

``--summarise`` reads such files and prints, per end, how often each pair succeeded and a greedy
order (the pair that solves most of the cases left, ties to the faster): how
``bandpo.solvers.convex.FALLBACK_ORDER`` was chosen.  A "WRONG" outcome would mean a certified
answer disagrees with the oracle, a bug, and is printed loudly.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from bandpo.cli.bench import parse_divergences
from bandpo.solvers.convex import (
    FORMULATIONS,
    SOLVER_TOLERANCES,
    ConvexSolveError,
    convex_bound,
)
from bandpo.solvers.convex_reduction import (
    SHAPES,
    compare_to_oracle,
    draw_actions,
    draw_distribution,
    reduction_p,
)
from bandpo.solvers.oracle import oracle_band


def run_grid(args: argparse.Namespace) -> None:
    pairs = [tuple(x.split("/")) for x in args.pairs.split(",")]
    for key, form in pairs:
        if key not in SOLVER_TOLERANCES or form not in FORMULATIONS:
            sys.exit(f"unknown pair {key}/{form}: keys {sorted(SOLVER_TOLERANCES)}, {FORMULATIONS}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shapes = args.shapes.split(",")
    kinds = args.kinds.split(",")
    with out.open("a") as fh:
        for div in parse_divergences(args.divergences):
            for shape in shapes:
                rng = np.random.default_rng(100 + SHAPES.index(shape))
                q, _ = draw_distribution(shape, args.vocab, rng)
                for kind, a in draw_actions(q, rng):
                    if kind not in kinds:
                        continue
                    band = oracle_band(reduction_p(q, a), args.delta, div)
                    for side in ("lower", "upper"):
                        ref = float(band.lower if side == "lower" else band.upper)
                        for solver, form in pairs:
                            if form in ("scaled", "perspective") and side == "lower":
                                continue  # upper-bound formulations
                            t0 = time.perf_counter()
                            try:
                                sol = convex_bound(
                                    q, a, args.delta, div, side=side, attempts=[(solver, form)]
                                )
                                err, _, ok = compare_to_oracle(sol.value, ref)
                                outcome = "ok" if ok else f"WRONG {err:.2e}"
                            except ConvexSolveError as exc:
                                outcome = exc.attempts[-1].status
                            rec = {
                                "divergence": div.key,
                                "n_tokens": args.vocab,
                                "shape": shape,
                                "kind": kind,
                                "p": float(q[a]),
                                "side": side,
                                "solver": solver,
                                "formulation": form,
                                "outcome": outcome,
                                "time_s": round(time.perf_counter() - t0, 3),
                            }
                            fh.write(json.dumps(rec) + "\n")
                            fh.flush()
                            print(
                                f"{div.key:10s} N={args.vocab} {shape:9s} {kind:7s} {side:5s} "
                                f"{solver}/{form}: {outcome} ({rec['time_s']:.1f} s)",
                                flush=True,
                            )


def _score(pair: str, left: set, cases: dict) -> tuple[int, float]:
    """(cases in ``left`` the pair solves, minus its summed time on them): the greedy key."""
    won = [c for c in left if cases[c].get(pair, (False, 0.0))[0]]
    return len(won), -sum(cases[c][pair][1] for c in left if pair in cases[c])


def summarise(paths: list[str]) -> None:
    rows = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines()]
    for side in ("lower", "upper"):
        cases: dict[tuple, dict[str, tuple[bool, float]]] = collections.defaultdict(dict)
        for r in rows:
            if r["side"] != side:
                continue
            case = (r["divergence"], r["n_tokens"], r["shape"], r["kind"])
            cases[case][f"{r['solver']}/{r['formulation']}"] = (r["outcome"] == "ok", r["time_s"])
            if r["outcome"].startswith("WRONG"):
                print(f"!!! certified answer disagrees with the oracle: {r}")
        pairs = sorted({p for v in cases.values() for p in v})
        print(f"\n{side} end: {len(cases)} cases")
        for p in pairs:
            tried = [c for c in cases if p in cases[c]]
            ok = [c for c in tried if cases[c][p][0]]
            mean_t = sum(cases[c][p][1] for c in tried) / max(len(tried), 1)
            print(f"  {p:42s} {len(ok):4d}/{len(tried):<4d} ok, mean {mean_t:.2f} s")
        left, order = set(cases), []
        while left:
            best = max(pairs, key=lambda p, left=left, cases=cases: _score(p, left, cases))
            won = _score(best, left, cases)[0]
            if won == 0:
                break
            order.append(f"{best} (+{won})")
            left = {c for c in left if not cases[c].get(best, (False, 0.0))[0]}
        print("  greedy order: " + ", ".join(order))
        print(f"  solved by no pair: {sorted(left) if left else 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument(
        "--divergences", default="all", help="kl,tv,alpha=2,... or 'all' (the golden set)"
    )
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--kinds", default="head,sampled,tail")
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument(
        "--pairs",
        default=",".join(f"{k}/{f}" for k in SOLVER_TOLERANCES if k != "SCS" for f in FORMULATIONS),
        help="comma-separated solver-key/formulation pairs",
    )
    ap.add_argument("--out", default="out/convex_attempt_grid.jsonl")
    ap.add_argument("--summarise", nargs="+", metavar="JSONL")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # CVXPY's inaccuracy warnings: the outcome column has them
    if args.summarise:
        summarise(args.summarise)
    else:
        run_grid(args)


if __name__ == "__main__":
    main()
