"""``setpoint demo``: the whole path on generated data, in a throwaway workspace."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from setpoint.cli._common import JsonFlag, emit, fmt, is_json, stderr
from setpoint.errors import UsageError


def demo(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Option(
            "--path",
            help="Where to create the demo workspace (must not exist yet). "
            "Default: a new temporary folder.",
            show_default=False,
        ),
    ] = None,
    rows: Annotated[
        int, typer.Option(min=2_000, help="Loan applications to generate for training.")
    ] = 30_000,
    json_: JsonFlag = False,
) -> None:
    """Run the demo: generated lending data through contracts, training and the registry.

    Everything happens in a new workspace (SQLite + local files) that is kept
    afterwards so you can look around in it with the other commands.
    """
    from setpoint.demo.walkthrough import run

    if path is None:
        path = Path(tempfile.mkdtemp(prefix="setpoint-demo-"))
    elif path.exists() and any(path.iterdir()):
        raise UsageError(f"{path} exists and is not empty; give --path a new folder")
    quiet = is_json(ctx)
    err = stderr()

    def step(message: str) -> None:
        if not quiet:
            err.print(f"[bold cyan]>[/] {message}")

    result = run(path, rows=rows, step=step)

    def render(c: Console) -> None:
        table = Table("", "", title="setpoint demo", show_header=False)
        for label, value in result.facts:
            table.add_row(label, value)
        for name, value in result.metrics.items():
            table.add_row(f"validation {name}", fmt(value))
        c.print(table)
        c.print(
            f"The workspace is at {path}. Look around with, for example:\n"
            f"  setpoint -w {path} data show loans\n"
            f"  setpoint -w {path} models show credit-risk\n"
            f"  setpoint -w {path} audit"
        )

    emit(ctx, result.to_dict(), render)
