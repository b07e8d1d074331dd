"""The ``setpoint`` command: the root, its global flags and the top-level verbs."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from setpoint import __version__
from setpoint.cli._common import Group, JsonFlag, State, emit, fmt, progress_bar, state
from setpoint.cli.compare import compare
from setpoint.cli.data import data_app
from setpoint.cli.demo import demo
from setpoint.cli.erase import erase
from setpoint.cli.jobs import jobs_app, worker
from setpoint.cli.logs import logs_app
from setpoint.cli.loop import approve, loop, policy_app, reject, rollouts_app
from setpoint.cli.models import models_app, render_version
from setpoint.cli.monitoring import alerts_app, monitor_app, report
from setpoint.cli.serving import deploy, deployments_app, keys_app, serve
from setpoint.models.registry import check_alias
from setpoint.settings import SETTINGS, Setting

app = typer.Typer(
    cls=Group,
    name="setpoint",
    help="Keep machine-learning models on target in production.\n\n"
    "Start with `setpoint init`, then `setpoint data add`, `setpoint train`, "
    "`setpoint models promote`. Every command takes --json for scripts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.command()(demo)
app.command()(deploy)
app.command()(serve)
app.add_typer(deployments_app, name="deployments")
app.add_typer(keys_app, name="keys")
app.add_typer(logs_app, name="logs")
monitor_app.command("compare")(compare)
app.add_typer(monitor_app, name="monitor")
app.add_typer(alerts_app, name="alerts")
app.command()(report)
app.add_typer(jobs_app, name="jobs")
app.command()(worker)
app.add_typer(policy_app, name="policy")
app.add_typer(rollouts_app, name="rollouts")
app.command()(approve)
app.command()(reject)
app.command(name="loop")(loop)
app.command()(erase)


def _flag(setting: Setting) -> str:
    return "--" + setting.name.replace("_", "-")


def _root(ctx: typer.Context, **kwargs: Any) -> None:
    if kwargs.pop("version"):
        typer.echo(f"setpoint {__version__}")
        raise typer.Exit()
    path = kwargs.pop("workspace")
    ctx.obj = State(
        workspace_path=path, overrides={k: v for k, v in kwargs.items() if v is not None}
    )
    ctx.call_on_close(ctx.obj.close)


# The global flags are generated from the settings registry: one flag per setting.
_root.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter(
            "workspace",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Path | None,
            default=typer.Option(
                None,
                "--workspace",
                "-w",
                envvar="SETPOINT_WORKSPACE",
                help="Workspace folder. Default: the nearest folder at or above the "
                "current one holding a setpoint.toml.",
                show_default=False,
            ),
        ),
        *(
            inspect.Parameter(
                s.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=s.type | None,
                default=typer.Option(
                    None,
                    _flag(s),
                    help=s.help + (f" One of: {', '.join(s.choices)}." if s.choices else ""),
                    show_default=False,
                    rich_help_panel="Settings (also SETPOINT_* variables and setpoint.toml)",
                ),
            )
            for s in SETTINGS
        ),
        inspect.Parameter(
            "version",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=bool,
            default=typer.Option(False, "--version", help="Print the version and exit."),
        ),
    ]
)
app.callback()(_root)


@app.command()
def init(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Folder of the new workspace.")] = Path("."),
    database_url: Annotated[
        str | None,
        typer.Option(help="Metadata database (SQLAlchemy URL); default: SQLite in the folder."),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Create a workspace: a folder for artifacts and data, and a metadata database."""
    from setpoint.workspace import Workspace

    overrides = dict(state(ctx).overrides)
    if database_url:
        overrides["database_url"] = database_url
    with Workspace.init(path, **overrides) as ws:
        info = {
            "workspace": str(ws.root),
            "database": ws.db.safe_url,
            "artifacts": ws.artifacts.uri,
            "data": ws.data_store.uri,
            "schema_revision": ws.db.revision(),
        }
    emit(
        ctx,
        info,
        lambda c: c.print(
            f"Workspace ready at [bold]{info['workspace']}[/]\n"
            f"  metadata   {info['database']}\n  artifacts  {info['artifacts']}\n"
            f"  data       {info['data']}\n"
            f"Next: setpoint -w {path} data add NAME FILE.csv"
        ),
    )


@app.command()
def settings(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Show every setting, its value in force and where that value came from."""
    ws = state(ctx).workspace()
    rows = [
        {"name": s.name, "value": r.value, "source": r.source, "env": s.env}
        for s, r in ws.settings.items()
    ]

    def render(c: Console) -> None:
        table = Table("setting", "value", "source", "environment variable")
        for row in rows:
            table.add_row(row["name"], fmt(row["value"]), row["source"], row["env"])
        c.print(table)

    emit(ctx, rows, render)


@app.command()
def train(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Training spec (YAML).", show_default=False)],
    promote: Annotated[
        str | None,
        typer.Option(help="Point this alias (e.g. champion) at the new version."),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Fit a model from a spec, evaluate it on the hold-out and register it with lineage."""
    if promote:
        check_alias(promote)  # before training, so a typo does not leave a stray version
    ws = state(ctx).workspace()
    with progress_bar(ctx, f"training {spec.name}") as progress:
        version = ws.train(spec, progress=progress)
    if promote:
        ws.promote(version.name, version.version, promote)
        version = ws.model(version.ref)
    emit(ctx, version.to_dict(), lambda c: render_version(c, version, []))


@app.command()
def audit(
    ctx: typer.Context,
    entity: Annotated[
        str | None, typer.Option(help="Only events about this entity, e.g. loans@2.")
    ] = None,
    entity_type: Annotated[
        str | None, typer.Option("--type", help="Only this kind: dataset, model, workspace.")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. alias.promote.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many events, newest first.")] = 50,
    json_: JsonFlag = False,
) -> None:
    """Show the audit log: every change, who made it, when, and what it changed."""
    events = (
        state(ctx)
        .workspace()
        .audit(entity_type=entity_type, entity=entity, action=action, limit=limit)
    )

    def render(c: Console) -> None:
        table = Table("#", "time (UTC)", "actor", "action", "entity", "change")
        for e in events:
            table.add_row(
                str(e.id),
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.action,
                e.entity,
                _change(e.before, e.after),
            )
        c.print(table if events else "No audit events.")

    emit(ctx, [e.to_dict() for e in events], render)


def _change(before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict) and "version" in after:
        return f"version {fmt(before.get('version'))} -> {after['version']}"
    if isinstance(after, dict):
        keys = ("version", "row_count", "flavor", "n_rejected", "revision", "note")
        shown = [f"{k}={fmt(after[k])}" for k in keys if k in after]
        return ", ".join(shown)
    return ""


def main() -> None:
    app(prog_name="setpoint")
