"""``setpoint optimize`` (also ``setpoint models optimize``): cheaper candidates of a
model, measured against it on its hold-out and registered as new versions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from setpoint.cli._common import JsonFlag, emit, progress_bar, render_rows, short, state
from setpoint.errors import UsageError

if TYPE_CHECKING:
    from setpoint.models.optimize import OptimizeReport

_CANDIDATES = "compiled,onnx,quantized,pruned,distilled"


def optimize(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="The version to optimise: NAME@VERSION, NAME@ALIAS or NAME (its champion, "
            "else latest). A LightGBM or scikit-learn model trained by setpoint.",
            show_default=False,
        ),
    ],
    only: Annotated[
        str | None,
        typer.Option(
            help="Candidates to build, comma-separated: compiled, onnx, quantized, pruned, "
            "distilled. Default: all "
            "that apply (a LightGBM model: all but quantized; a scikit-learn one: onnx, "
            "quantized).",
            show_default=False,
        ),
    ] = None,
    trees: Annotated[
        int | None,
        typer.Option(
            help="Keep the first N trees in the pruned candidate, instead of the number "
            "that scores best on the hold-out.",
            min=1,
        ),
    ] = None,
    register: Annotated[
        bool,
        typer.Option(
            "--register/--no-register",
            help="Register each candidate as a new version (--no-register: measure only).",
        ),
    ] = True,
    calls: Annotated[
        int,
        typer.Option(help="One-row predictions timed per candidate.", min=1),
    ] = 500,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also write an SVG of each candidate's hold-out metric against its cost "
            "per 1,000 predictions, with the line through those no other beats.",
            show_default=False,
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Build cheaper candidates of a model (compiled trees, ONNX, int8 weights, fewer trees,
    a distilled student) and measure each against it on its hold-out: agreement, metric, one-row
    latency, throughput, size and cost per 1,000 predictions (at `cpu_hour_price`).
    Each is registered as a new version optimised from the original; promote the
    one you choose with `setpoint models promote`."""
    from setpoint.models.optimize import optimize as build

    names = None
    if only is not None:
        names = [name.strip() for name in only.split(",") if name.strip()]
        if not names:
            raise UsageError(f"--only needs at least one of {_CANDIDATES}")
    if plot is not None and plot.is_dir():
        raise UsageError(f"--plot {plot} is a folder; give the SVG file's path")
    if plot is not None and not plot.absolute().parent.is_dir():
        raise UsageError(f"--plot {plot}: its folder does not exist; create it or choose another")
    ws = state(ctx).workspace()
    with progress_bar(ctx, f"optimising {ref}") as progress:
        report = build(
            ws, ref, only=names, trees=trees, register=register, calls=calls, progress=progress
        )
    data = report.to_dict()
    if plot is not None:
        data["plot"] = _write_plot(report, plot)

    def render(c: Console) -> None:
        metric = report.rows[0].metric or "metric"
        render_rows(
            c,
            [
                "candidate",
                short("version", "right"),
                short("same label", "right"),
                short("max |Δp|", "right"),
                short(metric, "right"),
                short("Δ", "right"),
                short("size", "right"),
            ],
            [
                (
                    row.candidate,
                    row.ref or "-",
                    "-" if row.same_labels is None else f"{row.same_labels:.1%}",
                    f"{row.max_difference:.1e}" if row.max_difference else "0",
                    "-" if row.value is None else f"{row.value:.4f}",
                    "-" if row.delta is None else f"{row.delta:+.4f}",
                    _size(row.size_bytes),
                )
                for row in report.rows
            ],
            title=f"{report.original} and its candidates on {report.holdout_rows:,} hold-out rows",
        )
        render_rows(
            c,
            [
                "candidate",
                short("p50 ms", "right"),
                short("p99 ms", "right"),
                short("rows/s", "right"),
                short("cost per 1k", "right"),
            ],
            [
                (
                    row.candidate,
                    f"{row.p50_ms:.3f}",
                    f"{row.p99_ms:.3f}",
                    _rate(row.rows_per_second),
                    f"{row.cost_per_1000:.2e}",
                )
                for row in report.rows
            ],
            title="Cost",
            caption=f"one row a call, {report.calls} calls, in-process; batch: the "
            f"hold-out at once; at {report.cpu_hour_price} per CPU-hour",
        )
        for row in report.rows[1:]:
            c.print(f"{escape(row.candidate)}: {escape(row.note)}", soft_wrap=False)
        for note in report.notes:
            c.print(f"[dim]{escape(note)}[/]", soft_wrap=False)
        if data.get("plot"):
            c.print(f"Plot: {escape(str(plot))}", highlight=False)
        elif plot is not None:
            c.print("No plot: the candidates have no hold-out metric to plot")
        registered = [row.ref for row in report.rows if row.ref]
        if registered:
            name, _, number = registered[0].partition("@")
            c.print(
                f"Serve one with: setpoint models promote {escape(name)} {number}",
                highlight=False,
            )

    emit(ctx, data, render)


def _write_plot(report: OptimizeReport, path: Path) -> str | None:
    """Write the Pareto plot to ``path``; its path, or None when there is nothing to plot."""
    from setpoint.models.optimize import pareto_svg

    svg = pareto_svg(report)
    if svg is None:
        return None
    try:
        path.write_text(svg, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror}); check its folder") from None
    return str(path)


def _rate(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.1f}M"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.0f}k"
    return f"{per_second:.0f}"


def _size(size: int) -> str:
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return (
                f"{size / scale:.0f} {unit}" if size >= 10 * scale else f"{size / scale:.1f} {unit}"
            )
    return f"{size} B"
