"""``bandpo figures``: write the paper figures (deterministic PNG/PDF/SVG).

    bandpo figures --out docs/figures [--delta 0.01 --delta 0.05 ...] [--divergences kl,tv]
                   [--format png,pdf,svg] [--convex]

Figures: band width W(p) (one panel per ``--delta``), ratio bounds, probability variation,
clipping regions (these three at δ = 0.05 when it is among ``--delta``, else the first δ), and
the torch solver's error in ulps against the golden tables; ``--convex`` adds CVXPY against the
oracle (runs CVXPY, about a minute).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["figures", "register"]


def _parse_divergences(text: str | None) -> list | None:
    from bandpo.divergences import resolve_divergence

    if text is None or text.strip().lower() in ("", "all"):
        return None
    out = []
    for item in text.split(","):
        name, _, alpha = item.strip().partition(":")
        try:
            out.append(resolve_divergence(name, **({"alpha": float(alpha)} if alpha else {})))
        except (ValueError, TypeError) as err:
            raise typer.BadParameter(str(err), param_hint="--divergences") from err
    return out


def figures(
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("out/figures"),
    delta: Annotated[
        list[float] | None,
        typer.Option(
            "--delta", help="Trust-region radius; repeat for several (default 0.01 0.05 0.2)."
        ),
    ] = None,
    divergences: Annotated[
        str | None,
        typer.Option(
            "--divergences", help="Comma-separated names (alpha:A for an alpha), or 'all'."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Comma-separated: png,pdf,svg.")] = "png",
    convex: Annotated[
        bool, typer.Option("--convex", help="Also plot CVXPY against the oracle (slow).")
    ] = False,
) -> None:
    """Write every figure into --out, in each --format."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rich.console import Console
    from rich.table import Table

    from bandpo.visualize import (
        plot_band_width,
        plot_clipping_regions,
        plot_probability_variation,
        plot_ratio_bounds,
    )
    from bandpo.visualize.style import parse_formats
    from bandpo.visualize.verification import plot_solver_ulps
    from bandpo.visualize.width import DEFAULT_DELTAS

    try:
        formats = parse_formats(fmt)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--format") from err
    deltas = list(delta) if delta else list(DEFAULT_DELTAS)
    if any(not d > 0 for d in deltas):
        raise typer.BadParameter(f"every delta must be > 0, got {deltas}", param_hint="--delta")
    one_delta = 0.05 if 0.05 in deltas else deltas[0]
    divs = _parse_divergences(divergences)
    builders = [
        lambda: plot_band_width(divs, deltas),
        lambda: plot_ratio_bounds(divs, one_delta),
        lambda: plot_probability_variation(
            divs if divs is not None else ("kl", "tv", "chi2"), one_delta
        ),
        lambda: plot_clipping_regions("kl", one_delta),
        lambda: plot_solver_ulps(),
    ]
    if convex:
        from bandpo.verification import VerifyConfig, plan_checks

        def convex_figure():
            from bandpo.visualize.verification import plot_convex_agreement

            tasks, store = plan_checks(VerifyConfig(figures=False))
            for t in tasks:
                if t.section == "convex":
                    t.run()
            return plot_convex_agreement(store["convex_points"])

        builders.append(convex_figure)
    console = Console()
    table = Table(title=f"bandpo figures -> {out}")
    table.add_column("figure")
    table.add_column("files")
    for build in builders:
        res = build()
        paths = res.save(out, formats)
        plt.close(res.figure)
        table.add_row(res.name, ", ".join(p.name for p in paths))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``figures`` to the ``bandpo`` app."""
    app.command("figures")(figures)
