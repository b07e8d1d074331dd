"""``setpoint erase``: every stored row about one subject, removed (GDPR Art. 17)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from setpoint.cli._common import JsonFlag, emit, progress_bar, state
from setpoint.errors import UsageError


def erase(
    ctx: typer.Context,
    where: Annotated[
        str,
        typer.Option(
            help="The subject: COLUMN=VALUE, e.g. customer_id=123 (a PII column is "
            "matched by its keyed hash in the logs).",
            show_default=False,
        ),
    ],
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="Only this endpoint's logs (and, unless --dataset is given too, no "
            "dataset or quarantine)."
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Only this dataset's versions and quarantined rows (and, unless "
            "--endpoint is given too, no log)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would go; change nothing.")
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Find every stored row about one subject and remove it: the prediction, refused
    and feedback logs of every endpoint, quarantined rows, and dataset versions (each
    one that held the rows is replaced by a new version without them; its bytes are
    deleted, its record stays, marked erased). Models trained on erased data are
    listed so that you can decide to retrain; values only the subject had leave
    profiles, contracts and monitor references. With both --endpoint and --dataset,
    both are searched: that endpoint's logs and that dataset's versions. Every option
    is checked before anything changes. The audit log records where rows were erased
    and how many, nothing that points at the subject."""
    column, sep, value = where.partition("=")
    if not sep or not column.strip():
        raise UsageError(f"--where {where!r}: give COLUMN=VALUE, e.g. --where customer_id=123")
    ws = state(ctx).workspace()
    with progress_bar(ctx, "erasing" if not dry_run else "looking") as update:
        report = ws.erase(
            column.strip(),
            value,
            endpoint=endpoint,
            dataset=dataset,
            dry_run=dry_run,
            progress=lambda step: update(step, 0.0),
        )

    def render(c: Console) -> None:
        verb = "Would remove" if dry_run else "Removed"
        c.print(f"{verb} {report.rows:,} row(s) where {escape(column.strip())} is the subject's.")
        table = Table("where", "rows", "note")
        for kind, n in report.logs.items():
            table.add_row(f"{kind} log", f"{n:,}", "")
        for q in report.quarantine:
            table.add_row(f"quarantine batch {q['batch']}", f"{q['rows']:,}", "")
        for d in report.datasets:
            note = "" if dry_run else f"now {d.get('replaced_by') or 'empty: no version left'}"
            table.add_row(escape(f"dataset {d['version']}"), f"{d['rows']:,}", escape(note))
        c.print(table)
        if report.logs_skipped:
            c.print(
                f"{report.logs_skipped:,} row(s) are in a log segment a server is still "
                "writing and did not seal in time: run this again."
            )
        for note in report.notes:
            c.print(f"Note: {escape(note)}.")
        if report.monitors:
            c.print(
                "Monitor references rebuilt from the replacement data: "
                + escape(", ".join(report.monitors))
            )
        if report.models:
            c.print(
                "Trained on erased data (retrain them if they must not have seen it): "
                + escape(", ".join(sorted(set(report.models))))
            )

    emit(ctx, report.to_dict(), render)
