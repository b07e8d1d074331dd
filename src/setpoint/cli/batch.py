"""``setpoint predict``: CSV or Parquet files scored with a model version
(``batch/score.py`` does the work; this is the command line around it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from setpoint.cli._common import JsonFlag, count, emit, progress_bar, state
from setpoint.errors import UsageError

if TYPE_CHECKING:
    from setpoint.data.quarantine import QuarantineBatch

ENGINES = ("local", "ray")
InputFiles = Annotated[
    list[str],
    typer.Option(
        "--input",
        "-i",
        help="A .csv or .parquet file, or a glob of them (quote it), a path or a URI "
        "such as 's3://bucket/in/*.parquet'; may be repeated. Files are read in "
        "name order.",
        show_default=False,
    ),
]


def predict(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL_OR_ENDPOINT",
            help="A model: NAME (its champion, else latest), NAME@VERSION, NAME@ALIAS; "
            "MLflow's models:/NAME/VERSION and models:/NAME@ALIAS too. Or an endpoint's "
            "NAME: the version it serves scores, and the rows are logged to it and "
            "monitored like its online traffic.",
            show_default=False,
        ),
    ],
    input_: InputFiles,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="The .csv or .parquet file to write (a path or a URI such as "
            "s3://bucket/scored.parquet): the accepted rows with prediction (and "
            "proba_CLASS per class for a classifier), in the input's order. It appears "
            "only when every input is scored.",
            show_default=False,
        ),
    ],
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            help="A column outside the contract (a row id) to leave out of the check and "
            "copy to the output beside the predictions; may be repeated.",
            show_default=False,
        ),
    ] = None,
    endpoint: Annotated[
        bool,
        typer.Option(
            "--endpoint",
            help="MODEL_OR_ENDPOINT is an endpoint (for a name that is also a model's).",
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="local: this machine's cores; ray: a Ray cluster's (pip install "
            "'setpoint[ray]'), with the same output."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="The Ray cluster to score on (--engine ray), e.g. 10.0.0.5:6379. "
            "Default: $RAY_ADDRESS, else a cluster on this machine for the run.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Scoring threads (local) or Ray actors (ray). Default: one per core "
            "(of the cluster).",
        ),
    ] = None,
    compression: Annotated[
        str | None,
        typer.Option(
            help="How a .parquet output is compressed: snappy (default), zstd (text such "
            "as row ids half snappy's size, floats 4 % smaller, for twice the CPU), lz4 "
            "or none.",
            show_default=False,
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Score files with a model, or through an endpoint: rows the contract refuses are
    quarantined with their reasons, the others written with the model's outputs; the
    run is recorded (`setpoint scoring list`).

    Examples: `setpoint predict credit-risk@3 -i 'in/*.parquet' -o scored.parquet`;
    `setpoint predict credit -i in.csv -o out.csv` through the endpoint credit."""
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r}: use local or ray")
    if address is not None and engine != "ray":
        raise UsageError("--address names a Ray cluster: add --engine ray, or leave it out")
    ws = state(ctx).workspace()
    with progress_bar(ctx, "scoring") as update:
        run = ws.predict_files(
            model,
            input_,
            output,
            endpoint=True if endpoint else None,
            keep=keep or (),
            workers=workers,
            progress=update,
            engine=engine,
            address=address,
            compression=compression,
        )
    data = run.to_dict()

    def render(c: Console) -> None:
        c.print(
            f"Scored {count(run.n_scored)} of {count(run.n_rows)} rows with {run.model}.",
            highlight=False,
        )
        c.print(
            f"{run.seconds:.1f} s, {count(round(run.rows_per_second))} rows/s on "
            f"{run.workers} {'Ray actor' if run.engine == 'ray' else 'worker'}(s).",
            highlight=False,
        )
        c.print(f"Wrote {escape(run.output)}.", highlight=False)
        if run.endpoint is not None:
            c.print(
                f"Logged the rows to endpoint {escape(run.endpoint)} (monitored as its traffic).",
                highlight=False,
            )
        if run.id is not None:
            c.print(
                f"Recorded as scoring run {run.id}: setpoint scoring show {run.id}",
                highlight=False,
            )
        render_quarantined(c, run.quarantine)

    emit(ctx, data, render)


def render_quarantined(c: Console, batches: Sequence[QuarantineBatch]) -> None:
    """Each input's refused rows, kept in the quarantine, and how to export them."""
    for q in batches:
        top = q.top_reason
        why = f" (mostly {top['column']} {top['rule']})" if top else ""
        c.print(
            f"{q.source.rsplit('/', 1)[-1]}: quarantined {count(q.n_rejected)} "
            f"row{'s' if q.n_rejected != 1 else ''}{why} as batch {q.id}.",
            highlight=False,
        )
    if batches:
        c.print(
            "Export them with: setpoint data quarantine export ID -o rejected.csv",
            highlight=False,
        )
