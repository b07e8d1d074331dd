"""``setpoint scoring``: the batch scoring runs ``setpoint predict`` recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from setpoint._names import split_ref
from setpoint.batch.runs import STATES, RecordedRun
from setpoint.cli._common import Col, Group, JsonFlag, count, emit, render_rows, short, state
from setpoint.errors import UsageError

scoring_app = typer.Typer(
    cls=Group,
    help="Batch scoring runs (`setpoint predict`): which model version scored which "
    "inputs, their row counts and how they ended.",
    no_args_is_help=True,
)

_COLOURS = {"succeeded": "green", "failed": "red", "running": "cyan"}


def state_text(run: RecordedRun) -> str:
    """The run's state, said plainly: a ``running`` run whose process is gone died."""
    if run.orphaned:
        return "running (its process is gone: it died unfinished)"
    return run.state


@scoring_app.command("list")
def scoring_list(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(help="Only runs of this model: NAME, or NAME@VERSION.", show_default=False),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Only runs through this endpoint.", show_default=False)
    ] = None,
    state_: Annotated[
        str | None,
        typer.Option("--state", help=f"Only runs in this state: {', '.join(STATES)}."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    json_: JsonFlag = False,
) -> None:
    """List scoring runs, newest first: model version, rows, state."""
    if state_ is not None and state_ not in STATES:
        raise UsageError(f"--state {state_!r}: use one of {', '.join(STATES)}")
    name, version = None, None
    if model is not None:
        name, selector = split_ref("model", model)
        if selector is not None:
            if not selector.isdigit():
                raise UsageError(f"--model {model!r}: give NAME or NAME@VERSION (a number)")
            version = int(selector)
    ws = state(ctx).workspace()
    found = ws.scoring_runs.list(
        model=name, version=version, endpoint=endpoint, state=state_, limit=limit
    )

    def render(c: Console) -> None:
        if not found:
            c.print("No scoring runs. Score files with: setpoint predict MODEL -i IN -o OUT")
            return
        render_rows(
            c,
            [
                short("id", "right"),
                Col("model", fold=10),
                Col("endpoint", fold=8),
                short("rows", "right"),
                short("scored", "right"),
                short("kept", "right"),
                short("state"),
                short("started"),
            ],
            [
                (
                    str(run.id),
                    run.ref,
                    run.endpoint or "-",
                    count(run.n_rows),
                    count(run.n_scored),
                    count(run.n_quarantined),
                    Text(
                        "died" if run.orphaned else run.state,
                        style=_COLOURS.get(run.state, ""),
                    ),
                    _short(run.started_at),
                )
                for run in found
            ],
            caption="kept: quarantined rows; times: month-day hour:minute, UTC",
        )

    emit(ctx, [run.to_dict() for run in found], render)


@scoring_app.command("show")
def scoring_show(
    ctx: typer.Context,
    run_id: Annotated[
        int, typer.Argument(help="The run id (from scoring list).", show_default=False)
    ],
    json_: JsonFlag = False,
) -> None:
    """Show one scoring run: its model version, inputs with their fingerprints, output,
    row counts, quarantine batches and how it ended."""
    run = state(ctx).workspace().scoring_runs.get(run_id)

    def render(c: Console) -> None:
        c.print(f"scoring run {run.id}: {run.ref}, {state_text(run)}", markup=False)
        fields = {
            "endpoint": run.endpoint,
            "engine": run.engine,
            "rows": f"{count(run.n_rows)} read, {count(run.n_scored)} scored, "
            f"{count(run.n_quarantined)} quarantined",
            "quarantine": ", ".join(f"batch {q}" for q in run.quarantine) or None,
            "output": run.output,
            "started (UTC)": f"{_when(run.started_at)} by {run.created_by}",
            "finished (UTC)": _when(run.finished_at),
            "runner": run.runner,
            "error": run.error,
        }
        for name, value in fields.items():
            c.print(f"  {name:<15} {value or '-'}", markup=False)
        render_rows(
            c,
            [Col("input", fold=20), short("bytes", "right"), Col("fingerprint", fold=12)],
            [
                (
                    item["uri"],
                    count(item.get("size")),
                    f"sha256 {item['sha256'][:16]}…"
                    if item.get("sha256")
                    else f"etag {item.get('etag') or '-'}",
                )
                for item in run.inputs
            ],
            title="inputs",
        )
        if run.quarantine:
            c.print(
                "Export them with: setpoint data quarantine export ID -o rejected.csv",
                markup=False,
            )

    emit(ctx, run.to_dict(), render)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _short(value: datetime) -> str:
    return value.strftime("%m-%d %H:%M")
