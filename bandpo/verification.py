"""The verification matrix behind ``bandpo verify``: every layer checked against the others.

Sections (each a list of independent checks, run in this order):

1. **theory** – :func:`bandpo.theory.derive` for every registered divergence (``alpha`` at the
   golden α values): each claim of the record (closed forms, thresholds, limits, expansion,
   mirror identity, convexity) is proved symbolically or checked at 50 digits; a check passes
   unless one claim *failed*.
2. **torch** – :func:`bandpo.band_bounds` against the golden tables in float64 and float32, through
   :func:`bandpo.testing.check_solver` (errors per p-decade, invariants, end cases); the worst
   error in ulps is measured separately for the verification figure.
3. **convex** – :func:`bandpo.solvers.convex.verify_reduction`: CVXPY over a whole vocabulary
   (moderate size by default, vocabulary scale with ``full=True``) against the mpmath oracle, and
   the spread of π_i/q_i over the other tokens (the two-point reduction of THEORY.md §2).

The report (:class:`VerifyReport`) renders as a rich table, as ``report.md`` (GitHub-readable,
figures embedded) and as ``report.json``.  A check that raises is recorded as failed with its
error message: the matrix always runs to the end.
"""

from __future__ import annotations

import json
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bandpo.divergences import Divergence

__all__ = ["CheckResult", "VerifyConfig", "VerifyReport", "plan_checks", "run_verification"]

SECTIONS: tuple[str, ...] = ("theory", "torch", "convex", "figures")


@dataclass
class CheckResult:
    """Outcome of one check of the matrix.

    Attributes:
        section: ``"theory"``, ``"torch"``, ``"convex"`` or ``"figures"``.
        name: What was checked (``"kl"``, ``"kl float32"``, ``"chi2 N=1000"``).
        passed: Whether the check passed.
        summary: One line for the summary table.
        seconds: Wall time of the check.
        details: JSON-serialisable details (the underlying report's dict where there is one).
    """

    section: str
    name: str
    passed: bool
    summary: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifyConfig:
    """What ``bandpo verify`` runs.

    Attributes:
        full: Run the vocabulary-scale CVXPY cases (N = 32,768, and N = 151,936 for kl, tv, chi2).
        vocab_size: Vocabulary size of the default CVXPY cases.
        n_cases: Distributions drawn per divergence and vocabulary size.
        seed: Seed of those draws.
        dtypes: Names of the torch dtypes checked against the golden tables.
        figures: Whether to draw the figures.
        workers: Worker processes for the CVXPY checks, which then run beside the SymPy and
            torch checks (0: everything in this process, in order).  Two workers and the main
            process share this machine's two cores: CVXPY is most of the matrix's CPU time.
    """

    full: bool = False
    vocab_size: int = 1000
    n_cases: int = 4
    seed: int = 0
    dtypes: tuple[str, ...] = ("float64", "float32")
    figures: bool = True
    workers: int = 2


@dataclass
class VerifyReport:
    """All check results, the figures written and the environment.

    Attributes:
        results: One :class:`CheckResult` per check, in run order.
        figures: Figure paths relative to the output directory.
        seconds: Total wall time.
        config: The :class:`VerifyConfig` used.
        environment: Library versions and platform.
    """

    results: list[CheckResult]
    figures: list[str]
    seconds: float
    config: VerifyConfig
    environment: dict[str, str]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(r.passed for r in self.results)

    @property
    def n_failed(self) -> int:
        """Number of failed checks."""
        return sum(not r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``report.json``)."""
        return {
            "passed": self.passed,
            "n_checks": len(self.results),
            "n_failed": self.n_failed,
            "seconds": round(self.seconds, 2),
            "config": asdict(self.config),
            "environment": self.environment,
            "figures": self.figures,
            "results": [_jsonable(asdict(r)) for r in self.results],
        }

    def section_rows(self) -> list[tuple[str, int, int, float]]:
        """(section, checks, failed, seconds) per section, in :data:`SECTIONS` order."""
        rows = []
        for s in SECTIONS:
            rs = [r for r in self.results if r.section == s]
            if rs:
                rows.append((s, len(rs), sum(not r.passed for r in rs), sum(r.seconds for r in rs)))
        return rows

    def rich_table(self) -> Any:
        """The summary as a :class:`rich.table.Table` (one row per check)."""
        from rich.table import Table

        table = Table(title=f"bandpo verify: {_verdict(self)}", show_lines=False)
        for col in ("section", "check", "result", "time", "summary"):
            table.add_column(col, overflow="fold", justify="right" if col == "time" else "left")
        for r in self.results:
            mark = "[green]pass[/green]" if r.passed else "[bold red]FAIL[/bold red]"
            table.add_row(r.section, r.name, mark, f"{r.seconds:.1f}s", r.summary)
        return table

    def to_markdown(self) -> str:
        """``report.md``: verdict, per-section counts, every check, and the figures."""
        lines = [
            "# bandpo verification report",
            "",
            f"**{_verdict(self)}**: {len(self.results)} checks, {self.n_failed} failed, "
            f"{self.seconds:.0f} s.",
            "",
            "Reproduce with `make verify` (= `bandpo verify --out out/verify`)"
            + (
                " and `--full`."
                if self.config.full
                else "; `--full` adds the vocabulary-scale CVXPY cases."
            ),
            "",
            "| section | checks | failed | time |",
            "|---|---:|---:|---:|",
        ]
        for s, n, bad, sec in self.section_rows():
            lines.append(f"| {s} | {n} | {bad} | {sec:.1f} s |")
        titles = {
            "theory": "Theory: SymPy derivations and checks (`bandpo.theory.derive`)",
            "torch": "Torch solver against the golden tables (`bandpo.testing.check_solver`)",
            "convex": "CVXPY over the full simplex against the oracle, and the reduction",
            "figures": "Figures",
        }
        for s in SECTIONS:
            rs = [r for r in self.results if r.section == s]
            if not rs:
                continue
            lines += ["", f"## {titles[s]}", "", "| check | result | time | summary |"]
            lines.append("|---|---|---:|---|")
            for r in rs:
                mark = "pass" if r.passed else "**FAIL**"
                summary = r.summary.replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {r.name} | {mark} | {r.seconds:.1f} s | {summary} |")
        if self.figures:
            lines += ["", "## Figures", ""]
            for fig in self.figures:
                if fig.endswith(".png"):
                    stem = Path(fig).stem.replace("_", " ")
                    lines += [f"### {stem}", "", f"![{stem}]({fig})", ""]
        lines += ["", "## Environment", ""]
        lines += [f"- {k}: {v}" for k, v in self.environment.items()]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``report.md`` and ``report.json`` into ``out_dir``; return both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, js = out / "report.md", out / "report.json"
        md.write_text(self.to_markdown())
        js.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return md, js


def _verdict(report: VerifyReport) -> str:
    return "PASSED" if report.passed else f"FAILED ({report.n_failed} checks)"


def _jsonable(x: Any) -> Any:
    """Convert numpy scalars/arrays, mpmath numbers, paths and dtypes into JSON types."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float):
        return x if np.isfinite(x) else str(x)
    if isinstance(x, str | int | bool) or x is None:
        return x
    return str(x)


def _environment() -> dict[str, str]:
    import importlib.metadata as md

    env = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for pkg in ("bandpo", "torch", "sympy", "mpmath", "cvxpy", "clarabel", "numpy"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = "not installed"
    return env


# ------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class _Task:
    section: str
    name: str
    run: Callable[[], CheckResult]
    weight: float = 1.0
    # (module-level function, args) that a worker process can run instead of ``run``; it
    # returns (CheckResult, figure points)
    job: tuple[Callable[..., Any], tuple] | None = None


def _theory_check(div: Divergence) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        from bandpo.theory import derive

        record = derive(div.name, **dict(div.params))
        checks = list(getattr(record, "checks", []))
        if not checks:
            return CheckResult(
                "theory", div.display_name, False, "derive() returned no checks", 0.0
            )
        counts: dict[str, int] = {}
        for c in checks:
            counts[c.status] = counts.get(c.status, 0) + 1
        failed = [c for c in checks if not c.passed]
        closed = [end for end in ("lower", "upper") if getattr(record, end, None) is not None]
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        summary += f"; closed form: {'+'.join(closed) if closed else 'none'}"
        if failed:
            summary += "; failed: " + ", ".join(c.name for c in failed)
        details = {
            "closed_form": closed,
            "checks": [
                {
                    "name": c.name,
                    "statement": c.statement,
                    "status": c.status,
                    "method": c.method,
                    "max_residual": c.max_residual,
                }
                for c in checks
            ],
        }
        return CheckResult("theory", div.display_name, not failed, summary, 0.0, details)

    return run


def _torch_check(div: Divergence, dtype_name: str, ulps: dict[str, Any]) -> Callable:
    def run() -> CheckResult:
        import torch

        from bandpo.solvers.band import band_bounds
        from bandpo.tolerances import tolerance_for
        from bandpo.visualize.verification import solver_ulp_errors

        dtype = getattr(torch, dtype_name)
        err = solver_ulp_errors(band_bounds, [div], [dtype])[0]
        ulps[(div.key, dtype_name)] = err
        worst = err.worst_ulp
        name = f"{div.display_name} {dtype_name}"
        try:
            from bandpo.testing import check_solver
        except ImportError:
            check_solver = None
        if check_solver is None:
            # bandpo.testing absent: fall back to the ulp comparison against the dtype's bar.
            bar = tolerance_for(dtype).ulp
            ok = bool(np.isfinite(worst) and worst <= bar)
            return CheckResult(
                "torch",
                name,
                ok,
                f"worst {worst:.3g} ulp (bar {bar:.3g}); bandpo.testing not installed",
                0.0,
                {"worst_ulp": worst, "bar_ulp": bar},
            )
        report = check_solver(
            band_bounds,
            divergence=div.name,
            delta=_golden_deltas(),
            dtypes=(dtype,),
            # accuracy, invariants and end cases only: throughput is `bandpo bench`'s job, and
            # timing loops would dominate the verify budget
            speed_n=None,
            **dict(div.params),
        )
        details = report.to_dict() if hasattr(report, "to_dict") else {}
        rel = report.max_rel_error(dtype_name)
        summary = f"max rel. error {rel:.2g}, worst {worst:.3g} ulp"
        if not report.passed:
            failed = sorted({c.name for c in report.failures})
            summary += "; failed: " + ", ".join(failed)
            if report.codes:
                summary += " (" + ", ".join(sorted(report.codes)) + ")"
        return CheckResult("torch", name, bool(report.passed), summary, 0.0, _jsonable(details))

    return run


def _golden_deltas() -> tuple[float, ...]:
    from bandpo.golden import GOLDEN_DELTAS

    return GOLDEN_DELTAS


def _convex_job(
    name: str, params: dict[str, float], vocab_size: int, n_cases: int, seed: int
) -> tuple[CheckResult, list]:
    """One ``verify_reduction`` run as a picklable job: (result, CVXPY-vs-oracle points)."""
    from bandpo.divergences import resolve_divergence
    from bandpo.solvers.convex import verify_reduction

    div = resolve_divergence(name, **params)
    t0 = time.perf_counter()
    table = verify_reduction(name, n_cases=n_cases, vocab_size=vocab_size, seed=seed, **params)
    summary, ok, details, pts = _summarise_reduction(div, table)
    res = CheckResult("convex", f"{div.display_name} N={vocab_size}", ok, summary, 0.0, details)
    res.seconds = time.perf_counter() - t0
    return res, pts


def _convex_task(
    div: Divergence, vocab_size: int, n_cases: int, seed: int, points: list, weight: float
) -> _Task:
    args = (div.name, dict(div.params), vocab_size, n_cases, seed)

    def run() -> CheckResult:
        res, pts = _convex_job(*args)
        points.extend(pts)
        return res

    return _Task(
        "convex", f"{div.display_name} N={vocab_size}", run, weight=weight, job=(_convex_job, args)
    )


def _summarise_reduction(div: Divergence, table: Any) -> tuple[str, bool, dict, list]:
    """Read a :class:`~bandpo.solvers.convex_reduction.ReductionReport` into (summary, passed,
    details, figure points)."""
    from bandpo.visualize.verification import ConvexPoint

    rows = list(table.rows)
    pts = [ConvexPoint(div.key, float(r.p), r.side, float(r.error), r.error_kind) for r in rows]
    # the reduction's witness: how unevenly the other tokens were rescaled, over the bounds
    # CVXPY certified at an active (non-saturated) end
    spread = max((float(r.spread_mass) for r in rows if r.active and r.passed), default=0.0)
    summary = (
        f"{len(rows)} bounds, max rel. error {table.max_rel_error:.2g}, "
        f"max abs. error {table.max_abs_error:.2g}; reduction: max spread_mass {spread:.2g} "
        "(certified active ends)"
    )
    if not div.strictly_convex:
        summary += " (tv: optimiser not unique, reported only)"
    bad = [r for r in rows if not r.passed]
    if bad:
        summary += f"; {len(bad)} failed, e.g. {bad[0].side} at p={bad[0].p:.3g}: {bad[0].status}"
        if bad[0].note:
            summary += f" ({bad[0].note.split('; attempts')[0].strip()})"
    summary += f"; slowest solve {table.max_time:.1f} s"
    return summary, bool(table.passed), _jsonable(table.to_dict()), pts


def _verification_divergences() -> list[Divergence]:
    from bandpo.golden import golden_divergences

    return golden_divergences()


def plan_checks(
    config: VerifyConfig, divergences: Sequence[Divergence] | None = None
) -> tuple[list[_Task], dict[str, Any]]:
    """The tasks of the matrix, and the shared store the figure task reads (ulps, points)."""
    divs = list(_verification_divergences() if divergences is None else divergences)
    store: dict[str, Any] = {"ulps": {}, "convex_points": []}
    tasks: list[_Task] = []
    for d in divs:
        tasks.append(_Task("theory", d.display_name, _theory_check(d), weight=2.0))
    for d in divs:
        for dt in config.dtypes:
            tasks.append(
                _Task("torch", f"{d.display_name} {dt}", _torch_check(d, dt, store["ulps"]))
            )
    sizes = [config.vocab_size]
    if config.full:
        sizes.append(32768)
    for n in sizes:
        # vocabulary-scale solves take seconds each: half the cases there
        n_cases = config.n_cases if n == config.vocab_size else max(1, config.n_cases // 2)
        for d in divs:
            tasks.append(
                _convex_task(d, n, n_cases, config.seed, store["convex_points"], 3.0 * n / 1000)
            )
    if config.full:
        for name in ("kl", "tv", "chi2"):
            d = next((x for x in divs if x.name == name), None)
            if d is not None:
                tasks.append(_convex_task(d, 151936, 1, config.seed, store["convex_points"], 60.0))
    return tasks, store


def _figure_tasks(out_dir: Path, store: dict[str, Any], written: list[str]) -> list[_Task]:
    def paper() -> CheckResult:
        from bandpo.visualize import (
            plot_band_width,
            plot_clipping_regions,
            plot_probability_variation,
            plot_ratio_bounds,
        )

        names = []
        for fn in (
            plot_band_width,
            plot_ratio_bounds,
            plot_probability_variation,
            plot_clipping_regions,
        ):
            res = fn()
            for p in res.save(out_dir / "figures", ("png",)):
                names.append(str(p.relative_to(out_dir)))
            _close(res.figure)
        written.extend(names)
        return CheckResult(
            "figures",
            "paper figures",
            True,
            f"{len(names)} PNGs in figures/",
            0.0,
            {"files": names},
        )

    def verification() -> CheckResult:
        from bandpo.visualize.verification import plot_convex_agreement, plot_solver_ulps

        names = []
        if store["ulps"]:
            res = plot_solver_ulps(list(store["ulps"].values()))
            names += [str(p.relative_to(out_dir)) for p in res.save(out_dir / "figures")]
            _close(res.figure)
        if store["convex_points"]:
            res = plot_convex_agreement(store["convex_points"])
            names += [str(p.relative_to(out_dir)) for p in res.save(out_dir / "figures")]
            _close(res.figure)
        written.extend(names)
        summary = ", ".join(Path(n).name for n in names) or "no data to plot"
        return CheckResult("figures", "verification figures", True, summary, 0.0, {"files": names})

    return [
        _Task("figures", "paper figures", paper),
        _Task("figures", "verification", verification),
    ]


def _crash(task: _Task, err: BaseException) -> CheckResult:
    tb = traceback.format_exception_only(type(err), err)[-1].strip()
    details = {"traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__))}
    return CheckResult(task.section, task.name, False, f"error: {tb}", 0.0, details)


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def run_verification(
    out_dir: str | Path,
    config: VerifyConfig | None = None,
    *,
    divergences: Sequence[Divergence] | None = None,
    console: Any = None,
    progress: bool = True,
) -> VerifyReport:
    """Run the whole matrix, write ``report.md``, ``report.json`` and the figures.

    Args:
        out_dir: Output directory (created).
        config: What to run (default :class:`VerifyConfig`).
        divergences: Restrict to these divergences (default: every tabulated one).
        console: A :class:`rich.console.Console` for the progress bar (default: stderr).
        progress: Show a progress bar.

    Returns:
        The :class:`VerifyReport` (also written to ``out_dir``).
    """
    import matplotlib
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    matplotlib.use("Agg")
    config = config or VerifyConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    console = console or Console(stderr=True)
    tasks, store = plan_checks(config, divergences)
    written: list[str] = []
    if config.figures:
        tasks += _figure_tasks(out, store, written)
    t_start = time.perf_counter()
    done: dict[int, CheckResult] = {}
    pool, futures = None, {}
    if config.workers > 0 and any(t.job for t in tasks):
        # CVXPY runs in a separate process while SymPy and torch run here: on two cores the
        # default matrix finishes in about half the time.  "spawn": a forked child of a process
        # that already holds torch's thread pool can deadlock.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(config.workers, mp_context=multiprocessing.get_context("spawn"))
        futures = {i: pool.submit(t.job[0], *t.job[1]) for i, t in enumerate(tasks) if t.job}
    with Progress(
        TextColumn("[bold]{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=False,
    ) as bar:
        job = bar.add_task("verify", total=len(tasks))

        def collect(i: int, block: bool) -> None:
            fut = futures[i]
            if i in done or not (block or fut.done()):
                return
            bar.update(job, description=f"{tasks[i].section}: {tasks[i].name} (worker)")
            try:
                res, pts = fut.result()
                store["convex_points"].extend(pts)
            except Exception as err:
                res = _crash(tasks[i], err)
            done[i] = res
            bar.advance(job)

        try:
            for i, task in enumerate(tasks):
                if i in futures:
                    continue
                if task.section == "figures":  # figures plot the worker's results: wait for them
                    for k in sorted(futures):
                        collect(k, block=True)
                bar.update(job, description=f"{task.section}: {task.name}")
                t0 = time.perf_counter()
                try:
                    res = task.run()
                except Exception as err:  # a crash is a failed check, never an aborted run
                    res = _crash(task, err)
                res.seconds = time.perf_counter() - t0
                done[i] = res
                bar.advance(job)
                for k in sorted(futures):
                    collect(k, block=False)
            for k in sorted(futures):
                collect(k, block=True)
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
    results = [done[i] for i in range(len(tasks))]
    report = VerifyReport(
        results=results,
        figures=written,
        seconds=time.perf_counter() - t_start,
        config=config,
        environment=_environment(),
    )
    report.write(out)
    return report
