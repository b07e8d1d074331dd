"""``setpoint erase``: every stored row about one subject, removed (GDPR Art. 17)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from setpoint.cli._common import JsonFlag, count, emit, progress_bar, render_rows, short, state
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
        def say(text: str) -> None:  # prose with the user's names, wrapped at 80 columns
            c.print(Text(text), soft_wrap=False)

        verb = "Would remove" if dry_run else "Removed"
        say(f"{verb} {report.rows:,} row(s) where {column.strip()} is the subject's.")
        rows = [(f"{kind} log", count(n), "") for kind, n in report.logs.items()]
        for q in report.quarantine:
            rows.append((f"quarantine batch {q['batch']}", count(q["rows"]), ""))
        for d in report.datasets:
            note = "" if dry_run else f"now {d.get('replaced_by') or 'empty: no version left'}"
            rows.append((f"dataset {d['version']}", count(d["rows"]), note))
        render_rows(c, ["where", short("rows", "right"), "note"], rows)
        if report.logs_skipped:
            say(
                f"{report.logs_skipped:,} row(s) are in a log segment a server is still "
                "writing and did not seal in time: run this again."
            )
        for note in report.notes:
            say(f"Note: {note}.")
        if report.monitors:
            say(
                "Monitor references rebuilt from the replacement data: "
                + ", ".join(report.monitors)
            )
        if report.models:
            say(
                "Trained on erased data (retrain them if they must not have seen it): "
                + ", ".join(sorted(set(report.models)))
            )

    emit(ctx, report.to_dict(), render)
