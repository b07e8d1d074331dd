"""``setpoint data``: datasets, their profiles and contracts, validation and quarantine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax

from setpoint.cli._common import (
    Col,
    JsonFlag,
    count,
    emit,
    facts,
    fmt,
    is_json,
    read_text,
    render_rows,
    short,
    state,
    write_rows,
    writing,
)
from setpoint.cli._common import Group as CommandGroup
from setpoint.data.profile import ColumnProfile
from setpoint.errors import ContractViolationError, UsageError

data_app = typer.Typer(
    cls=CommandGroup,
    help="Versioned datasets with profiles and contracts.",
    no_args_is_help=True,
)
quarantine_app = typer.Typer(
    cls=CommandGroup,
    help="Rows a contract rejected, kept with their reasons.",
    no_args_is_help=True,
)
data_app.add_typer(quarantine_app, name="quarantine")

Ref = Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@latest.", show_default=False)]


def _tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not eq or not key:
            raise UsageError(f"--tag {value!r}: write tags as KEY=VALUE")
        tags[key] = val
    return tags


@data_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. loans.", show_default=False)],
    file: Annotated[Path, typer.Argument(help="A .csv or .parquet file.", show_default=False)],
    description: Annotated[str, typer.Option(help="What this data is.")] = "",
    owner: Annotated[str | None, typer.Option(help="Who answers for it (default: you).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeat for more.")] = None,
    pii: Annotated[
        list[str] | None,
        typer.Option(
            help="A column holding personal data; repeat for more. Its values are "
            "kept out of the profile and masked in logs."
        ),
    ] = None,
    source: Annotated[str, typer.Option(help="Where the data came from (default: the file).")] = "",
    json_: JsonFlag = False,
) -> None:
    """Register a file as a new immutable dataset version (identical content: the same version)."""
    version = (
        state(ctx)
        .workspace()
        .add_dataset(
            name,
            file,
            description=description,
            owner=owner,
            tags=_tags(tag or []),
            pii_columns=pii or [],
            source=source,
        )
    )
    verb = "Added" if version.created else "Unchanged: same content as"
    emit(
        ctx,
        version.to_dict() | {"created": version.created},
        lambda c: c.print(
            f"{verb} [bold]{version.ref}[/] ({version.row_count} rows, "
            f"{len(version.columns)} columns, sha256 {version.content_hash[:12]})"
        ),
    )


@data_app.command("list")
def list_(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Show every version of this dataset.", show_default=False)
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """List datasets (their latest versions), or every version of one."""
    versions = state(ctx).workspace().datasets.list(name)

    def render(c: Console) -> None:
        if not versions:
            c.print("No datasets yet. Add one with: setpoint data add NAME FILE")
            return
        render_rows(
            c,
            [
                "dataset",
                short("rows", "right"),
                short("columns", "right"),
                "owner",
                short("created (UTC)"),
                Col("description", fold=16),  # prose wraps at its spaces
            ],
            [
                (
                    v.ref,
                    count(v.row_count),
                    str(len(v.columns)),
                    v.owner,
                    v.created_at.strftime("%Y-%m-%d %H:%M"),
                    v.description,
                )
                for v in versions
            ],
        )

    emit(ctx, [v.to_dict() for v in versions], render)


@data_app.command("show")
def show(ctx: typer.Context, ref: Ref, json_: JsonFlag = False) -> None:
    """Show a dataset version: its facts, column profile, contract and the models trained on it."""
    ws = state(ctx).workspace()
    version = ws.dataset(ref)
    contract, revision = ws.datasets.contract(version)
    used_by = ws.registry.trained_on(version)
    data = version.to_dict(with_profile=True) | {
        "contract": {"revision": revision, **contract.to_dict()},
        "models": [m.ref for m in used_by],
    }

    def render(c: Console) -> None:
        shown = [
            ("version", version.ref),
            ("rows", count(version.row_count)),
            ("owner", version.owner),
            ("description", version.description or "-"),
            ("source", version.source or "-"),
            ("tags", ", ".join(f"{k}={v}" for k, v in version.tags.items()) or "-"),
            ("PII columns", ", ".join(version.pii_columns) or "-"),
            ("content sha256", version.content_hash),
            ("created", version.created_at.isoformat(timespec="seconds")),
            ("models trained on it", ", ".join(m.ref for m in used_by) or "-"),
        ]
        if version.erased_at is not None:
            shown.append(
                (
                    "erased",
                    f"{version.erased_at:%Y-%m-%d %H:%M} UTC: {version.erased_rows} row(s) of "
                    f"a subject; its bytes are gone, see "
                    f"{version.replaced_by or 'no version left'}",
                )
            )
        c.print(Panel(facts(shown), title=escape(f"dataset {version.ref}"), expand=False))
        render_rows(
            c,
            [
                "column",
                short("kind"),
                short("nulls", "right"),
                short("distinct", "right"),
                "values",
            ],
            [
                (
                    col.name,
                    col.kind,
                    "0" if not col.nulls else f"{count(col.nulls)} ({col.null_fraction:.1%})",
                    count(col.distinct),
                    _values(col, version.pii_columns),
                )
                for col in version.profile.columns
            ],
            title="Profile",
        )
        c.print(
            Panel(
                Syntax(contract.to_yaml(), "yaml", background_color="default", word_wrap=True),
                title=f"contract (revision {revision})",
                expand=False,
            )
        )

    emit(ctx, data, render)


@data_app.command("contract")
def contract_cmd(
    ctx: typer.Context,
    ref: Ref,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the YAML to this file.")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Print (or save) the contract of a dataset version as YAML you can edit and attach back."""
    from setpoint._documents import editor_line

    contract = state(ctx).workspace().contract(ref)
    text = editor_line("contract") + contract.to_yaml()
    if output:
        with writing(output):
            output.write_text(text, encoding="utf-8")
    emit(
        ctx,
        contract.to_dict(),
        lambda c: c.print(
            f"Wrote {output}; edit it, then: setpoint data attach-contract {ref} {output}"
            if output
            else text,
            markup=False,
        ),
    )


@data_app.command("attach-contract")
def attach_contract(
    ctx: typer.Context,
    ref: Ref,
    file: Annotated[Path, typer.Argument(help="Contract YAML.", show_default=False)],
    note: Annotated[
        str, typer.Option(help="Why the contract changed (kept in the audit log).")
    ] = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Attach it even though the version's own data breaks it; the revision "
            "and the audit log say it was forced, with the count of violations.",
        ),
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Make an edited contract the current one of a dataset version (a new revision).

    The version's data is checked against it first (read in batches): a contract the
    data itself breaks is refused, listing the first violations, unless --force.
    """
    from setpoint.data.contract import Contract

    ws = state(ctx).workspace()
    try:
        contract = Contract.from_yaml(read_text(file), source=str(file))
        revision = ws.attach_contract(ref, contract, note=note, force=force)
    except ContractViolationError as error:
        if not is_json(ctx):
            _render_refusal(Console(stderr=True), error.details)
        raise
    version = ws.dataset(ref)
    forced = None
    if force:  # what the data broke, as the audit log recorded it
        for event in ws.audit(entity=version.ref, action="contract.edit", limit=1):
            after = event.after if isinstance(event.after, dict) else {}
            forced = after.get("forced") if after.get("revision") == revision else None
    data: dict[str, Any] = {"dataset": version.ref, "revision": revision}
    if forced:
        data["forced"] = forced

    def render(c: Console) -> None:
        c.print(f"Contract of {version.ref} is now revision {revision}.")
        if forced:
            c.print(
                f"[yellow]forced[/]: its data breaks it ({forced['violations']} violation(s) "
                f"in {forced['rows']} row(s)); the audit log says so."
            )

    emit(ctx, data, render)


@data_app.command("validate")
def validate(
    ctx: typer.Context,
    ref: Ref,
    file: Annotated[Path, typer.Argument(help="A .csv or .parquet file.", show_default=False)],
    mode: Annotated[
        str | None,
        typer.Option(
            help="reject: any violation fails the file; quarantine: keep the invalid "
            "rows aside with their reasons; warn: report only. Default: the validation_mode "
            "setting. A problem of the whole file (a column missing, undeclared or of the "
            "wrong type) is reported once and, but in warn mode, refuses the file."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the accepted rows to this .csv or .parquet file (as the file "
            "streams; it appears only if the file is not refused). In warn mode: every row.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Violations to list (all are counted).")] = 20,
    json_: JsonFlag = False,
) -> None:
    """Check a file against a dataset version's contract and report every violation."""
    ws = state(ctx).workspace()
    try:
        outcome = ws.validate_file(
            ref,
            file,
            mode=mode,  # type: ignore[arg-type]
            source=str(file),
            limit=limit,
            output=output,
        )
    except ContractViolationError as error:
        if not is_json(ctx):
            details = error.details | {"violations": error.details["violations"][:limit]}
            _render_refusal(Console(stderr=True), details)
        raise
    data = outcome.to_dict(limit=limit)

    def render(c: Console) -> None:
        for w in outcome.warnings:
            c.print(f"[yellow]warning[/]: {escape(w['message'])}")
        if outcome.ok:
            c.print(f"[green]OK[/]: all {outcome.n_rows} rows meet the contract of {ref}.")
        else:
            _render_problems(c, outcome.problems)
            _render_violations(c, data["summary"], data["violations"])
        if outcome.quarantine:
            q = outcome.quarantine
            c.print(
                f"{outcome.n_accepted} rows accepted; {q.n_rejected} rows quarantined "
                f"as batch {q.id}. Export them with: setpoint data quarantine export {q.id} "
                "-o rejected.csv"
            )
        elif not outcome.ok:
            c.print(f"[yellow]warn[/]: {outcome.n_violations} violations; rows kept.")
        if outcome.output is not None:
            c.print(f"Wrote the {outcome.n_accepted} accepted rows to {outcome.output}.")
        elif not outcome.ok:
            c.print("Write the accepted rows to a file with: -o accepted.csv (or .parquet)")

    emit(ctx, data, render)


def _values(col: ColumnProfile, pii: list[str]) -> str:
    """One cell that says what a column holds: its range, or its commonest values."""
    if col.name in pii:
        return "(PII: values not kept)"
    if col.kind in ("numeric", "integer") and col.min is not None:
        return f"{fmt(col.min)} .. {fmt(col.max)}, mean {fmt(col.mean)}"
    if col.kind == "datetime" and col.min is not None:
        return f"{str(col.min)[:19]} .. {str(col.max)[:19]}"
    if col.top:
        count = max(col.count, 1)
        shown = ", ".join(f"{v} {n / count:.0%}" for v, n in col.top[:4])
        return shown + (", ..." if len(col.top) > 4 else "")
    return "-"


def _render_refusal(c: Console, details: dict[str, Any]) -> None:
    """What refused a file or a contract: its problems, then the rows' violations."""
    _render_problems(c, details.get("problems") or [])
    if details.get("summary"):
        _render_violations(c, details["summary"], details["violations"])


def _render_problems(c: Console, problems: list[dict[str, Any]]) -> None:
    if not problems:
        return
    render_rows(
        c,
        ["column", short("rule"), Col("problem", fold=30)],
        [(p["column"], p["rule"], p["message"]) for p in problems],
        title="Problems of the whole file (said once)",
    )


def _render_violations(
    c: Console, summary: list[dict[str, Any]], violations: list[dict[str, Any]]
) -> None:
    render_rows(
        c,
        ["column", short("rule"), short("count", "right"), "example"],
        [(s["column"], s["rule"], count(s["count"]), fmt(s.get("example"))) for s in summary],
        title="Violations by rule",
    )
    render_rows(
        c,
        [short("row", "right"), "column", short("rule"), "value"],
        [(fmt(v.get("row")), v["column"], v["rule"], fmt(v.get("value"))) for v in violations],
        title=f"First {len(violations)} violations",
    )


@quarantine_app.command("list")
def quarantine_list(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="Only batches of this dataset name.")] = None,
    json_: JsonFlag = False,
) -> None:
    """List quarantined batches, newest first."""
    batches = state(ctx).workspace().quarantine.list(dataset)

    def render(c: Console) -> None:
        if not batches:
            c.print("The quarantine is empty.")
            return
        rows = []
        for b in batches:
            top = b.top_reason
            rows.append(
                (
                    str(b.id),
                    b.dataset,
                    count(b.n_rejected),
                    count(b.n_rows),
                    f"{top['column']}: {top['rule']} ({count(top['count'])})" if top else "-",
                    b.source,
                    b.created_at.strftime("%Y-%m-%d %H:%M"),
                )
            )
        columns: list[Col | str] = [short("id", "right"), "dataset", short("rejected", "right")]
        columns += [short("of rows", "right"), "top reason", "source", short("when (UTC)")]
        render_rows(c, columns, rows)

    emit(ctx, [b.to_dict() for b in batches], render)


@quarantine_app.command("export")
def quarantine_export(
    ctx: typer.Context,
    batch_id: Annotated[int, typer.Argument(help="Quarantine batch id.", show_default=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="A .csv or .parquet file to write.")
    ],
    json_: JsonFlag = False,
) -> None:
    """Write a quarantined batch (its rows, original row numbers and reasons) to a file."""
    rows = state(ctx).workspace().quarantine.rows(batch_id)
    write_rows(rows, output)
    emit(
        ctx,
        {"id": batch_id, "rows": rows.num_rows, "output": str(output)},
        lambda c: c.print(f"Wrote {rows.num_rows} quarantined rows to {output}."),
    )
