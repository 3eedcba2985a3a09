"""``bandpo verify``: run the verification matrix and write the report (the main job).

    bandpo verify --out out/verify [--full]

Prints a summary table, writes ``report.md`` (figures embedded), ``report.json`` and the
figures under ``--out``, and exits with status 1 when any check fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register", "verify"]


def verify(
    out: Annotated[Path, typer.Option("--out", help="Output directory of the report.")] = Path(
        "out/verify"
    ),
    full: Annotated[
        bool,
        typer.Option("--full", help="Also run the vocabulary-scale CVXPY cases (N=32768, 151936)."),
    ] = False,
    divergence: Annotated[
        list[str] | None,
        typer.Option("--divergence", "-d", help="Restrict to these divergence names (repeatable)."),
    ] = None,
    vocab_size: Annotated[
        int, typer.Option("--vocab-size", help="Vocabulary size of the default CVXPY cases.")
    ] = 1000,
    cases: Annotated[
        int,
        typer.Option(
            "--cases", help="Distributions per divergence for CVXPY (shapes cycle: 4 = each once)."
        ),
    ] = 4,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes for CVXPY (0: run in order).")
    ] = 2,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Draw figures.")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Verify every layer against the others and write report.md / report.json."""
    from rich.console import Console

    from bandpo.golden import golden_divergences
    from bandpo.verification import VerifyConfig, run_verification

    console = Console()
    divs = golden_divergences()
    if divergence:
        from bandpo.divergences import divergence_names

        unknown = sorted(set(divergence) - set(divergence_names()))
        if unknown:
            raise typer.BadParameter(
                f"unknown divergence(s) {unknown}; valid: {', '.join(divergence_names())}",
                param_hint="--divergence",
            )
        divs = [d for d in divs if d.name in divergence]
    if vocab_size < 2:
        raise typer.BadParameter("must be >= 2", param_hint="--vocab-size")
    if cases < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--cases")
    if workers < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--workers")
    config = VerifyConfig(
        full=full, vocab_size=vocab_size, n_cases=cases, workers=workers, figures=figures
    )
    report = run_verification(out, config, divergences=divs, progress=progress)
    # the summary column needs room: do not fold it into 80 columns when piped
    Console(width=max(console.width, 150)).print(report.rich_table())
    console.print(
        f"{'PASSED' if report.passed else 'FAILED'}: {len(report.results)} checks, "
        f"{report.n_failed} failed, {report.seconds:.1f} s; report: {out / 'report.md'}"
    )
    if not report.passed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``verify`` to the ``bandpo`` app."""
    app.command("verify")(verify)
