"""``bandpo bounds``: the Band interval of one probability, to 12 significant digits.

    bandpo bounds --p 0.08 --delta 0.05 [--divergence NAME|all] [--alpha A]
    bandpo bounds --log-p -2.5 --delta 0.05

For each divergence the table gives r₋ and r₊ from the mpmath oracle (50 digits, printed to
12), the same ends from the torch solver :func:`bandpo.band_bounds` in float64 with its
relative difference from the oracle, the probability margins p·(r₋ − 1) and p·(r₊ − 1), and
whether each end saturates (r₋ = 0, r₊ = 1/p).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

__all__ = ["BoundsRow", "bounds", "bounds_rows", "register"]

DIGITS = 12
_FLOAT64_TINY = 2.2250738585072014e-308


@dataclass(frozen=True)
class BoundsRow:
    """One row of ``bandpo bounds``.

    Attributes:
        divergence: Display name (``alpha(alpha=0.5)``).
        lower, upper: Oracle band ends as mpmath numbers.
        torch_lower, torch_upper: :func:`bandpo.band_bounds` ends (float64), ``None`` when the
            torch solver is unavailable.
        rel_diff: Largest relative difference torch vs oracle (at float64(log p)) over the ends
            that are finite and at least float64's smallest normal number.
        margin_down, margin_up: p·(r₋ − 1) and p·(r₊ − 1) (mpmath).
        lower_saturated, upper_saturated: Saturation flags from the oracle.
    """

    divergence: str
    lower: object
    upper: object
    torch_lower: float | None
    torch_upper: float | None
    rel_diff: float | None
    margin_down: object
    margin_up: object
    lower_saturated: bool
    upper_saturated: bool


def bounds_rows(p: str, delta: float, divergences: list) -> list[BoundsRow]:
    """Compute the rows of the table (p as a decimal string, for extremes like ``"1e-300"``)."""
    import math

    import mpmath
    import torch

    from bandpo.solvers.oracle import oracle_band_detail

    try:
        from bandpo.solvers.band import band_bounds
    except ImportError:  # torch solver not installed in this checkout
        band_bounds = None
    rows = []
    with mpmath.workdps(60):
        pm = mpmath.mpf(p)
        log_p = float(mpmath.log(pm))
    for div in divergences:
        det = oracle_band_detail(p, delta, div, dps=50)
        t_lo = t_up = rel = None
        if band_bounds is not None and math.isfinite(log_p) and log_p > -745:
            band = band_bounds(torch.tensor([log_p], dtype=torch.float64), delta, div)
            t_lo, t_up = float(band.lower[0]), float(band.upper[0])
            # the solver sees float64(log p); compare with the oracle at that exact input
            ref = oracle_band_detail(mpmath.exp(mpmath.mpf(log_p)), delta, div, dps=50)
            errs = [
                abs((mpmath.mpf(got) - want) / want)
                for got, want in ((t_lo, ref.lower), (t_up, ref.upper))
                # ends below float64's smallest normal cannot carry relative accuracy there
                if mpmath.isfinite(want) and abs(want) >= _FLOAT64_TINY
            ]
            rel = float(max(errs)) if errs else 0.0
        with mpmath.workdps(60):
            rows.append(
                BoundsRow(
                    divergence=div.display_name,
                    lower=det.lower,
                    upper=det.upper,
                    torch_lower=t_lo,
                    torch_upper=t_up,
                    rel_diff=rel,
                    margin_down=det.p * (det.lower - 1),
                    margin_up=det.p * (det.upper - 1),
                    lower_saturated=det.lower_saturated,
                    upper_saturated=det.upper_saturated,
                )
            )
    return rows


def _fmt(x) -> str:
    import mpmath

    if x != 0 and mpmath.isfinite(x) and abs(mpmath.log10(abs(x))) > 1e4:
        # e.g. kl's r₋ at p = 1e-300 is ≈ 10^(−2.2e298): print the exponent to 12 digits
        return f"10^({mpmath.nstr(mpmath.log10(x), DIGITS)})"
    return mpmath.nstr(x, DIGITS, min_fixed=-4, max_fixed=6)


def bounds(
    p: Annotated[
        str | None, typer.Option("--p", help="Old probability p in (0, 1] (decimal string ok).")
    ] = None,
    log_p: Annotated[
        float | None, typer.Option("--log-p", help="Old log-probability instead of --p.")
    ] = None,
    delta: Annotated[float, typer.Option("--delta", help="Trust-region radius delta > 0.")] = 0.05,
    divergence: Annotated[
        str, typer.Option("--divergence", "-d", help="A registry name, or 'all'.")
    ] = "all",
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="alpha of the 'alpha' divergence (default 0.5).")
    ] = None,
) -> None:
    """Print the Band [r-, r+] of one probability for one or all divergences."""
    import mpmath
    from rich.console import Console
    from rich.table import Table

    from bandpo.divergences import divergence_names, get_divergence

    if (p is None) == (log_p is None):
        raise typer.BadParameter("give exactly one of --p and --log-p", param_hint="--p")
    if log_p is not None:
        if not log_p <= 0:
            raise typer.BadParameter(f"must be <= 0, got {log_p}", param_hint="--log-p")
        with mpmath.workdps(60):
            p = mpmath.nstr(mpmath.exp(mpmath.mpf(log_p)), 60)
    try:
        pm = mpmath.mpf(p)
    except (ValueError, TypeError) as err:
        raise typer.BadParameter(f"not a number: {p!r}", param_hint="--p") from err
    if not 0 < pm <= 1:
        raise typer.BadParameter(f"p must be in (0, 1], got {p}", param_hint="--p")
    if not delta > 0:
        raise typer.BadParameter(f"delta must be > 0, got {delta}", param_hint="--delta")
    names = divergence_names() if divergence == "all" else [divergence]
    try:
        divs = [
            get_divergence(n, **({"alpha": alpha} if n == "alpha" and alpha is not None else {}))
            for n in names
        ]
    except (ValueError, TypeError) as err:
        raise typer.BadParameter(str(err), param_hint="--divergence/--alpha") from err
    rows = bounds_rows(str(p), delta, divs)
    table = Table(
        title=f"Band at p = {mpmath.nstr(pm, 15)}, delta = {delta:g} "
        f"(oracle at 50 digits, shown to {DIGITS}; torch = band_bounds float64)"
    )
    for col in ("divergence", "r-", "r+", "p(r- - 1)", "p(r+ - 1)", "saturated", "torch rel. diff"):
        table.add_column(col, justify="left" if col == "divergence" else "right", overflow="fold")
    for r in rows:
        sat = (
            ", ".join(
                s for s, f in (("r-=0", r.lower_saturated), ("r+=1/p", r.upper_saturated)) if f
            )
            or "-"
        )
        diff = "n/a" if r.rel_diff is None else f"{r.rel_diff:.1e}"
        table.add_row(
            r.divergence,
            _fmt(r.lower),
            _fmt(r.upper),
            _fmt(r.margin_down),
            _fmt(r.margin_up),
            sat,
            diff,
        )
    # 12 digits in five number columns need ~130 characters; do not fold them on narrow pipes
    console = Console()
    Console(width=max(console.width, 132)).print(table)


def register(app: typer.Typer) -> None:
    """Add ``bounds`` to the ``bandpo`` app."""
    app.command("bounds")(bounds)
