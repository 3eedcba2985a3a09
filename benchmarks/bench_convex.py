"""Time convex_bound per end of the band at vocabulary scale, checked against the oracle.

.venv/bin/python benchmarks/bench_convex.py --vocab 151936 --divergences kl,tv,chi2 \\
    --out out/bench_convex.json

For each divergence and distribution shape (``draw_distribution``, seed = N), every action kind
(head, sampled, tail with p < 1e-6) and both ends are solved with ``convex_bound`` (the default
fallback order) and compared with ``oracle_band`` at p = q[a]/Σq at issue 5's bar (relative 1e-6,
absolute 1e-9 below 1e-3).  Prints a table and writes JSON: per bound the wall time (build, all
attempts, certificate), the accepted pass and the error.

Times are absolute seconds on the machine that runs it, because issue 5's bars are (≤ 10 s per
bound at N = 32,768, ≤ 60 s at N = 151,936, on a 2-core machine); a loaded machine inflates them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bandpo.cli.bench import parse_divergences
from bandpo.solvers.convex import ConvexSolveError, convex_bound
from bandpo.solvers.convex_reduction import (
    compare_to_oracle,
    draw_actions,
    draw_distribution,
    reduction_p,
)
from bandpo.solvers.oracle import oracle_band


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=151_936)
    ap.add_argument("--divergences", default="kl,tv,chi2")
    ap.add_argument("--shapes", default="dirichlet")
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--out", default="out/bench_convex.json")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # CVXPY's inaccuracy warnings: each attempt records them
    rows = []
    table = Table(title=f"convex_bound at N = {args.vocab}, δ = {args.delta:g}")
    for col in ("divergence", "shape", "action", "p", "end", "value", "error", "pass", "time s"):
        table.add_column(col, justify="left" if col in ("divergence", "shape", "end") else "right")
    for div in parse_divergences(args.divergences):
        for shape in args.shapes.split(","):
            rng = np.random.default_rng(args.vocab)
            q, _ = draw_distribution(shape, args.vocab, rng)
            for kind, a in draw_actions(q, rng):
                band = oracle_band(reduction_p(q, a), args.delta, div)
                for side in ("lower", "upper"):
                    ref = float(band.lower if side == "lower" else band.upper)
                    t0 = time.perf_counter()
                    try:
                        sol = convex_bound(q, a, args.delta, div, side=side)
                        value, accepted = sol.value, f"{sol.solver}/{sol.formulation}"
                        err, _, ok = compare_to_oracle(value, ref)
                    except ConvexSolveError as exc:
                        value, accepted, err, ok = None, f"error: {exc.status}", None, False
                    elapsed = time.perf_counter() - t0
                    rows.append(
                        {
                            "divergence": div.key,
                            "n_tokens": args.vocab,
                            "shape": shape,
                            "action": kind,
                            "p": float(q[a]),
                            "side": side,
                            "oracle": ref,
                            "value": value,
                            "error": err,
                            "passed": ok,
                            "accepted": accepted,
                            "time_s": elapsed,
                        }
                    )
                    table.add_row(
                        div.key,
                        shape,
                        kind,
                        f"{q[a]:.3g}",
                        side,
                        "-" if value is None else f"{value:.10g}",
                        "-" if err is None else f"{err:.1e}",
                        "ok" if ok else "FAIL",
                        f"{elapsed:.1f}",
                    )
    Console(width=140).print(table)  # readable when piped to a log
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "python": platform.python_version()}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
