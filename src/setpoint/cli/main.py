"""The ``setpoint`` command: the root, its global flags and the top-level verbs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from setpoint import __version__
from setpoint.cli._common import (
    JSON_HELP,
    WORKSPACE_FLAGS,
    WORKSPACE_HELP,
    Col,
    Group,
    JsonFlag,
    State,
    accept_workspace_flag,
    emit,
    fmt,
    progress_bar,
    read_text,
    render_rows,
    set_json,
    short,
    state,
)
from setpoint.errors import UsageError
from setpoint.models.registry import check_alias
from setpoint.settings import SETTINGS, Setting

# Each command's module is imported when that command runs (or when --help lists them
# all), not at start: `setpoint data add` then never loads scikit-learn, SciPy or the
# server, which keeps it quick to start and small in memory (bench/ingest.py).
# name -> (module, attribute): a Typer group or a command function.
_LAZY: dict[str, tuple[str, str]] = {
    "data": ("setpoint.cli.data", "data_app"),
    "models": ("setpoint.cli.models", "models_app"),
    "demo": ("setpoint.cli.demo", "demo"),
    "deploy": ("setpoint.cli.serving", "deploy"),
    "serve": ("setpoint.cli.serving", "serve"),
    "ui": ("setpoint.cli.ui", "ui"),
    "deployments": ("setpoint.cli.serving", "deployments_app"),
    "keys": ("setpoint.cli.serving", "keys_app"),
    "logs": ("setpoint.cli.logs", "logs_app"),
    "monitor": ("setpoint.cli.monitoring", "monitor_app"),
    "alerts": ("setpoint.cli.monitoring", "alerts_app"),
    "report": ("setpoint.cli.monitoring", "report"),
    "jobs": ("setpoint.cli.jobs", "jobs_app"),
    "worker": ("setpoint.cli.jobs", "worker"),
    "policy": ("setpoint.cli.loop", "policy_app"),
    "rollouts": ("setpoint.cli.loop", "rollouts_app"),
    "approve": ("setpoint.cli.loop", "approve"),
    "reject": ("setpoint.cli.loop", "reject"),
    "loop": ("setpoint.cli.loop", "loop"),
    "erase": ("setpoint.cli.erase", "erase"),
    "schema": ("setpoint.cli.schema", "schema"),
    "predict": ("setpoint.cli.batch", "predict"),
    "optimize": ("setpoint.cli.optimize", "optimize"),
    "scoring": ("setpoint.cli.scoring", "scoring_app"),
    "loadtest": ("setpoint.cli.loadtest", "loadtest"),
}


class LazyGroup(Group):
    """The root group: the ``_LAZY`` commands, each built from its module the first time
    it is asked for, beside the commands defined here (listed as they always were:
    commands first, then groups)."""

    def list_commands(self, ctx: Any) -> list[str]:
        lazy = [name for name in _LAZY if name not in self.commands]
        groups = [name for name in lazy if _LAZY[name][1].endswith("_app")]
        return [
            *(name for name in lazy if name not in groups),
            *self.commands,
            *groups,
        ]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in _LAZY:
            module, attribute = _LAZY[cmd_name]
            target = getattr(import_module(module), attribute)
            self.add_command(_command(cmd_name, target), cmd_name)
        command = super().get_command(ctx, cmd_name)
        return None if command is None else accept_workspace_flag(command)


def _command(name: str, target: typer.Typer | Callable[..., Any]) -> Any:
    """The click command a Typer group or a command function becomes, built as
    ``add_typer`` / ``command`` on the root would have built it."""
    if isinstance(target, typer.Typer):
        return typer.main.get_group_from_info(
            typer.models.TyperInfo(target, name=name),
            pretty_exceptions_short=True,
            rich_markup_mode=_MARKUP,
            suggest_commands=True,
        )
    return typer.main.get_command_from_info(
        typer.models.CommandInfo(name=name, callback=target),
        pretty_exceptions_short=True,
        rich_markup_mode=_MARKUP,
    )


_MARKUP: Literal["markdown"] = "markdown"
app = typer.Typer(
    cls=LazyGroup,
    name="setpoint",
    help="Keep machine-learning models on target in production.\n\n"
    "Start with `setpoint init`, then `setpoint data add`, `setpoint train`, "
    "`setpoint models promote`. Every command takes --json for scripts and -w for the "
    "workspace, before or after its name.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=_MARKUP,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _flag(setting: Setting) -> str:
    return "--" + setting.name.replace("_", "-")


def _print_version(value: bool) -> None:
    """``--version``: eager, so that it answers without a command."""
    if value:
        typer.echo(f"setpoint {__version__}")
        raise typer.Exit()


def _root(ctx: typer.Context, **kwargs: Any) -> None:
    kwargs.pop("version")
    kwargs.pop("json_")  # its callback already marked the context
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
                *WORKSPACE_FLAGS,
                envvar="SETPOINT_WORKSPACE",
                help=WORKSPACE_HELP + " Also accepted after the command.",
                show_default=False,
            ),
        ),
        inspect.Parameter(
            "json_",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=bool,
            default=typer.Option(
                False,
                "--json",
                help=JSON_HELP + " Also accepted after the command.",
                callback=set_json,
                is_eager=True,
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
            default=typer.Option(
                False,
                "--version",
                callback=_print_version,
                is_eager=True,
                help="Print the version and exit.",
            ),
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
        render_rows(
            c,
            ["setting", Col("value", fold=16), short("source"), "environment variable"],
            [(row["name"], fmt(row["value"]), row["source"], row["env"]) for row in rows],
        )

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
    from setpoint.cli.models import render_version
    from setpoint.models.spec import TrainSpec

    if promote:
        check_alias(promote)  # before training, so a typo does not leave a stray version
    # Read before anything starts: a spec's mistakes come without a progress line.
    if not spec.is_file():
        raise UsageError(f"{spec}: no such spec file")
    parsed = TrainSpec.from_yaml(read_text(spec), source=str(spec))
    ws = state(ctx).workspace()
    with progress_bar(ctx, f"training {spec.name}") as progress:
        version = ws.train(parsed, progress=progress)
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
        str | None,
        typer.Option(
            help="Only this action, e.g. alias.promote; ending in a dot, every action it "
            "begins: rollout."
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(help="Only events by actors whose name begins with this, e.g. key:."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many events, newest first.")] = 50,
    json_: JsonFlag = False,
) -> None:
    """Show the audit log: every change, who made it, when, and what it changed."""
    events = (
        state(ctx)
        .workspace()
        .audit(entity_type=entity_type, entity=entity, action=action, actor=actor, limit=limit)
    )

    def render(c: Console) -> None:
        if not events:
            c.print("No audit events.")
            return
        render_rows(
            c,
            [
                short("#", "right"),
                short("time (UTC)"),
                "actor",
                "action",
                "entity",
                Col("change", fold=16),
            ],
            [
                (
                    str(e.id),
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.actor,
                    e.action,
                    e.entity,
                    _change(e.before, e.after),
                )
                for e in events
            ],
        )

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
