"""``setpoint loadtest``: the sustainable rate of a served endpoint and what it costs
(``serving/loadtest/`` does the work; this is the command line around it)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from setpoint.cli._common import Col, JsonFlag, emit, is_json, render_rows, short, state, stderr
from setpoint.errors import UsageError

if TYPE_CHECKING:
    from setpoint.serving.loadtest.generator import Progress as Progress_
    from setpoint.serving.loadtest.plan import CapacityPlan
    from setpoint.serving.loadtest.runs import LoadTest
    from setpoint.serving.loadtest.schedule import StepResult, StepStats


def loadtest(
    ctx: typer.Context,
    endpoint: Annotated[
        str,
        typer.Argument(
            metavar="ENDPOINT",
            help="The endpoint to load, as the server names it.",
            show_default=False,
        ),
    ],
    url: Annotated[
        str, typer.Option(help="The server: `setpoint serve`'s address (its default here).")
    ] = "http://127.0.0.1:8000",
    key: Annotated[
        str | None,
        typer.Option(
            envvar="SETPOINT_API_KEY",
            help="A predict API key, if the server needs one (or SETPOINT_API_KEY).",
            show_default=False,
        ),
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote", help="Load a server beyond this machine (yours to load: say so)."
        ),
    ] = False,
    rate: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Offer this one rate (requests a second) instead of stepping up.",
            show_default=False,
        ),
    ] = None,
    start_rate: Annotated[float, typer.Option(min=0.001, help="The first step's rate.")] = 100,
    step: Annotated[float, typer.Option(min=0, help="Added to the rate at each step.")] = 100,
    max_rate: Annotated[
        float, typer.Option(min=0.001, help="The last step's rate, at most.")
    ] = 5000,
    step_seconds: Annotated[float, typer.Option(min=0.1, help="How long each step lasts.")] = 5,
    warmup: Annotated[
        float, typer.Option(min=0, help="Seconds at the first rate before it, not recorded.")
    ] = 2,
    p99_ms: Annotated[
        float, typer.Option(min=0.001, help="The objective: a step's p99 latency, at most.")
    ] = 50,
    connections: Annotated[
        int, typer.Option(min=1, help="Keep-alive connections the requests share.")
    ] = 64,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes (cores) the server runs, for the per-core figures. "
            "Default: what its /metrics says (setpoint_workers), else 1.",
            show_default=False,
        ),
    ] = None,
    target_rps: Annotated[
        float | None,
        typer.Option(min=0.001, help="Plan replicas and cost for this rate.", show_default=False),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.01, help="Seconds without an answer before a request fails.")
    ] = 5,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="The SVG of latency against offered rate. Default: loadtest-ENDPOINT-ID.svg here.",
            show_default=False,
        ),
    ] = None,
    no_batch: Annotated[
        bool,
        typer.Option("--no-batch", help="Skip timing batch scoring of the same rows."),
    ] = False,
    history: Annotated[
        bool,
        typer.Option("--history", help="List ENDPOINT's past load tests instead of running one."),
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Find the highest request rate ENDPOINT's server sustains within a p99 latency
    objective, and what serving that costs beside batch scoring.

    Requests are sent open-loop: on a fixed schedule whatever the server does, each
    timed from when it was due, so a server that stalls shows as latency rather than
    as fewer requests (no coordinated omission). Bodies are one row each from the
    served model version's training data. The rate steps up until a step's p99 passes
    the objective or a request fails (a non-2xx answer, 429 and 503 included, or no
    answer). The run is recorded: `setpoint loadtest ENDPOINT --history`.

    Example: `setpoint serve` in one terminal, then `setpoint loadtest credit
    --target-rps 2000`."""
    ws = state(ctx).workspace()
    if history:
        tests = ws.load_tests.list(endpoint)
        emit(ctx, [t.to_dict() for t in tests], lambda c: render_history(c, endpoint, tests))
        return
    from setpoint.serving.loadtest.runner import Options, write_chart

    if rate is not None:
        start_rate, max_rate, step = rate, rate, 0
    if max_rate < start_rate:
        raise UsageError(f"--max-rate {max_rate:g} is below --start-rate {start_rate:g}")
    options = Options(
        url=url,
        allow_remote=allow_remote,
        key=key or None,
        start_rate=start_rate,
        step=step,
        max_rate=max_rate,
        step_seconds=step_seconds,
        warmup=warmup,
        p99_ms=p99_ms,
        connections=connections,
        timeout=timeout,
        workers=workers,
        target_rps=target_rps,
        batch=not no_batch,
    )
    with _steps_progress(ctx) as (progress, on_batch):
        report = ws.loadtest(endpoint, options, progress=progress, on_batch=on_batch)
    test = report.test
    path = plot or Path(f"loadtest-{_file_name(endpoint)}-{test.id}.svg")
    write_chart(test, path)
    data = {**report.to_dict(), "plot": str(path)}

    def render(c: Console) -> None:
        render_steps(c, test)
        render_plan(c, report.plan, test.steps[0] if test.steps else None)
        if test.steps and all(step.met for step in test.steps) and len(test.steps) > 1:
            c.print(
                "Every step met the objective: the server's limit lies above the last "
                "rate tried; raise --max-rate to find it.",
                highlight=False,
            )
        if report.client_behind:
            rates = ", ".join(f"{r:g}" for r in report.client_behind)
            c.print(
                f"[yellow]note:[/] the generator itself fell behind at {rates} req/s (its "
                "own core, or this machine, was busy): its figures there are the client's as "
                "much as the server's; run it on a core the server does not use.",
                highlight=False,
                soft_wrap=False,
            )
        c.print(f"Plot: {escape(str(path))}", highlight=False, soft_wrap=False)
        c.print(
            f"Recorded as load test {test.id}: setpoint loadtest {escape(endpoint)} --history",
            highlight=False,
            soft_wrap=False,
        )

    emit(ctx, data, render)


def _file_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


@contextmanager
def _steps_progress(ctx: typer.Context) -> Iterator[tuple[Progress_ | None, Callable[[], None]]]:
    """A bar per step on stderr (rate, share done, p99 so far); silent under --json."""
    if is_json(ctx):
        yield None, lambda: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[figures]}"),
    )
    tasks: dict[float, TaskID] = {}
    with Progress(*columns, console=stderr(), transient=False) as bar:

        def update(rate: float, done: float, stats: StepStats) -> None:
            if rate not in tasks:
                tasks[rate] = bar.add_task(f"{rate:>8g} req/s", total=1.0, figures="")
            p99 = stats.latency.get_value_at_percentile(99) / 1000 if stats.answered else 0.0
            figures = f"p99 {p99:.1f} ms, {stats.errors} errors"
            bar.update(tasks[rate], completed=done, figures=figures)

        def batch() -> None:
            bar.add_task("batch scoring", total=None, figures="timing rows a CPU-second")

        yield update, batch


def render_steps(c: Console, test: LoadTest) -> None:
    objective = test.settings.get("p99_ms")
    c.print(
        f"Load test {test.id} of {escape(test.endpoint)} ({escape(test.ref)}) at "
        f"{escape(test.url)}.\nObjective: p99 within {objective:g} ms, no errors.",
        highlight=False,
        soft_wrap=False,
    )
    rows = [
        (
            f"{s.rate:g}",
            f"{s.achieved:,.0f}",
            f"{s.p50_ms:.1f}",
            f"{s.p99_ms:.1f}",
            f"{s.max_ms:.1f}",
            _errors(s.statuses),
            "yes" if s.met else "no" + (" (stopped)" if s.stopped_early else ""),
        )
        for s in test.steps
    ]
    columns: list[Col | str] = [
        short("offered/s", "right"),
        short("achieved/s", "right"),
        short("p50 ms", "right"),
        short("p99 ms", "right"),
        short("max ms", "right"),
        "errors",
        short("met"),
    ]
    render_rows(c, columns, rows, compact=True)


def _errors(statuses: dict[str, int]) -> str:
    if not statuses:
        return "0"
    return ", ".join(f"{n:,} {kind}" for kind, n in statuses.items())


def render_plan(c: Console, plan: CapacityPlan, first: StepResult | None = None) -> None:
    price = plan.cpu_hour_price
    if plan.sustainable_rps is None:
        why = "its p99 passed the objective; start lower (--start-rate)"
        if first is not None and first.statuses.get("transport"):
            why = (
                "requests got no answer (refused, reset or timed out): is the server still running?"
            )
        elif first is not None and first.errors:
            why = f"requests failed ({_errors(first.statuses)}); the server's log says why"
        c.print(
            f"[bold red]Not sustainable:[/] even the first step failed: {why}",
            highlight=False,
            soft_wrap=False,
        )
    else:
        per_core = plan.per_core_rps or 0.0
        workers = f"{plan.workers} worker{'s' if plan.workers != 1 else ''}"
        c.print(
            f"[bold]Sustainable rate:[/] {plan.sustainable_rps:,.0f} req/s on {workers} "
            f"({per_core:,.0f} a core).",
            highlight=False,
            soft_wrap=False,
        )
        replica = f"{plan.replica_month_cost:,.2f} a month a replica"
        c.print(f"At {price:g} a core-hour: {replica} ({plan.workers} x 730 h).", highlight=False)
        if plan.replicas is not None and plan.target_rps is not None:
            c.print(
                f"For {plan.target_rps:,.0f} req/s: {plan.replicas} replica"
                f"{'s' if plan.replicas != 1 else ''}, {plan.monthly_cost:,.2f} a month, "
                f"{_money(plan.realtime_cost_per_1000)} per 1,000 predictions.",
                highlight=False,
                soft_wrap=False,
            )
        else:
            c.print(
                f"Real time: {_money(plan.realtime_cost_per_1000)} per 1,000 predictions "
                "at the sustainable rate (--target-rps plans replicas).",
                highlight=False,
                soft_wrap=False,
            )
    if plan.batch_rows_per_cpu_second is not None:
        month = (
            f"; the same month of predictions {plan.batch_monthly_cost:,.2f}"
            if plan.batch_monthly_cost is not None
            else ""
        )
        c.print(
            f"Batch (setpoint predict): {plan.batch_rows_per_cpu_second:,.0f} rows a "
            f"CPU-second, {_money(plan.batch_cost_per_1000)} per 1,000 rows{month}.",
            highlight=False,
            soft_wrap=False,
        )


def _money(value: float | None) -> str:
    """An amount to two significant digits, as a decimal (0.0000088, never 8.8e-06)."""
    if value is None:
        return "-"
    if value <= 0 or value >= 0.01:
        return f"{value:,.2f}"
    return f"{value:.{1 - math.floor(math.log10(value))}f}"


def render_history(c: Console, endpoint: str, tests: list[LoadTest]) -> None:
    if not tests:
        c.print(
            f"No load tests of {escape(endpoint)} yet: setpoint loadtest {escape(endpoint)}",
            highlight=False,
            soft_wrap=False,
        )
        return
    rows = []
    for t in tests:
        held = next((s for s in t.steps if s.rate == t.sustainable_rps), None)
        workers = int(t.settings.get("workers", 1))
        rows.append(
            (
                t.id,
                f"{t.started_at:%Y-%m-%d %H:%M}",
                t.ref,
                "-" if t.sustainable_rps is None else f"{t.sustainable_rps:,.0f}",
                workers,
                "-" if held is None else f"{held.p99_ms:.1f}",
                f"{t.settings.get('p99_ms', 0):g}",
            )
        )
    columns: list[Col | str] = [
        short("id", "right"),
        short("started (UTC)"),
        "model",
        short("held/s", "right"),
        short("workers", "right"),
        short("p99 ms", "right"),
        short("objective", "right"),
    ]
    render_rows(c, columns, rows, title=f"Load tests of {endpoint}, newest first")
