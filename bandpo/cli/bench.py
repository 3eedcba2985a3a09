"""``bandpo bench``: time band_bounds against the paper-style bisection and torch.exp.

    bandpo bench --out out/bench [--n 1048576] [--divergences kl,tv,...] [--dtypes float32,float64]
                 [--device cpu|cuda|all] [--fused/--no-fused] [--repeats 5]

Prints a rich table and writes ``bench_band.json`` into ``--out``; see
:mod:`bandpo.solvers.bench` for the columns.  Speed is reported as ratios measured in the same
run (speed-up over the paper-style bisection, time relative to a bare ``torch.exp`` on the same
tensor); the worst relative error is against the golden tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["bench", "parse_divergences", "register"]


def parse_divergences(spec: str | None) -> list:
    """``"kl,tv,alpha=0.5"`` -> Divergences (None or "all": every golden divergence)."""
    from bandpo.divergences import get_divergence
    from bandpo.golden import golden_divergences

    if spec is None or spec.strip() in ("", "all"):
        return golden_divergences()
    out = []
    for item in spec.split(","):
        item = item.strip()
        if item.startswith("alpha"):
            _, _, value = item.partition("=")
            out.append(get_divergence("alpha", alpha=float(value or 0.5)))
        else:
            out.append(get_divergence(item))
    return out


def bench(
    out: Annotated[Path, typer.Option(help="Directory for bench_band.json.")] = Path("out/bench"),
    n: Annotated[int, typer.Option(help="Elements per tensor.")] = 2**20,
    divergences: Annotated[
        str, typer.Option(help="Comma-separated names (alpha=A for alpha), or 'all'.")
    ] = "all",
    dtypes: Annotated[str, typer.Option(help="Comma-separated: float32,float64.")] = (
        "float32,float64"
    ),
    device: Annotated[str, typer.Option(help="cpu, cuda or all (all: CUDA if present).")] = "all",
    fused: Annotated[
        bool, typer.Option(help="Also time the torch.compile path (compiles first; slow on CPU).")
    ] = False,
    delta: Annotated[float, typer.Option(help="δ of the timed calls.")] = 0.05,
    repeats: Annotated[int, typer.Option(help="Timed repetitions (medians kept).")] = 5,
) -> None:
    """Benchmark band_bounds (speed vs paper bisection and torch.exp, error vs golden)."""
    import torch
    from rich.console import Console

    from bandpo.solvers.bench import render_table, run_bench, write_json

    console = Console()
    if not console.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        console = Console(width=220)
    if device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    elif device == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("no CUDA device is present", param_hint="--device")
    else:
        devices = [device]
    try:
        dts = [getattr(torch, s.strip()) for s in dtypes.split(",")]
    except AttributeError as err:
        raise typer.BadParameter(str(err), param_hint="--dtypes") from err
    for dt in dts:
        if dt not in (torch.float32, torch.float64):
            raise typer.BadParameter("dtypes are float32 and/or float64", param_hint="--dtypes")
    divs = parse_divergences(divergences)
    paths = ("eager", "fused") if fused else ("eager",)
    with console.status("benchmarking") as status:
        rows = run_bench(
            n=n,
            divergences=divs,
            dtypes=dts,
            devices=devices,
            paths=paths,
            delta=delta,
            repeats=repeats,
            progress=lambda s: status.update(f"benchmarking {s}"),
        )
    console.print(render_table(rows))
    path = write_json(rows, out, delta=delta, command="bandpo bench")
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the ``bandpo`` app."""
    app.command("bench")(bench)
