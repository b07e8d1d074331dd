"""``setpoint schema NAME``: the JSON Schema of a file people write, for editors and CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from setpoint.cli._common import writing
from setpoint.errors import UsageError

_NAMES = "spec (training spec), contract (data contract), policy (loop policy), monitor (settings)"


def schema(
    name: Annotated[
        str,
        typer.Argument(help=f"Which file: {_NAMES}.", show_default=False),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the schema to this file instead of stdout."),
    ] = None,
    example: Annotated[
        bool,
        typer.Option(
            "--example",
            help="Print an example file instead, its first line pointing editors at the "
            "schema: a start to edit.",
        ),
    ] = False,
    path: Annotated[
        bool,
        typer.Option(
            "--path",
            help="Print where the installed package keeps the schema (what the "
            "yaml-language-server line of the files setpoint writes points at).",
        ),
    ] = False,
) -> None:
    """Print the JSON Schema (draft 2020-12) of a YAML file you write.

    The schema comes from the same model that reads the file, so an editor checking
    against it (VS Code's YAML extension, any yaml-language-server client) finds what
    setpoint would refuse, as you type. Point an editor at it with a first line such as
    `# yaml-language-server: $schema=spec.schema.json`, or run, for example:
    setpoint schema spec -o spec.schema.json. To start a file with that line and an
    example to edit: setpoint schema spec --example -o spec.yaml"""
    from setpoint import _documents

    if path and (output is not None or example):
        raise UsageError("--path prints a location; give it alone, without --output or --example")
    if path:
        typer.echo(str(_documents.schema_path(name)))
        return
    if example:
        from setpoint._reference import EXAMPLES

        text = _documents.editor_line(name) + EXAMPLES[name]  # editor_line checks the name
    else:
        text = _documents.schema_text(name)
    if output is None:
        typer.echo(text, nl=False)
        return
    with writing(output):
        output.write_text(text, encoding="utf-8")
    what = "an example" if example else "the schema"
    typer.echo(f"Wrote {what} of the {name} file to {output}", err=True)
