"""``setpoint models``: the registry, its aliases and lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from setpoint._names import LATEST, split_ref
from setpoint.cli._common import (
    Group,
    JsonFlag,
    count,
    emit,
    facts,
    fmt,
    progress_bar,
    render_rows,
    short,
    state,
    writing,
)
from setpoint.cli.batch import InputFiles, render_quarantined
from setpoint.cli.optimize import optimize
from setpoint.errors import UsageError
from setpoint.models.registry import CHAMPION, SEGMENT_METRICS, AliasMove, ModelVersion

models_app = typer.Typer(
    cls=Group, help="Registered models, their versions, aliases and lineage.", no_args_is_help=True
)

_TOP_FEATURES = 10  # the most important features `models show` lists
_TOP_GAPS = 3  # the largest gaps between groups `models show` says in words
# Short headers of the fairness metrics, so a table of five fits 80 columns.
_FAIRNESS = {
    "selection_rate": "select",
    "true_positive_rate": "TPR",
    "false_positive_rate": "FPR",
    "precision": "prec",
    "error_rate": "error",
    "mean_error": "mean err",
}

models_app.command("optimize")(optimize)

Alias = Annotated[str, typer.Option("--alias", "-a", help="Alias to move.")]


@models_app.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List models with their latest version and aliases."""
    ws = state(ctx).workspace()
    latest = ws.registry.latest()
    rows = []
    for m in latest:
        aliases = {v.version: v.aliases for v in ws.registry.versions(m.name) if v.aliases}
        rows.append((m, aliases))

    def render(c: Console) -> None:
        if not rows:
            c.print("No models yet. Train one with: setpoint train SPEC.yaml")
            return
        render_rows(
            c,
            [
                "model",
                short("latest", "right"),
                "aliases",
                "flavor",
                "task",
                short("created (UTC)"),
            ],
            [
                (
                    m.name,
                    str(m.version),
                    ", ".join(f"{a}→{v}" for v, names in aliases.items() for a in names) or "-",
                    m.flavor,
                    m.task,
                    m.created_at.strftime("%Y-%m-%d %H:%M"),
                )
                for m, aliases in rows
            ],
        )

    emit(
        ctx,
        [
            {
                "name": m.name,
                "latest": m.version,
                "aliases": {a: v for v, names in aliases.items() for a in names},
                "flavor": m.flavor,
                "task": m.task,
            }
            for m, aliases in rows
        ],
        render,
    )


@models_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="NAME (its champion, else latest), NAME@VERSION, NAME@ALIAS or "
            "NAME@latest; MLflow's models:/NAME/VERSION and models:/NAME@ALIAS too.",
            show_default=False,
        ),
    ],
    json_: JsonFlag = False,
) -> None:
    """Show a model version: metrics, lineage, aliases and the alias history."""
    ws = state(ctx).workspace()
    version = ws.model(ref)
    datasets = ws.registry.datasets_of(version)
    history = ws.registry.history(version.name, CHAMPION)
    runs = ws.scoring_runs.list(model=version.name, version=version.version, limit=1)
    n_runs = ws.scoring_runs.count(version.name, version.version)
    scoring = {"count": n_runs, "latest": runs[0].to_dict() if runs else None}
    data = version.to_dict() | {
        "datasets": [{"ref": r, "role": role} for r, role in datasets],
        "champion_history": history,
        "scoring_runs": scoring,
    }

    def render(c: Console) -> None:
        render_version(c, version, datasets, history)
        if runs:
            latest = runs[0]
            c.print(
                f"Scoring runs: {count(n_runs)}; the latest, {latest.id}, "
                f"{latest.state} {latest.started_at:%Y-%m-%d %H:%M} UTC "
                f"({count(latest.n_scored)} rows scored).\n"
                f"List them with: setpoint scoring list --model {version.ref}",
                highlight=False,
                markup=False,
            )

    emit(ctx, data, render)


@models_app.command("explain")
def explain(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="NAME (its champion, else latest), NAME@VERSION, NAME@ALIAS; MLflow's "
            "models:/NAME/VERSION and models:/NAME@ALIAS too.",
            show_default=False,
        ),
    ],
    input_: InputFiles,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="The .csv or .parquet file to write: the accepted rows with the model's "
            "outputs, explanation_space, base_value, raw_output and contribution_FEATURE "
            "per feature (base_value + contributions = raw_output).",
            show_default=False,
        ),
    ],
    top: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Keep each row's K largest contributions (by size); the others are "
            "left empty. Default: every feature's.",
            show_default=False,
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Explain a model's predictions on files: each feature's additive contribution,
    in the model's output space (log-odds for a binary classifier). Rows the contract
    refuses are quarantined with their reasons, as `setpoint predict` does.

    Example: `setpoint models explain credit-risk@3 -i loans.csv -o why.parquet --top 5`"""
    from setpoint.batch.explain import explain_files

    ws = state(ctx).workspace()
    with progress_bar(ctx, "explaining") as update:
        run = explain_files(ws, ref, input_, output, top=top, progress=update)
    data = run.to_dict()

    def render(c: Console) -> None:
        c.print(
            f"Explained {count(run.n_scored)} of {count(run.n_rows)} rows with {run.model} "
            f"in {run.seconds:.1f} s.",
            highlight=False,
        )
        c.print(f"Wrote {escape(run.output)}.", highlight=False)
        render_quarantined(c, run.quarantine)

    emit(ctx, data, render)


def render_version(
    c: Console,
    version: ModelVersion,
    datasets: list[tuple[str, str]],
    history: list[dict[str, Any]] | None = None,
) -> None:
    lineage = version.lineage
    git = lineage.get("git") or {}
    about = (
        ("version", version.ref),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("flavor / task", f"{version.flavor} / {version.task}"),
        (
            "datasets",
            ", ".join(f"{r} ({role})" for r, role in datasets)
            or ", ".join(d["ref"] for d in lineage.get("datasets", [])),
        ),
        (
            "estimator",
            ((version.spec or {}).get("estimator") or {}).get("class")
            or lineage.get("registered_object")
            or "default for the task",
        ),
        *(
            (("optimised from", f"{lineage['optimized_from']} ({lineage.get('optimization')})"),)
            if lineage.get("optimized_from")
            else ()
        ),
        (
            "git",
            f"{git.get('revision', '-')}{' (dirty)' if git.get('dirty') else ''}" if git else "-",
        ),
        (
            "training",
            f"{fmt(lineage.get('train_seconds'))} s wall, {fmt(lineage.get('cpu_seconds'))} s CPU"
            if "train_seconds" in lineage
            else "-",
        ),
        ("created", f"{version.created_at.isoformat(timespec='seconds')} by {version.created_by}"),
        *((("notes", version.notes),) if version.notes else ()),
    )
    c.print(Panel(facts(about), title=escape(f"model {version.ref}"), expand=False))

    metrics = version.evaluation.get("metrics", {})
    if metrics:
        splits = list(metrics)
        names = sorted({n for split in metrics.values() for n in split})
        render_rows(
            c,
            ["metric", *(short(s, "right") for s in splits)],
            [(name, *(fmt(metrics[s].get(name)) for s in splits)) for name in names],
            title="Evaluation",
        )
    gap = version.evaluation.get("gap") or {}
    if gap.get("likely_overfit"):
        c.print(
            f"[bold yellow]likely overfitting[/]: {gap.get('metric')} is "
            f"{fmt(gap.get('train'))} on the training rows but {fmt(gap.get('validation'))} "
            f"on the hold-out (a {fmt(gap.get('relative_gap'))} relative gap)"
        )
    importance = version.evaluation.get("importance") or {}
    if importance.get("features"):
        top = list(importance["features"].items())[:_TOP_FEATURES]
        render_rows(
            c,
            ["feature", short("mean |contribution|", "right")],
            [(name, fmt(size)) for name, size in top],
            title=f"Top features ({importance.get('space')}, {count(importance.get('rows'))} "
            "hold-out rows)",
        )
    if version.evaluation.get("fairness"):
        render_fairness(c, version.evaluation["fairness"])
    segments = version.evaluation.get("segments") or {}
    shown = SEGMENT_METRICS.get(version.task, ())
    for column, values in segments.items():
        names = [n for n in shown if any(n in m for m in values.values())]
        render_rows(
            c,
            [column, short("n", "right"), *(short(n, "right") for n in names)],
            [
                (str(value), count(m.get("n")), *(fmt(m.get(n)) for n in names))
                for value, m in values.items()
            ],
            title=f"Hold-out by {column}",
        )
    if history:
        render_rows(
            c,
            [short("when (UTC)"), short("action"), short("from"), short("to"), "actor"],
            [
                (
                    h["at"][:19],
                    h["action"],
                    fmt(h["from_version"]),
                    str(h["to_version"]),
                    h["actor"],
                )
                for h in history
            ],
            title="champion history",
        )


def render_fairness(c: Console, stored: dict[str, Any]) -> None:
    """The hold-out's fairness table, one row per group (a group too small to judge
    marked), then each metric's largest gap between groups, in words."""
    from setpoint.models.fairness import FairnessTable

    table = FairnessTable.from_dict(stored)
    limit = stored.get("max_disparity")
    render_rows(
        c,
        ["group", short("rows", "right"), *(short(_FAIRNESS[m], "right") for m in table.metrics)],
        [
            (
                g.name,
                f"{g.rows:,}" + (" too few" if g.too_small else ""),
                *(
                    "-" if g.metrics.get(m) is None else f"{g.metrics[m]:.2f}"
                    for m in table.metrics
                ),
            )
            for g in table.groups
        ],
        title=f"Fairness on the hold-out (positive class {stored.get('positive')!s})",
        caption=(
            f"too few: under {table.min_group} rows, shown but not judged"
            if any(g.too_small for g in table.groups)
            else None
        ),
    )
    over = set(stored.get("over") or ())
    gaps = sorted(table.metrics, key=lambda m: -(table.difference.get(m) or 0.0))
    for metric in gaps[:_TOP_GAPS]:
        verdict = (
            f"[bold red]over the {limit:.2f} allowed[/]"
            if metric in over
            else ("" if limit is None else f"within {limit:.2f}")
        )
        said = escape(table.gap(metric))
        c.print(f"  {said}" + (f"; {verdict}" if verdict else ""), highlight=False)


@models_app.command("card")
def card(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="The version: NAME@VERSION, NAME@ALIAS, NAME@latest, or NAME (its "
            "champion, else latest).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write the card to this .md or .html file. Default: Markdown on stdout.",
            show_default=False,
        ),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="markdown or html, whatever the file is called.",
            metavar="markdown|html",
            show_default=False,
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Write a version's model card, for a reviewer.

    Sections: details, intended use, training data, evaluation, fairness, top
    features, known limitations, serving history and monitoring. Generated from the
    registry each time: never edit it; change the spec or the version's notes
    (setpoint models note) instead. Markdown has Hugging Face model card front
    matter; HTML is one page that opens offline and prints."""
    from setpoint.models.card import format_of, render, write_card

    form = format_of(output, format_)  # a wrong name is said before any work
    found = state(ctx).workspace().model_card(ref)
    ref = found.version.ref
    if output is None:
        text = render(found, form)
        emit(ctx, {"ref": ref, "format": form, "card": text}, lambda _: typer.echo(text, nl=False))
        return
    with writing(output):
        path = write_card(output, found, form)
    emit(
        ctx,
        {"ref": ref, "format": form, "path": str(path)},
        lambda c: c.print(f"Wrote the model card of {ref} to {path}.", markup=False),
    )


@models_app.command("note")
def note(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(help="The version: NAME@VERSION or NAME@ALIAS.", show_default=False),
    ],
    text: Annotated[
        str,
        typer.Argument(help='The notes; "" clears them.', show_default=False),
    ],
    json_: JsonFlag = False,
) -> None:
    """Set a version's notes, without retraining.

    What a person learns of a version after training (a review's outcome, a caveat
    found in production); shown by models show and on the model card, audited."""
    version = state(ctx).workspace().annotate(ref, text)
    emit(
        ctx,
        {"ref": version.ref, "notes": version.notes},
        lambda c: c.print(
            f"{version.ref}: notes {'set' if version.notes else 'cleared'}.", markup=False
        ),
    )


def _move_done(ctx: typer.Context, move: AliasMove) -> None:
    emit(
        ctx,
        move.to_dict(),
        lambda c: c.print(
            f"{move.model}@{move.alias}: version {fmt(move.from_version)} → {move.to_version}"
            + (" (unchanged)" if move.from_version == move.to_version else "")
        ),
    )


@models_app.command("promote")
def promote(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            help="The version to promote: NAME@VERSION, NAME@ALIAS, models:/NAME/VERSION "
            "or models:/NAME@ALIAS; or NAME followed by VERSION.",
            show_default=False,
        ),
    ],
    version: Annotated[
        int | None,
        typer.Argument(help="Version number, when MODEL is a bare name.", show_default=False),
    ] = None,
    alias: Alias = CHAMPION,
    json_: JsonFlag = False,
) -> None:
    """Point an alias (champion by default) at a version, in one audited transaction."""
    name, selector = split_ref("model", model)
    if selector is None and version is None:
        raise UsageError(
            f"which version of {name!r}? write {name}@VERSION or {name} VERSION, "
            f"e.g. setpoint models promote {name}@3"
        )
    if selector is not None and version is not None:
        raise UsageError(f"{model!r} names a version already; give it or a VERSION, not both")
    ws = state(ctx).workspace()
    number = version if version is not None else ws.model(model).version
    _move_done(ctx, ws.promote(name, number, alias))


@models_app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            help="Model name, or the alias to move back as NAME@ALIAS (also models:/NAME@ALIAS).",
            show_default=False,
        ),
    ],
    alias: Annotated[
        str | None, typer.Option("--alias", "-a", help="Alias to move. Default: champion.")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Move an alias back to the version it pointed at before its last move."""
    model, selector = split_ref("model", name)
    if selector is not None and (selector.isdigit() or selector == LATEST):
        raise UsageError(
            f"{name!r} names a version; rollback moves an alias back: give {model} or "
            f"{model}@ALIAS (e.g. {model}@{CHAMPION})"
        )
    if selector is not None and alias is not None and alias != selector:
        raise UsageError(f"{name!r} names alias {selector!r} but --alias says {alias!r}")
    _move_done(ctx, state(ctx).workspace().rollback(model, selector or alias or CHAMPION))
