"""``setpoint logs``: the endpoints' logs on disk (predictions, feedback, refused rows)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from setpoint.cli._common import Group, JsonFlag, count, emit, render_rows, short, state

logs_app = typer.Typer(
    cls=Group,
    help="The endpoints' logs of predictions, feedback and refused rows.",
    no_args_is_help=True,
)


@logs_app.command("prune")
def prune(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None,
        typer.Argument(help="Endpoint name (default: every endpoint with a log retention)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; change nothing.")
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Delete log records older than the endpoint's log retention, now.

    Set the retention with `setpoint deploy ENDPOINT --log-retention 90d`; a daily job
    run by the worker does the same. Each run is an audit event with the counts.
    """
    results = state(ctx).workspace().prune_logs(endpoint, dry_run=dry_run)

    def render(c: Console) -> None:
        if not results:
            c.print(
                "No endpoint has a log retention; set one with: "
                "setpoint deploy ENDPOINT --log-retention 90d"
            )
            return
        verb = "would remove" if dry_run else "removed"
        for result in results:
            before = result.before.strftime("%Y-%m-%d %H:%M")
            c.print(
                Text.assemble(
                    (result.endpoint, "bold"),
                    f": retention {result.retention}, records before {before} UTC",
                ),
                soft_wrap=False,
            )
            render_rows(
                c,
                [
                    short("log"),
                    short(f"rows {verb}", "right"),
                    short("files rewritten", "right"),
                    short("files deleted", "right"),
                ],
                [
                    (
                        log.kind,
                        count(log.rows_removed),
                        count(log.files_rewritten),
                        count(log.files_deleted),
                    )
                    for log in result.logs
                ],
            )
            if result.rows_skipped:
                c.print(
                    f"{result.rows_skipped:,} old rows are in a segment a server is still "
                    "writing and did not close in time; run this again.",
                    soft_wrap=False,
                )

    emit(ctx, [result.to_dict() for result in results], render)


@logs_app.command("compact")
def compact(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Turn the logs' closed segments into Parquet, now.

    Readers and the monitor read Parquet much faster than segments. With log_uri set,
    this machine's sealed segments are moved to the store first and the store's are
    compacted there. An hourly job run by the worker does the same.
    """
    results = state(ctx).workspace().compact_logs()

    def render(c: Console) -> None:
        render_rows(
            c,
            [
                short("log"),
                short("segments", "right"),
                short("records", "right"),
                short("parts written", "right"),
                short("still open", "right"),
            ],
            [
                (kind, count(r.segments), count(r.records), count(r.parts), count(r.live))
                for kind, r in results.items()
            ],
        )

    emit(ctx, {kind: asdict(r) for kind, r in results.items()}, render)
