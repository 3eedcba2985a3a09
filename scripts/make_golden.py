"""Write the golden tables (bandpo/data/golden/*.tsv) from the mpmath oracle.

Usage:  python scripts/make_golden.py [--dps 50] [--jobs 2] [--only KEY ...]

Every row is oracle_band_detail(exp(log_p), delta) at `dps` digits (working precision dps + 60),
with p = exp(log_p) evaluated exactly from the float32-exact log_p.  Takes about a minute on
two cores.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

import mpmath
import sympy

import bandpo
from bandpo.divergences import Divergence
from bandpo.golden import (
    COLUMNS,
    GOLDEN_DELTAS,
    GOLDEN_DIGITS,
    golden_divergences,
    golden_log_p_grid,
)
from bandpo.solvers.oracle import oracle_band_detail

OUT = Path(__file__).resolve().parent.parent / "bandpo" / "data" / "golden"


def golden_row(div: Divergence, log_p: float, delta: float, dps: int) -> str:
    """One TSV row: the oracle band at p = exp(log_p) (exact), as 36-digit decimals."""
    with mpmath.workdps(dps + 60):
        p = mpmath.exp(mpmath.mpf(log_p))
    d = oracle_band_detail(p, delta, div, dps=dps)
    with mpmath.workdps(dps):
        fields = [
            repr(float(log_p)),
            repr(float(delta)),
            mpmath.nstr(p, GOLDEN_DIGITS, strip_zeros=False),
            _fmt(d.lower),
            _fmt(d.upper),
            str(int(d.lower_saturated)),
            str(int(d.upper_saturated)),
        ]
    return "\t".join(fields)


def _fmt(x) -> str:
    if x == 0:
        return "0"
    return mpmath.nstr(x, GOLDEN_DIGITS, strip_zeros=False, min_fixed=-4, max_fixed=8)


def _work(args):
    key, params, log_p, delta, dps = args
    div = bandpo.get_divergence(key, **params)
    return golden_row(div, log_p, delta, dps)


def write_table(div: Divergence, dps: int, pool, command: str) -> Path:
    grid = golden_log_p_grid()
    tasks = [(div.name, dict(div.params), lp, d, dps) for lp in grid for d in GOLDEN_DELTAS]
    rows = pool.map(_work, tasks, chunksize=16)
    header = [
        f"# divergence: {div.display_name}",
        f"# f(u): {div.f}",
        f"# command: {command}",
        f"# versions: bandpo {bandpo.__version__}, mpmath {mpmath.__version__}, "
        f"sympy {sympy.__version__}, python {platform.python_version()}",
        f"# precision: oracle dps={dps} (working dps={dps + 60}); values to {GOLDEN_DIGITS} "
        "significant digits",
        "# p: exp(log_p) evaluated exactly; log_p values are float32-exact",
        "# saturated: 1 when the end is exactly 0 (lower) or 1/p (upper)",
    ]
    path = OUT / f"{div.key}.tsv"
    path.write_text("\n".join([*header, "\t".join(COLUMNS), *rows]) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dps", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="table keys, e.g. kl alpha_0.5")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    command = "python scripts/make_golden.py" + (f" --dps {args.dps}" if args.dps != 50 else "")
    with mp.Pool(args.jobs) as pool:
        for div in golden_divergences():
            if args.only and div.key not in args.only:
                continue
            t0 = time.perf_counter()
            path = write_table(div, args.dps, pool, command)
            print(f"{path.name:18s} {time.perf_counter() - t0:6.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
