"""The ``bandpo`` command line: one Typer app, one module per command.

Each module in :data:`COMMAND_MODULES` defines ``register(app: typer.Typer) -> None`` and adds
its command(s); keeping commands in separate modules keeps each one small and its imports
(CVXPY, matplotlib, ...) local to the command that needs them.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["COMMAND_MODULES", "app", "main"]

app = typer.Typer(
    name="bandpo",
    help="Verify and use BandPO's f-divergence trust-region ratio bands (arXiv 2603.04918).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Command modules, in the order their commands appear in ``bandpo --help``.
COMMAND_MODULES = (
    "bandpo.cli.verify",
    "bandpo.cli.figures",
    "bandpo.cli.bounds",
    "bandpo.cli.bench",
    "bandpo.cli.check",
    "bandpo.cli.experiment",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Entry point of the console script."""
    app()
