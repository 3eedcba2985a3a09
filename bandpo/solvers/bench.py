"""Benchmark of ``band_bounds`` against the paper-style bisection and a bare ``torch.exp``.

Each row times one (divergence, dtype, device, path) on the same tensor of n log-probabilities
and reports:

* ``time_s`` and ``elements_per_s`` of ``band_bounds`` (median of ``repeats``);
* ``speedup_vs_paper``: time of :func:`~bandpo.solvers.baselines.paper_bisection` on the same
  tensor divided by ``time_s`` (measured in the same run);
* ``time_vs_exp``: the median over repeats of (solver time)/(mean of a ``torch.exp`` on the same
  tensor timed just before and just after), so that machine load affects both alike;
* ``worst_rel_error`` / ``worst_ulp``: the worst error of the same path on the golden tables
  (every δ, normal references only; ulps of the output dtype).

CPU times are the process's CPU time (all threads), GPU times wall clock after a sync.  Timings
on a shared machine are noisy: compare the ratios of one run, never absolute times across runs
or devices.  ``bandpo bench`` and ``benchmarks/bench_band.py`` are thin wrappers.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from bandpo.divergences import Divergence
from bandpo.golden import GOLDEN_DELTAS, golden_divergences, load_golden
from bandpo.solvers import _band_closed, _band_root
from bandpo.solvers import band as _band
from bandpo.solvers.baselines import paper_bisection

__all__ = ["BenchRow", "golden_error", "render_table", "run_bench", "write_json"]


@dataclass(frozen=True)
class BenchRow:
    """One benchmark measurement (see the module docstring for the columns)."""

    divergence: str
    dtype: str
    device: str
    path: str  # "eager" or "fused" (torch.compile)
    method: str  # "closed form (family)" or "root finder (k Newton steps per end)"
    n: int
    time_s: float
    elements_per_s: float
    paper_time_s: float
    speedup_vs_paper: float
    exp_time_s: float
    time_vs_exp: float
    worst_rel_error: float
    worst_ulp: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Best time of ``fn``: wall clock (after a device sync) on CUDA; on CPU the process's CPU
    time (all threads), which other processes sharing the cores disturb far less than the
    wall clock does."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        t0 = clock()
        fn()
        _sync(device)
        best = min(best, clock() - t0)
    return best


def _method(div: Divergence) -> str:
    match = _band_closed.closed_match(div)
    if match is not None:
        scale = "" if match.scale == 1 else f", δ/{match.scale:g}"
        return f"closed form ({match.family}{scale})"
    if _band_root.kl_scale(div) is not None:  # the eager KL form (Python-number δ)
        return f"root finder ({_band_root.KL_ITER} Halley + 1 Newton steps/end, kl form)"
    kind = _band_root.consts_of(div).kind
    return f"root finder ({_band_root.N_ITER[kind]} Newton steps/end, {kind})"


def golden_error(div: Divergence, dtype: torch.dtype, solve) -> tuple[float, float]:
    """Worst relative error and worst ulp error of ``solve(log_p, delta)`` on the golden table.

    Only references that are finite, non-zero and normal in ``dtype`` count (as in the bars).
    """
    table = load_golden(div)
    ref_lo, ref_up = table.reference(dtype)
    tiny = torch.finfo(dtype).tiny
    worst_rel = 0.0
    worst_ulp = 0.0
    for d in GOLDEN_DELTAS:
        m = table.delta == d
        got = solve(torch.tensor(table.log_p[m], dtype=dtype), d)
        for g, ref in ((got.lower, ref_lo[m]), (got.upper, ref_up[m])):
            g = g.detach().cpu().double().numpy()
            ref = ref.astype(np.float64)
            ok = np.isfinite(ref) & (np.abs(ref) >= tiny)
            if not ok.any():
                continue
            err = np.abs(g[ok] - ref[ok])
            worst_rel = max(worst_rel, float(np.max(err / np.abs(ref[ok]))))
            spacing = np.spacing(np.abs(ref[ok]).astype(_np_dtype(dtype)))
            worst_ulp = max(worst_ulp, float(np.max(err / spacing)))
    return worst_rel, worst_ulp


def _np_dtype(dtype: torch.dtype):
    return {torch.float64: np.float64, torch.float32: np.float32}[dtype]


def _measure(div, x, device, path: str, delta: float, repeats: int, paper_t: float) -> BenchRow:
    def solve(lp, d):  # what band_bounds(lp, d, div) runs (validation included) on this path
        return _band._solve(div, lp, d, fused=path == "fused", top=_band._checked_max(lp))

    solve(x, delta)  # warm-up (and compilation, for the fused path)
    # exp, solver, exp back to back: each ratio compares runs under the same machine load, and
    # the median over repeats discards the runs that load disturbed most
    exp_fn = functools.partial(torch.exp, x)
    band_ts, ratios, exp_ts = [], [], []
    for _ in range(repeats):
        e0 = _best_time(exp_fn, device, 1)
        b = _best_time(functools.partial(solve, x, delta), device, 1)
        e1 = _best_time(exp_fn, device, 1)
        band_ts.append(b)
        exp_ts.append((e0 + e1) / 2)
        ratios.append(b / max((e0 + e1) / 2, 1e-9))
    band_t = float(np.median(band_ts))
    exp_t = float(np.median(exp_ts))
    time_vs_exp = float(np.median(ratios))
    rel, ulp = golden_error(div, x.dtype, solve)
    n = x.numel()
    return BenchRow(
        divergence=div.display_name,
        dtype=str(x.dtype).replace("torch.", ""),
        device=str(device),
        path=path,
        method=_method(div),
        n=n,
        time_s=band_t,
        elements_per_s=n / band_t,
        paper_time_s=paper_t,
        speedup_vs_paper=paper_t / band_t,
        exp_time_s=exp_t,
        time_vs_exp=time_vs_exp,
        worst_rel_error=rel,
        worst_ulp=ulp,
    )


def run_bench(
    *,
    n: int = 2**20,
    divergences: Sequence[Divergence] | None = None,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    devices: Sequence[str] | None = None,
    paths: Sequence[str] = ("eager",),
    delta: float = 0.05,
    repeats: int = 5,
    paper_repeats: int = 1,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Time ``band_bounds`` for every (device, dtype, divergence, path) and check it on golden.

    Args:
        n: Elements per tensor (log p of uniform p in (0, 1)).
        divergences: Divergences (default: every golden one, ``alpha`` at −1, ½ and 2).
        dtypes: float32 and/or float64.
        devices: e.g. ``["cpu", "cuda"]`` (default: CPU, plus CUDA when present).
        paths: ``"eager"`` and/or ``"fused"`` (torch.compile; the first call compiles and is not
            timed).
        delta: δ of the timed calls (golden errors use every golden δ).
        repeats: Timed repetitions of the solver and of ``torch.exp`` (medians are kept).
        paper_repeats: Timed repetitions of the paper-style bisection.
        seed: Seed of the input tensor.
        progress: Called with a short label before each measurement.

    Returns:
        One :class:`BenchRow` per combination.
    """
    divs = list(divergences) if divergences is not None else golden_divergences()
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(n, generator=gen, dtype=torch.float64).clamp_min(1e-300).log()
    rows: list[BenchRow] = []
    for dev_name in devices:
        device = torch.device(dev_name)
        for dtype in dtypes:
            x = base.to(device=device, dtype=dtype)
            for div in divs:
                if progress:
                    progress(f"{div.display_name} {str(dtype).replace('torch.', '')} {dev_name}")
                paper_t = _best_time(
                    functools.partial(paper_bisection, x, delta, div), device, paper_repeats
                )
                for path in paths:
                    rows.append(_measure(div, x, device, path, delta, repeats, paper_t))
    return rows


def render_table(rows: Sequence[BenchRow]):
    """A rich Table of the rows."""
    from rich.table import Table

    table = Table(title="band_bounds benchmark (ratios measured in the same run)")
    for col in (
        "divergence",
        "dtype",
        "device",
        "path",
        "n",
        "time [ms]",
        "elements/s",
        "× paper bisection",
        "time / torch.exp",
        "worst rel err",
        "worst ulp",
        "method",
    ):
        table.add_column(col, justify="left" if col in ("divergence", "method") else "right")
    for r in rows:
        table.add_row(
            r.divergence,
            r.dtype,
            r.device,
            r.path,
            f"{r.n:,}",
            f"{r.time_s * 1e3:.2f}",
            f"{r.elements_per_s:.3g}",
            f"{r.speedup_vs_paper:.1f}",
            f"{r.time_vs_exp:.2f}",
            f"{r.worst_rel_error:.2e}",
            f"{r.worst_ulp:.1f}",
            r.method,
        )
    return table


def write_json(rows: Sequence[BenchRow], out_dir: str | os.PathLike, **meta) -> Path:
    """Write ``bench_band.json`` (rows plus the machine and library versions) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench_band.json"
    payload = {
        "rows": [asdict(r) for r in rows],
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        **meta,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path
