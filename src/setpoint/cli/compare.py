"""``setpoint monitor compare``: two tables compared offline, no server, no workspace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from setpoint.cli._common import (
    Col,
    JsonFlag,
    NoMultivariate,
    StaticThresholds,
    emit,
    progress_bar,
    render_rows,
    short,
    state,
    writing,
)
from setpoint.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

    from setpoint.monitoring.comparison import Comparison

_FILES = (".csv", ".parquet", ".pq")


def compare(
    ctx: typer.Context,
    reference: Annotated[
        str,
        typer.Argument(
            help="The reference: a CSV or Parquet file, or a dataset NAME@VERSION.",
            show_default=False,
        ),
    ],
    current: Annotated[
        str,
        typer.Argument(
            help="The data to compare with it: a file or a dataset NAME@VERSION.",
            show_default=False,
        ),
    ],
    time_column: Annotated[
        str | None,
        typer.Option(help="The column of dates or times that orders the rows."),
    ] = None,
    chunk: Annotated[
        str | None,
        typer.Option(
            help="Cut the current data into periods of --time-column (1d, 1w, 1M, 1q, "
            "1y) or runs of rows (10000). Default: one chunk."
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The true outcome's column, for realized performance.")
    ] = None,
    prediction: Annotated[
        str | None,
        typer.Option(help="The model's answer's column: its drift is judged apart."),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated columns to compare (default: all but the time, target "
            "and prediction, leaving out free text)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="The HTML report to write (default: CURRENT-vs-REFERENCE.html here).",
        ),
    ] = None,
    no_multivariate: NoMultivariate = False,
    static_thresholds: StaticThresholds = False,
    json_: JsonFlag = False,
) -> None:
    """Compare a current table with a reference, chunk by chunk: drift of every
    feature and of the model's answers, the domain classifier, data quality and
    realized performance, with the monitors' engine. Files need no workspace.

    Writes the same HTML report monitors have, and prints a verdict per chunk."""
    from setpoint.monitoring.compare import compare as run_compare
    from setpoint.monitoring.comparison import wrap

    path = output or Path(f"{_stem(current)}-vs-{_stem(reference)}.html")
    with progress_bar(ctx, "comparing") as update:
        update("reading the data", 0.0)
        ref, ref_name = _table(ctx, reference, "REFERENCE")
        cur, cur_name = _table(ctx, current, "CURRENT")
        update("summarizing the reference", 0.05)

        def report(done: int, total: int) -> None:
            update(f"chunk {done}/{total}", 0.05 + 0.95 * done / total)

        result = run_compare(
            ref,
            cur,
            time_column=time_column,
            chunk=chunk,
            features=None if features is None else _names(features),
            target=target,
            prediction=prediction,
            multivariate=not no_multivariate,
            learn_thresholds=not static_thresholds,
            progress=report,
            names=(ref_name, cur_name),
        )
    with writing(path):
        written = result.write_report(path)

    def render(c: Console) -> None:
        for line in wrap(result.headline()):
            c.print(line, markup=False)
        _verdicts(c, result)
        for note in result.notes:
            for line in wrap(f"Note: {note}"):
                c.print(line, markup=False)
        for line in wrap(f"Wrote the report to {written}."):
            c.print(line, markup=False)

    emit(ctx, {**result.to_dict(), "report": str(written)}, render)


def _table(ctx: typer.Context, given: str, what: str) -> tuple[str | pa.Table, str]:
    """A file's path as it is (``compare`` reads it), or a dataset's table; and how to
    name it."""
    if Path(given).suffix.lower() in _FILES or Path(given).exists():
        return given, Path(given).name
    try:
        workspace = state(ctx).workspace()
    except NotFoundError as error:
        raise UsageError(
            f"{what} {given!r} is not a file here; as a dataset NAME@VERSION it needs a "
            f"workspace ({error.message}). Give a CSV or Parquet file instead."
        ) from None
    version = workspace.dataset(given)
    return workspace.load_dataset(version.ref), version.ref


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--features names no column; give them comma-separated: a,b,c")
    return names


def _stem(given: str) -> str:
    name = Path(given).stem if Path(given).suffix.lower() in _FILES else given
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "data"


def _verdicts(c: Console, result: Comparison) -> None:
    """A row per chunk; the drifted features' names fold, whole, in their column."""
    head, cells = result.cells()
    chunk, rows, verdict, drifted, *figures = head  # figures: the AUC, the metric
    columns = [short(chunk), short(rows, "right"), short(verdict), Col(drifted)]
    columns += [short(name, "right") for name in figures]
    render_rows(c, columns, cells, title="Chunks")
