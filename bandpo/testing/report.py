"""The result of :func:`bandpo.testing.check_solver`: dataclasses that render as tables.

A :class:`SolverReport` holds, for every dtype checked:

* the accuracy per p-decade region (max relative and absolute error, points over the bar);
* every named check (invariants, saturation, feasibility, extremes, NaN, speed) with a status;
* the worst points (p, δ, got, expected, error, g_f(p, got) − δ and a verdict);
* *findings*: named diagnoses of what kind of defect the numbers show (``swapped-bounds``,
  ``p-to-1-cancellation``, ``float64-only``, ...), each with a stable ``code``.

``str(report)`` is a plain-text table (what ``assert_solver`` puts in its AssertionError),
``rich.print(report)`` renders it in colour, and ``report.to_dict()`` gives JSON-ready data
(non-finite numbers as the strings ``"inf"``, ``"-inf"``, ``"nan"``).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

__all__ = [
    "CheckResult",
    "Finding",
    "PointError",
    "RegionStats",
    "SolverReport",
    "SpeedResult",
]

PASS, FAIL, WARN, SKIP, INFO = "pass", "fail", "warn", "skip", "info"
_STATUS_STYLE = {PASS: "green", FAIL: "bold red", WARN: "yellow", SKIP: "dim", INFO: "cyan"}
_STATUS_MARK = {PASS: "ok", FAIL: "FAIL", WARN: "warn", SKIP: "skip", INFO: "info"}


@dataclass
class RegionStats:
    """Accuracy of one dtype in one p-decade region.

    Attributes:
        dtype: ``"float32"``, ...
        region: Region key (see :data:`bandpo.testing.grids.REGIONS`).
        label: Human label of the region.
        n: Cases (input, δ) in the region.
        n_fail: Cases with either end over the tolerance.
        max_rel_lower, max_rel_upper: Largest relative error of each end over the cases whose
            reference is a normal, finite, non-zero number (``None`` if there is none).
        max_abs: Largest absolute error |got − expected| over finite references.
    """

    dtype: str
    region: str
    label: str
    n: int
    n_fail: int
    max_rel_lower: float | None
    max_rel_upper: float | None
    max_abs: float | None


@dataclass
class PointError:
    """One end at one test point.

    Attributes:
        dtype: Dtype of the call.
        end: ``"lower"`` or ``"upper"``.
        p: The probability (float64; may underflow to 0 for log p < −745).
        log_p: The log-probability given.
        delta: δ.
        got: The solver's value.
        expected: The reference rounded to ``dtype``.
        rel: Relative error (``None`` where the reference is 0, subnormal or infinite).
        abs: Absolute error.
        score: Error in units of the tolerance (> 1 fails).
        g_minus_delta: g_f(p, got) − δ at high precision, where it was computed.
        verdict: ``"infeasible"`` (outside the trust region), ``"conservative"`` (inside it,
            band too narrow), ``"outside [0, 1/p]"``, ``"NaN"``, ``"inf"``, or ``"ok"``.
    """

    dtype: str
    end: str
    p: float
    log_p: float
    delta: float
    got: float
    expected: float
    rel: float | None
    abs: float
    score: float
    g_minus_delta: float | None
    verdict: str


@dataclass
class CheckResult:
    """One named check in one dtype.

    Attributes:
        name: Stable key (``"order"``, ``"simplex"``, ``"monotone-p"``, ``"saturation"``,
            ``"feasibility"``, ``"accuracy"``, ``"p=1"``, ``"tiny-p"``, ``"-inf"``, ``"nan"``,
            ``"finite"``, ``"output"``, ``"speed"``, ``"call"``).
        title: Human title.
        dtype: Dtype, or ``"all"``.
        status: ``"pass"``, ``"fail"``, ``"warn"``, ``"skip"`` or ``"info"``.
        n_checked: Items checked.
        n_failed: Items that violated the check.
        detail: One line of explanation (the worst violation, or why it was skipped).
    """

    name: str
    title: str
    dtype: str
    status: str
    n_checked: int = 0
    n_failed: int = 0
    detail: str = ""
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Finding:
    """A named diagnosis of a defect.

    Attributes:
        code: Stable key, one of :data:`FINDING_CODES`.
        title: Short name, e.g. ``"bounds swapped"``.
        message: What the numbers show, with the evidence.
        dtypes: The dtypes concerned.
    """

    code: str
    title: str
    message: str
    dtypes: tuple[str, ...] = ()


#: Every finding code the kit emits, with its title.
FINDING_CODES: dict[str, str] = {
    "solver-error": "solver raised or returned a malformed band",
    "swapped-bounds": "lower and upper swapped",
    "order-violated": "lower ≤ 1 ≤ upper violated",
    "simplex-violated": "upper > 1/p (outside the simplex)",
    "not-monotone": "not monotone",
    "saturation-ignored": "saturation ignored",
    "spurious-saturation": "saturated where the band is not",
    "infeasible": "bounds outside the trust region",
    "conservative": "bounds inside the trust region but too narrow",
    "wrong-everywhere": "systematic error at every p",
    "p-to-1-cancellation": "error grows as p → 1",
    "small-p": "error grows as p → 0",
    "absolute-tolerance": "absolute tolerance: small absolute errors, large relative ones",
    "float64-only": "accurate only in float64",
    "non-finite": "NaN or inf returned for a finite band",
    "p-equals-1": "wrong at p = 1",
    "tiny-p": "wrong at tiny p",
    "minus-inf": "log p = −inf not mapped to (0, inf)",
    "nan-leak": "NaN leaks to other positions",
    "nan-swallowed": "NaN input gives a number",
    "batch-coupling": "results depend on the rest of the batch",
}


@dataclass
class SpeedResult:
    """Throughput of the solver on one array.

    Attributes:
        dtype, device: Of the input.
        n: Elements.
        seconds: Best wall time of one call.
        elements_per_s: ``n / seconds``.
        exp_seconds: Best wall time of ``torch.exp`` on the same tensor.
        ratio_to_exp: Median over repeats of (call time / ``torch.exp`` time measured right
            around it): the figure to compare across machines and loads.
        threads: ``torch.get_num_threads()`` during the run (CPU timings depend on it, and on a
            shared machine an oversubscribed thread pool can slow every op by orders of
            magnitude; ``OMP_NUM_THREADS=1`` gives steadier figures there).
    """

    dtype: str
    device: str
    n: int
    seconds: float
    elements_per_s: float
    exp_seconds: float
    ratio_to_exp: float
    threads: int = 1


def _json(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json(v) for v in x]
    return x


def fmt_err(x: float | None) -> str:
    """Format an error for a table cell."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf"
    return f"{x:.2e}"


def fmt_val(x: float) -> str:
    """Format a bound value (10 significant digits)."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.10g}"


def fmt_p(p: float, log_p: float) -> str:
    """p, written as ``1-q`` close to 1 (q = −expm1(log p), never 1 − p)."""
    if math.isnan(log_p):
        return "nan"
    if log_p == 0:
        return "1"
    if log_p == -math.inf:
        return "0"
    if p > 0.9:
        return f"1-{-math.expm1(log_p):.3g}"
    if p == 0:
        return f"exp({log_p:.6g})"
    return f"{p:.4g}"


@dataclass
class SolverReport:
    """What :func:`~bandpo.testing.check_solver` found (see the module docstring).

    Attributes:
        solver: Name of the solver checked.
        divergence: Display name of the divergence.
        deltas: δ values checked.
        grid: Description of the test points and where their references came from.
        input: ``"log_prob"`` or ``"prob"``.
        adapter: How the solver was called.
        device: Device of the inputs.
        dtypes: Dtypes checked.
        tolerances: dtype -> {"rel", "ulp", "source"}: the bars used.
        transform: Name of the post-processing applied to the reference, if any.
        regions: Accuracy per dtype and region.
        checks: Every check's result.
        worst: The worst points (largest error in units of the tolerance), per dtype.
        findings: Named diagnoses.
        speed: Throughput per dtype.
        notes: Remarks on what was (not) checked, e.g. subsampling.
    """

    solver: str
    divergence: str
    deltas: tuple[float, ...]
    grid: str
    input: str
    adapter: str
    device: str
    dtypes: tuple[str, ...]
    tolerances: dict[str, dict[str, Any]]
    transform: str | None = None
    regions: list[RegionStats] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    worst: list[PointError] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    speed: list[SpeedResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -------------------------------------------------------------------------- verdicts
    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return not self.failures

    @property
    def failures(self) -> list[CheckResult]:
        """The checks with status ``"fail"``."""
        return [c for c in self.checks if c.status == FAIL]

    @property
    def codes(self) -> set[str]:
        """The finding codes (e.g. ``{"swapped-bounds", "order-violated"}``)."""
        return {f.code for f in self.findings}

    def check(self, name: str, dtype: str | None = None) -> list[CheckResult]:
        """The results of check ``name`` (in one dtype, if given)."""
        return [c for c in self.checks if c.name == name and (dtype is None or c.dtype == dtype)]

    def max_rel_error(self, dtype: str | None = None) -> float:
        """Largest relative error over all regions (of one dtype, if given); 0 if none."""
        vals = [
            v
            for r in self.regions
            if dtype is None or r.dtype == dtype
            for v in (r.max_rel_lower, r.max_rel_upper)
            if v is not None
        ]
        return max(vals, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of everything (non-finite floats as strings)."""
        d = asdict(self)
        d["passed"] = self.passed
        d["codes"] = sorted(self.codes)
        return _json(d)

    # ------------------------------------------------------------------------- rendering
    def _renderables(self) -> list[Any]:
        out: list[Any] = []
        verdict = Text("PASS", style="bold green") if self.passed else Text("FAIL", "bold red")
        head = Text.assemble(
            ("bandpo.testing report: ", "bold"),
            (self.solver, "bold"),
            "  ",
            verdict,
        )
        out.append(head)
        deltas = ", ".join(f"{d:g}" for d in self.deltas)
        bars = "; ".join(
            f"{k}: rel ≤ {v['rel']:.3g} ({v['ulp']:.3g} ulp)"
            + (f" {v['source']}" if v.get("source") else "")
            for k, v in self.tolerances.items()
        )
        lines = [
            f"divergence {self.divergence}, δ ∈ {{{deltas}}}, input {self.input}, "
            f"device {self.device}",
            f"grid: {self.grid}",
            f"called as: {self.adapter}",
            f"tolerances: {bars}",
        ]
        if self.transform:
            lines.append(f"reference post-processed by: {self.transform}")
        out.append(Text("\n".join(lines)))

        for dt in self.dtypes:
            rows = [r for r in self.regions if r.dtype == dt]
            if not rows:
                continue
            t = Table(
                title=f"accuracy, {dt} (bar: rel ≤ {self.tolerances[dt]['rel']:.3g})",
                box=box.SIMPLE_HEAD,
                title_justify="left",
            )
            for col, just in (
                ("region", "left"),
                ("n", "right"),
                ("max rel lower", "right"),
                ("max rel upper", "right"),
                ("max abs", "right"),
                ("over bar", "right"),
            ):
                t.add_column(col, justify=just)
            for r in rows:
                style = "red" if r.n_fail else None
                t.add_row(
                    Text(r.label),
                    str(r.n),
                    fmt_err(r.max_rel_lower),
                    fmt_err(r.max_rel_upper),
                    fmt_err(r.max_abs),
                    str(r.n_fail) if r.n else "—",
                    style=style,
                )
            out.append(t)

        # one row per check, one status column per dtype; the detail of the first dtype
        # where the check did not pass (or of the first dtype when it passed everywhere)
        t = Table(title="checks", box=box.SIMPLE_HEAD, title_justify="left")
        t.add_column("check")
        dts = [d for d in self.dtypes if any(c.dtype == d for c in self.checks)]
        for d in dts:
            t.add_column(d)
        t.add_column("detail", overflow="fold")
        names = list(dict.fromkeys(c.name for c in self.checks))
        for name in names:
            rows = {c.dtype: c for c in self.checks if c.name == name}
            cells = []
            for d in dts:
                c = rows.get(d)
                if c is None:
                    cells.append(Text(""))
                    continue
                mark = _STATUS_MARK[c.status]
                if c.status in (FAIL, WARN) and c.n_checked:
                    mark += f" {c.n_failed}/{c.n_checked}"
                cells.append(Text(mark, style=_STATUS_STYLE[c.status]))
            bad = [c for c in rows.values() if c.status not in (PASS, INFO)]
            first = bad[0] if bad else next(iter(rows.values()))
            detail = first.detail
            if bad and len(dts) > 1 and detail:
                detail = f"{first.dtype}: {detail}"
            t.add_row(Text(first.title), *cells, Text(detail))
        out.append(t)

        if self.worst:
            t = Table(
                title="worst points (error in units of the bar; g − δ at 30 digits)",
                box=box.SIMPLE_HEAD,
                title_justify="left",
            )
            for col in ("dtype", "end", "p", "δ", "got", "expected", "rel err", "×bar", "g−δ"):
                t.add_column(col, justify="left" if col in ("dtype", "end") else "right")
            t.add_column("verdict")
            for w in self.worst:
                t.add_row(
                    w.dtype,
                    w.end,
                    fmt_p(w.p, w.log_p),
                    f"{w.delta:g}",
                    fmt_val(w.got),
                    fmt_val(w.expected),
                    fmt_err(w.rel),
                    fmt_err(w.score),
                    fmt_err(w.g_minus_delta) if w.g_minus_delta is not None else "—",
                    Text(w.verdict, style="red" if w.verdict != "ok" else "green"),
                )
            out.append(t)

        if self.speed:
            t = Table(title="speed", box=box.SIMPLE_HEAD, title_justify="left")
            for col in ("dtype", "device", "threads", "n", "time", "elements/s", "× torch.exp"):
                t.add_column(col, justify="right")
            for s in self.speed:
                t.add_row(
                    s.dtype,
                    s.device,
                    str(s.threads),
                    str(s.n),
                    f"{s.seconds * 1e3:.3g} ms",
                    f"{s.elements_per_s:.3g}",
                    f"{s.ratio_to_exp:.3g}",
                )
            out.append(t)

        if self.findings:
            lines = Text("findings:\n", style="bold")
            for f in self.findings:
                dts = f" [{', '.join(f.dtypes)}]" if f.dtypes else ""
                lines.append(f"  ✗ {f.code}: {f.title}{dts}\n", style="red")
                lines.append(f"      {f.message}\n")
            out.append(lines)
        if self.notes:
            out.append(Text("notes:\n" + "\n".join(f"  - {n}" for n in self.notes)))
        return out

    def __rich_console__(self, console: Console, options: Any):
        yield Group(*self._renderables())

    def render(self, width: int = 132) -> str:
        """Plain-text rendering (no colour) at ``width`` columns."""
        buf = io.StringIO()
        console = Console(
            file=buf,
            width=width,
            color_system=None,
            force_terminal=False,
            force_jupyter=False,
            legacy_windows=False,
            soft_wrap=False,
        )
        for r in self._renderables():
            console.print(r)
        return buf.getvalue().rstrip() + "\n"

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        state = "passed" if self.passed else f"failed: {sorted(self.codes) or self.failures}"
        return f"<SolverReport {self.solver} [{self.divergence}, {', '.join(self.dtypes)}] {state}>"
