"""``bandpo check``: run :func:`bandpo.testing.check_solver` on any importable function.

    bandpo check my_trainer.clipping:band_bounds --divergence kl --delta 0.01 --delta 0.05
    bandpo check bandpo.solvers.baselines:paper_bisection --delta golden --json out/check.json

The function is imported as ``MODULE:ATTRIBUTE`` (dotted attributes allowed) with the current
directory on ``sys.path``, as ``python -m`` would.  The report is printed as tables; the exit
status is 0 when every check passes, 1 when one fails, 2 for a usage error.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["check", "load_callable", "register"]


def load_callable(spec: str, what: str = "solver") -> Any:
    """Import ``MODULE:ATTR[.ATTR...]`` and return the object (a callable).

    Raises:
        typer.BadParameter: malformed spec, import failure or a non-callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise typer.BadParameter(f"{what} must be MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ImportError as err:
        raise typer.BadParameter(f"cannot import {module_name!r}: {err}") from err
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise typer.BadParameter(f"{module_name!r} has no attribute {attr!r}") from err
    if not callable(obj):
        raise typer.BadParameter(f"{spec} is not callable")
    return obj


def _parse_kwargs(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise typer.BadParameter(f"--kwarg must be NAME=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # a plain string
    return out


def _parse_deltas(values: list[str]) -> Any:
    if values == ["golden"]:
        return "golden"
    try:
        return [float(v) for v in values]
    except ValueError as err:
        raise typer.BadParameter(f"--delta takes numbers or 'golden', got {values}") from err


def check(
    solver: Annotated[str, typer.Argument(help="The solver to check, as MODULE:FUNCTION.")],
    divergence: Annotated[str, typer.Option(help="Registry name of the divergence.")] = "kl",
    delta: Annotated[
        list[str] | None,
        typer.Option(help="δ (repeat for several, or 'golden' for every golden δ)."),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="α of the 'alpha' divergence.")] = None,
    input: Annotated[str, typer.Option(help="What the solver takes: log_prob or prob.")] = (
        "log_prob"
    ),
    dtype: Annotated[
        list[str] | None, typer.Option(help="Dtype to check in (repeat); default float64, float32.")
    ] = None,
    device: Annotated[str, typer.Option(help="Torch device of the inputs.")] = "cpu",
    array: Annotated[str, typer.Option(help="torch, numpy or auto.")] = "auto",
    kwarg: Annotated[
        list[str] | None, typer.Option(help="Extra solver keyword NAME=VALUE (repeat).")
    ] = None,
    transform: Annotated[
        str | None,
        typer.Option(help="MODULE:FUNCTION transform(lower, upper, log_p) for the reference."),
    ] = None,
    cap_upper: Annotated[
        float | None, typer.Option(help="The solver caps upper at this value (upper_bound_max).")
    ] = None,
    extremes: Annotated[bool, typer.Option(help="Check tiny p, −inf and NaN.")] = True,
    speed_n: Annotated[int, typer.Option(help="Elements for the speed run (0 skips it).")] = 2**16,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON here.")
    ] = None,
    width: Annotated[int, typer.Option(help="Table width in columns.")] = 132,
) -> None:
    """Check a Band solver against bandpo's golden tables and oracle; exit 1 if a check fails."""
    import torch
    from rich.console import Console

    from bandpo.testing import cap_upper as cap
    from bandpo.testing import chain, check_solver

    fn = load_callable(solver)
    params = {} if alpha is None else {"alpha": alpha}
    transforms = []
    if transform:
        transforms.append(load_callable(transform, "--transform"))
    if cap_upper is not None:
        transforms.append(cap(cap_upper))
    tf = None if not transforms else (transforms[0] if len(transforms) == 1 else chain(*transforms))
    try:
        report = check_solver(
            fn,
            divergence,
            _parse_deltas(delta or ["0.05"]),
            input=input,
            dtypes=tuple(dtype) if dtype else (torch.float64, torch.float32),
            device=device,
            array=array,
            fn_kwargs=_parse_kwargs(kwarg or []),
            transform=tf,
            extremes=extremes,
            speed_n=speed_n or None,
            **params,
        )
    except (ValueError, TypeError) as err:
        raise typer.BadParameter(str(err)) from err
    Console(width=width).print(report)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    raise typer.Exit(0 if report.passed else 1)


def register(app: typer.Typer) -> None:
    """Add ``check`` to the ``bandpo`` app."""
    app.command("check")(check)
