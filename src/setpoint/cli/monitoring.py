"""``setpoint monitor`` and ``setpoint alerts``: is each endpoint still on target."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from setpoint.cli._common import (
    Col,
    Group,
    JsonFlag,
    NoMultivariate,
    StaticThresholds,
    count,
    emit,
    fmt,
    progress_bar,
    read_text,
    render_rows,
    short,
    state,
    write_rows,
    writing,
)
from setpoint.cli.compare import compare
from setpoint.errors import UsageError
from setpoint.monitoring.cost import describe, money
from setpoint.monitoring.parallel import ENGINES

monitor_app = typer.Typer(
    cls=Group,
    help="Drift, data quality and performance of an endpoint's traffic, window by window.",
    no_args_is_help=True,
)
alerts_app = typer.Typer(cls=Group, help="Alerts the monitors raised.", no_args_is_help=True)

Endpoint = Annotated[str, typer.Argument(help="Endpoint name, e.g. credit.", show_default=False)]


@monitor_app.command("create")
def create(
    ctx: typer.Context,
    endpoint: Endpoint,
    window: Annotated[
        str, typer.Option(help="Window length: a span of time such as 30m, 1h or 1d.")
    ] = "1d",
    reference: Annotated[
        str | None,
        typer.Option(
            help="Reference dataset NAME@VERSION (default: the served model's training data)."
        ),
    ] = None,
    webhook: Annotated[
        list[str] | None,
        typer.Option(help="URL to post alerts to (repeatable); add ,slack for Slack's format."),
    ] = None,
    no_multivariate: NoMultivariate = False,
    static_thresholds: StaticThresholds = False,
    late_label_windows: Annotated[
        int,
        typer.Option(
            min=0,
            help="Labels come late: each run updates the realized performance of this many "
            "latest windows with the labels that came since (0: never).",
        ),
    ] = 4,
    max_refused_share: Annotated[
        float,
        typer.Option(
            "--max-refused",
            min=0.0,
            max=1.0,
            help="Alert when the server refuses at least this share of a window's rows for "
            "their values (listed by: setpoint monitor refused).",
        ),
    ] = 0.01,
    max_out_of_contract_share: Annotated[
        float,
        typer.Option(
            "--max-outside",
            min=0.0,
            max=1.0,
            help="Alert when at least this share of a window's answered rows lie outside "
            "the contract's ranges or categories (answered, with a warning).",
        ),
    ] = 0.05,
    time_column: Annotated[
        str | None,
        typer.Option(
            help="The reference's column of dates or times (default: the training spec's "
            "time split column): thresholds are also learned from its own windows of time."
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Rebuild an existing monitor (its windows go).")
    ] = False,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Monitor settings (YAML; every key in docs/reference/monitor.md). Options "
            "given on the command line override the file's values.",
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Create the monitor of an endpoint; its reference is summarized once, now."""
    from setpoint.monitoring.settings import MonitorConfig

    values: dict[str, Any] = {}
    if config_file is not None:
        values = MonitorConfig.read_yaml(read_text(config_file), source=str(config_file)).to_dict()
    given = {
        "window": window,
        "multivariate": not no_multivariate,
        "learn_thresholds": not static_thresholds,
        "late_label_windows": late_label_windows,
        "max_refused_share": max_refused_share,
        "max_out_of_contract_share": max_out_of_contract_share,
        "time_column": time_column,
    }
    option = {"multivariate": "no_multivariate", "learn_thresholds": "static_thresholds"}
    for key, value in given.items():
        if config_file is None or _on_command_line(ctx, option.get(key, key)):
            values[key] = value
    if webhook is not None:
        hooks = []
        for spec in webhook:
            url, _, form = spec.partition(",")
            hooks.append({"url": url, "format": form or "json"})
        values["webhooks"] = hooks
    config = MonitorConfig.read(values)
    ws = state(ctx).workspace()
    with progress_bar(ctx, f"summarizing the reference of {endpoint}") as update:
        update("reading the data and scoring it", 0.1)
        monitor = ws.monitors.create(endpoint, config, reference=reference, replace=replace)
        update("done", 1.0)

    def render(c: Console) -> None:
        ref = monitor.reference
        c.print(
            f"Monitor for [bold]{endpoint}[/]: windows of {config.window}, reference "
            f"{ref.dataset} ({ref.n_rows:,} rows) scored by {ref.model}; "
            f"{len(ref.features)} features. Compute it with: setpoint monitor run {endpoint}"
        )
        learned = ref.learned_for(config.window)
        if learned is not None:
            c.print(
                f"Thresholds are also learned from {learned.chunks} windows of "
                f"{config.window} of the reference's own time ({ref.time_column})."
            )

    emit(ctx, monitor.to_dict(), render)


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line (not its default)."""
    source = ctx.get_parameter_source(name)  # Typer's own copy of click's enum: by name
    return source is not None and source.name == "COMMANDLINE"


@monitor_app.command("run")
def run(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Argument(help="Endpoint name (default: every monitored endpoint).")
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(help="Compute windows that end by this time (UTC; default: now)."),
    ] = None,
    recompute: Annotated[
        bool, typer.Option("--recompute", help="Compute windows already computed again.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Measure the windows in N processes (or Ray tasks) at once, with the "
            "same results. Default: 1; with ray, one per CPU of the cluster.",
            show_default=False,
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            metavar="local|ray",
            help="local: processes on this machine. ray: tasks on the Ray cluster "
            "(--address or RAY_ADDRESS, else Ray started here; needs setpoint[ray]).",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="The Ray cluster to run on (--engine ray), e.g. 10.0.0.5:6379.",
            show_default=False,
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Compute every complete window not computed yet, and raise or resolve alerts."""
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r}: use local or ray")
    if address is not None and engine != "ray":
        raise UsageError("--address names a Ray cluster: add --engine ray, or leave it out")
    ws = state(ctx).workspace()
    names = [endpoint] if endpoint else [m.endpoint for m in ws.monitors.all()]
    if not names:
        raise UsageError(
            "no endpoint has a monitor; create one with: setpoint monitor create ENDPOINT"
        )
    computed: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        with progress_bar(ctx, f"monitoring {name}") as update:

            def report(done: int, total: int, update: Any = update) -> None:
                update(f"window {done}/{total}", done / total)

            windows = ws.monitors.run(
                name,
                until=until,
                recompute=recompute,
                progress=report,
                workers=workers,
                engine=engine,
                address=address,
            )
        computed[name] = [_brief(w.to_dict()) for w in windows]

    def render(c: Console) -> None:
        for name, windows in computed.items():
            if not windows:
                c.print(f"{name}: no new complete window.")
                continue
            _table(c, name, windows)
            for w in windows:
                if w["drifted"]:
                    c.print(
                        f"  {w['start'][:16].replace('T', ' ')}: " + escape(", ".join(w["drifted"]))
                    )

    emit(ctx, computed, render)


@monitor_app.command("backfill")
def backfill(
    ctx: typer.Context,
    endpoint: Endpoint,
    file: Annotated[
        Path,
        typer.Argument(help="Past traffic: a .csv or .parquet file.", show_default=False),
    ],
    time_column: Annotated[
        str, typer.Option(help="The column that says when each row was served.")
    ],
    label_column: Annotated[
        str | None,
        typer.Option(help="The outcome of each row, sent as feedback at the row's time."),
    ] = None,
    prediction_column: Annotated[
        str | None,
        typer.Option(
            help="The answer the model gave then (default: score the rows with the model)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="The model that served then, NAME@VERSION (default: the endpoint's)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Add a table that was backfilled before (counts twice)."),
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Write past traffic into an endpoint's logs at the data's own time, so that
    monitor run computes its windows on that time. Rows the server would refuse (a
    hard contract rule, or an enforce: reject column) are kept in the refused log with
    their reasons; rows outside what the model saw are scored and marked. Backfill
    before the first monitor run (windows already computed are not computed again
    unless run with --recompute)."""
    from setpoint.data.io import read_file

    ws = state(ctx).workspace()
    table = read_file(file)
    with progress_bar(ctx, f"backfilling {endpoint}") as update:

        def report(done: int, total: int) -> None:
            update(f"{done:,}/{total:,} rows", done / total)

        result = ws.monitors.backfill(
            endpoint,
            table,
            time_column=time_column,
            label_column=label_column,
            prediction_column=prediction_column,
            model=model,
            force=force,
            progress=report,
        )

    def render(c: Console) -> None:
        span = (
            f"{result.first:%Y-%m-%d %H:%M} to {result.last:%Y-%m-%d %H:%M} UTC"
            if result.first and result.last
            else "no time"
        )
        c.print(
            f"Backfilled {result.scored:,} of {result.rows:,} rows into {endpoint} "
            f"({span}), answered by {result.model}."
        )
        if result.marked:
            c.print(f"{result.marked:,} were outside what the model saw: scored and marked.")
        if result.refused:
            c.print(
                f"{result.refused:,} were refused by the contract and kept with their "
                f"reasons: setpoint monitor refused {endpoint}"
            )
        if label_column:
            c.print(f"{result.labels:,} outcomes sent as feedback.")
        c.print(f"Next: setpoint monitor run {endpoint}")

    emit(ctx, result.to_dict(), render)


@monitor_app.command("show")
def show(
    ctx: typer.Context,
    endpoint: Endpoint,
    last: Annotated[int, typer.Option(help="How many of the latest windows.")] = 10,
    json_: JsonFlag = False,
) -> None:
    """The latest windows of an endpoint: drift, quality, performance, latency."""
    ws = state(ctx).workspace()
    monitor = ws.monitors.get(endpoint)
    windows = [w.to_dict() for w in ws.monitors.windows(endpoint, limit=last)]

    def render(c: Console) -> None:
        ref = monitor.reference
        # folded at the width of the terminal, as a name never is
        c.print(
            f"[bold]{escape(endpoint)}[/]: windows of {monitor.config.window} against "
            f"{escape(ref.dataset)} scored by {escape(ref.model)}",
            soft_wrap=False,
        )
        if not windows:
            c.print(f"No window computed yet: setpoint monitor run {endpoint}")
            return
        _table(c, endpoint, [_brief(w) for w in windows])
        latest = windows[-1]
        cost = describe(latest.get("cost"))
        if cost is not None:
            prices = latest["cost"]["prices"]
            c.print(
                f"Cost of the latest window: {cost}, at {money(prices['cpu_hour'])} a "
                f"core-hour and {money(prices['gb_hour'])} a GB-hour."
            )
        drift = latest["drift"]
        if not latest.get("judged", True):
            c.print(
                f"The latest window has {latest['n_rows']:,} rows: not judged "
                f"(drift is judged from {monitor.config.drift.min_rows:,} rows on)."
            )
        for name in drift["drifted_features"]:
            reasons = "; ".join(drift["features"][name]["reasons"])
            c.print(f"  [yellow]{escape(name)}[/]: {escape(reasons)}", soft_wrap=False)
        for name, output in (drift.get("prediction") or {}).items():
            if output["drifted"]:
                what = "the model's answers" if name == "__prediction__" else "its scores"
                c.print(
                    f"  [yellow]{what}[/]: {escape('; '.join(output['reasons']))}", soft_wrap=False
                )

    emit(ctx, {"monitor": monitor.to_dict(), "windows": windows}, render)


@monitor_app.command("refused")
def refused(
    ctx: typer.Context,
    endpoint: Endpoint,
    since: Annotated[
        datetime | None, typer.Option(help="Only rows refused at or after this time (UTC).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Only rows refused before this time (UTC).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write every matching row to a .csv or .parquet file: its inputs (PII "
            "masked), where it came from (_ts, _request_id, _row, _model, _version) and "
            "_reasons (JSON).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, help="How many of the latest rows to list (not to export).")
    ] = 20,
    json_: JsonFlag = False,
) -> None:
    """Rows the server refused for their values (a wrong type, a missing value, a
    missing or undeclared column, or a value outside a column with enforce: reject),
    kept with the reasons: list the latest, or export them to fix and send again."""
    from setpoint.serving.refused import META, REASONS, read_refused, reasons_of, top_reasons

    ws = state(ctx).workspace()
    ws.deployments.get(endpoint)  # an unknown endpoint is a mistake, not an empty list
    rows = read_refused(ws.logs, endpoint, since=since, until=until)
    top = top_reasons(rows)
    if output is not None:
        write_rows(rows, output)
        emit(
            ctx,
            {"endpoint": endpoint, "rows": rows.num_rows, "output": str(output)},
            lambda c: c.print(f"Wrote {rows.num_rows:,} refused rows of {endpoint} to {output}."),
        )
        return
    latest = rows.slice(max(0, rows.num_rows - limit))
    inputs = [n for n in latest.column_names if n not in META and n != REASONS]
    listed = [
        {
            "ts": r["_ts"].isoformat(),
            "request_id": r["_request_id"],
            "row": r["_row"],
            "model": r["_model"],
            "version": r["_version"],
            "inputs": {n: r[n] for n in inputs},
            "reasons": why,
        }
        for r, why in zip(latest.to_pylist(), reasons_of(latest), strict=True)
    ]

    def render(c: Console) -> None:
        if not rows.num_rows:
            c.print(f"{endpoint}: no refused rows.")
            return
        c.print(f"{endpoint}: {rows.num_rows:,} refused rows.")
        render_rows(
            c,
            ["column", short("rule"), short("rows", "right")],
            [(str(column), str(rule), count(n)) for column, rule, n in top],
            title="Most frequent reasons",
        )
        render_rows(
            c,
            [short("when (UTC)"), short("request"), short("row", "right"), "reasons"],
            [
                (
                    r["ts"][:16].replace("T", " "),
                    # the end of the id tells requests apart; --json has it whole
                    "..." + r["request_id"][-8:],
                    str(r["row"]),
                    "; ".join(
                        f"{w['column']} {w['rule']}"
                        + ("" if w["value"] is None else f" {w['value']}")
                        for w in r["reasons"]
                    ),
                )
                for r in listed
            ],
            title=f"The latest {len(listed)}",
        )
        c.print(f"Export them all: setpoint monitor refused {endpoint} -o refused.csv")

    emit(
        ctx,
        {
            "endpoint": endpoint,
            "rows": rows.num_rows,
            "top_reasons": [{"column": c, "rule": r, "rows": n} for c, r, n in top],
            "latest": listed,
        },
        render,
    )


def report(
    ctx: typer.Context,
    endpoint: Endpoint,
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    last: Annotated[
        int | None, typer.Option(help="Only the latest windows (default: all).")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Write one self-contained HTML report of an endpoint: drift over time, the
    distributions that moved, estimated and realized performance, data quality,
    latency and volume, and alerts. It opens offline in any browser."""
    from setpoint.monitoring.report import ReportData, write_report

    ws = state(ctx).workspace()
    data = ReportData.from_dict(ws.monitors.report_data(endpoint, last=last))
    with writing(output):
        path = write_report(output, data)
    emit(
        ctx,
        {"report": str(path), "windows": len(data.windows)},
        lambda c: c.print(f"Wrote {path} ({len(data.windows)} windows of {endpoint})."),
    )


@alerts_app.command("list")
def alerts_list(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's alerts.")] = None,
    state_: Annotated[
        str | None, typer.Option("--state", help="open, acknowledged or resolved.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, most recent first.")] = 50,
    json_: JsonFlag = False,
) -> None:
    """List alerts, most recently seen first, with how their notifications went."""
    ws = state(ctx).workspace()
    found = ws.monitors.alerts.list(endpoint=endpoint, state=state_, limit=limit)
    deliveries = {a.id: ws.monitors.alerts.list_deliveries(a.id) for a in found}

    def render(c: Console) -> None:
        if not found:
            c.print("No alerts.")
            return
        columns: list[Col | str] = [
            short("id", "right"),
            "endpoint",
            short("severity"),
            short("state"),
        ]
        columns += [short("seen", "right"), short("last seen (UTC)"), Col("message", 30), "sent"]
        render_rows(
            c,
            columns,
            [
                (
                    str(a.id),
                    a.endpoint,
                    a.severity,
                    a.state,
                    count(a.count),
                    a.last_seen.strftime("%Y-%m-%d %H:%M"),
                    a.message,
                    ", ".join(d.status for d in deliveries[a.id]) or "-",
                )
                for a in found
            ],
        )

    emit(
        ctx,
        [{**a.to_dict(), "deliveries": [d.to_dict() for d in deliveries[a.id]]} for a in found],
        render,
    )


@alerts_app.command("ack")
def alerts_ack(
    ctx: typer.Context,
    alert_id: Annotated[
        int, typer.Argument(help="The alert id (from alerts list).", show_default=False)
    ],
    note: Annotated[str, typer.Option(help="Why, for whoever reads it next.")] = "",
    json_: JsonFlag = False,
) -> None:
    """Acknowledge an alert: it stays open but stops sending reminders."""
    ws = state(ctx).workspace()
    alert = ws.monitors.alerts.acknowledge(alert_id, ws.actor, note)
    emit(ctx, alert.to_dict(), lambda c: c.print(f"Acknowledged alert {alert.id}: {alert.message}"))


def _brief(window: dict[str, Any]) -> dict[str, Any]:
    """The figures of a window a table row shows."""
    drift = window["drift"]
    performance = window["performance"]
    estimated = (performance.get("estimated") or {}).get("accuracy")
    realized = performance.get("realized") or {}
    domain = window.get("multivariate")
    judged = window.get("judged", True)
    outputs = drift.get("prediction") or {}
    return {
        "start": window["start"],
        "end": window["end"],
        "rows": window["n_rows"],
        "judged": judged,
        "verdict": "not judged" if not judged else "drift" if drift["drifted"] else "judged",
        "drifted": drift["drifted_features"],
        "drift_share": drift["drift_share"] if judged else None,
        "prediction_drifted": (
            any(o["drifted"] for o in outputs.values()) if judged and outputs else None
        ),
        "domain_auc": None if not domain else domain["auc"],
        "estimated_accuracy": None if estimated is None else estimated["value"],
        "realized_accuracy": realized.get("accuracy"),
        "labels": realized.get("labels"),
        "p99_ms": window["latency"]["p99_ms"],
    }


def _table(c: Console, endpoint: str, windows: list[dict[str, Any]]) -> None:
    """One row per window, in 80 columns: the drifted features' names are listed
    below the table for the latest window. Figures too wide for the table (a busy
    endpoint's hourly windows) turn it into one record per window, never "0.5…"."""
    daily = all(w["start"][11:16] == "00:00" for w in windows)
    rows = []
    for w in windows:
        if not w["judged"]:
            share, output = "not judged", "-"
        else:
            share = "-" if w["drift_share"] is None else f"{w['drift_share']:.0%}"
            output = {True: "drift", False: "stable", None: "-"}[w["prediction_drifted"]]
        rows.append(
            (
                w["start"][:10] if daily else w["start"][:16].replace("T", " "),
                f"{w['rows']:,}",
                share,
                output,
                fmt(w["domain_auc"], 3),
                fmt(w["estimated_accuracy"], 3),
                fmt(w["realized_accuracy"], 3),
                fmt(w["labels"]),
                fmt(w["p99_ms"], 3),
            )
        )
    render_rows(
        c,
        [
            short("window (UTC)"),
            short("rows", "right"),
            short("input\ndrift", "right"),
            short("output"),
            short("domain\nAUC", "right"),
            short("est.\nacc.", "right"),
            short("acc.", "right"),
            short("labels", "right"),
            short("p99\nms", "right"),
        ],
        rows,
        title=endpoint,
        compact=True,
    )


# `setpoint monitor compare` needs no workspace; its module says why it stands apart.
monitor_app.command("compare")(compare)
