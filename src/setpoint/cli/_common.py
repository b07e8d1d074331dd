"""What every command shares: the error edge, --json, output and opening the workspace."""

from __future__ import annotations

import json
import numbers
import textwrap
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from setpoint.errors import SetpointError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

    from setpoint.workspace import Workspace

_JSON = "setpoint_json"


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


class Group(TyperGroup):
    """Translates :class:`SetpointError` into a message and an exit code: the CLI edge."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except SetpointError as error:
            if is_json(ctx):
                print(json.dumps(error.to_dict(), default=str, indent=2))
            if error.listing is not None:
                headline, lines = error.listing
                stderr().print(f"[bold red]error:[/] {escape(headline)}:", markup=True)
                width = max(40, stderr().width)
                for line in lines:
                    wrapped = textwrap.fill(
                        line,
                        width,
                        initial_indent="  - ",
                        subsequent_indent="    ",
                        break_long_words=False,
                        break_on_hyphens=False,
                    )
                    stderr().print(wrapped, markup=False, highlight=False, soft_wrap=True)
            else:
                stderr().print(f"[bold red]error:[/] {escape(error.message)}", markup=True)
            raise typer.Exit(error.exit_code) from None


@dataclass
class State:
    """Settings given as global flags, and the workspace opened from them."""

    workspace_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _workspace: Workspace | None = None

    def workspace(self) -> Workspace:
        if self._workspace is None:
            from setpoint.cli import started
            from setpoint.workspace import Workspace

            self._workspace = Workspace.open(self.workspace_path, **self.overrides)
            started()  # the collector back on (setpoint.cli.main)
        return self._workspace

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def is_json(ctx: typer.Context) -> bool:
    """True when the command was asked for --json output."""
    return bool(ctx.meta.get(_JSON))


def set_json(ctx: typer.Context, value: bool) -> bool:
    if value:
        ctx.meta[_JSON] = True
    return value


# Options that monitors and offline comparisons share.
NoMultivariate = Annotated[
    bool, typer.Option("--no-multivariate", help="Skip the domain classifier.")
]
StaticThresholds = Annotated[
    bool,
    typer.Option("--static-thresholds", help="Do not learn thresholds from the reference's noise."),
]

JSON_HELP = "Print machine-readable JSON on stdout instead of tables."
JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP, callback=set_json, is_eager=True)]
# ctx.meta is one dict shared by a context and all its children: a --json given to the
# root (``setpoint --json data list``) is seen by is_json in the command, as is one
# given to the command (``setpoint data list --json``) by the root's error edge.

WORKSPACE_FLAGS = ("--workspace", "-w")
WORKSPACE_HELP = (
    "Workspace folder. Default: the nearest folder at or above the current one holding "
    "a setpoint.toml."
)


def _set_workspace(ctx: typer.Context, value: Path | None) -> None:
    if value is not None:
        state(ctx).workspace_path = value  # the workspace is opened later, on first use


def _workspace_placeholder(
    workspace: Annotated[
        Path | None,
        typer.Option(
            *WORKSPACE_FLAGS,
            help=WORKSPACE_HELP,
            callback=_set_workspace,
            expose_value=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Only read for its parameter, which Typer builds (as Typer's own completion
    options are built)."""


_WORKSPACE_OPTION: Any = typer.main.get_command_from_info(
    typer.models.CommandInfo(callback=_workspace_placeholder),
    pretty_exceptions_short=True,
    rich_markup_mode="markdown",
).params[0]


def accept_workspace_flag(command: Any) -> Any:
    """``command`` and every command under it also take ``-w/--workspace``, so it works
    after the command (``setpoint data list -w ws``) as it does before it. The option
    is added to the built commands, not declared in each: one place, and no command
    can forget it. A command with a -w or --workspace of its own keeps it."""
    taken = {opt for param in command.params for opt in param.opts}
    if not taken & set(WORKSPACE_FLAGS):
        command.params.append(_WORKSPACE_OPTION)
    for sub in getattr(command, "commands", {}).values():
        accept_workspace_flag(sub)
    return command


def emit(ctx: typer.Context, data: Any, render: Callable[[Console], None]) -> None:
    """JSON on stdout under --json, else the human rendering."""
    if is_json(ctx):
        print(json.dumps(data, default=str, indent=2))
    else:
        render(stdout())


@contextmanager
def progress_bar(ctx: typer.Context, title: str) -> Iterator[Callable[[str, float], None]]:
    """A progress callback ``(step, fraction)``; silent under --json."""
    if is_json(ctx):
        yield lambda _step, _fraction: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr(), transient=False) as bar:
        task = bar.add_task(title, total=1.0, step="")

        def update(step: str, fraction: float) -> None:
            bar.update(task, completed=fraction, step=step)

        try:
            yield update
        except BaseException:
            # Work that failed leaves no bar behind: the error is said alone.
            bar.remove_task(task)
            raise


def read_text(path: Path) -> str:
    """A UTF-8 text file the user named, or a UsageError saying what is wrong with it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failure to write a file the user named into a UsageError naming it."""
    try:
        yield
    except OSError as exc:
        raise UsageError(
            f"cannot write {path} ({exc.strerror}); check that its folder exists and is writable"
        ) from None


def write_rows(rows: pa.Table, path: Path) -> None:
    """Write ``rows`` to the .csv or .parquet file a user named."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"{path}: write to a .csv or .parquet file")
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    with writing(path):
        if suffix == ".csv":
            pa_csv.write_csv(rows, path)
        else:
            pq.write_table(rows, path)


def fmt(value: Any, digits: int = 4) -> str:
    """A value for a table cell: floats to ``digits`` significant digits (no
    ``0.30000000000000004``), large ones whole with thousands separators. Integers keep
    their digits together: they may be values (a year, a port), not counts."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    number = float(value)
    if 1e4 <= abs(number) < 1e15:
        return f"{number:,.0f}"
    shown = f"{number:.{digits}g}"
    return "0" if shown == "-0" else shown


def count(n: int | None) -> str:
    """A count of things (rows, alerts), with thousands separators."""
    return "-" if n is None else f"{n:,}"


# The narrowest a column of names or prose folds to. Narrower, a name spread over
# many short lines reads worse than one "field: value" record per row.
FOLD_WIDTH = 20


@dataclass(frozen=True)
class Col:
    """A column of a listing. ``fold``: the narrowest its cells may wrap to (names,
    messages: folded, never cut short); None for short values that never wrap (ids,
    counts, times)."""

    header: str
    fold: int | None = FOLD_WIDTH
    justify: JustifyMethod = "left"


def short(header: str, justify: JustifyMethod = "left") -> Col:
    """A column of short values kept on one line: ids, counts, times, states."""
    return Col(header, fold=None, justify=justify)


def _cell(value: Any) -> Text:
    # A string is shown as it is, never read as markup: names and messages are the
    # user's. A styled cell comes as a Text.
    if isinstance(value, Text):
        return value
    return Text(value if isinstance(value, str) else fmt(value))


def _width(text: Text) -> int:
    return max((cell_len(line) for line in text.plain.splitlines()), default=0)


def _table(widths: list[int], columns: Sequence[Col], **options: Any) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, **options)
    for col, width in zip(columns, widths, strict=True):
        table.add_column(
            Text(col.header, style="bold"),
            width=width,
            justify=col.justify,
            overflow="fold",
            no_wrap=col.fold is None,
        )
    return table


def _fit(columns: Sequence[Col], natural: list[int], room: int) -> list[int] | None:
    """Column widths within ``room``: every column whole if it fits, else the columns
    that may fold share what is left, none below its fold width; None if even that
    does not fit."""
    if sum(natural) <= room:
        return natural
    floors = [
        n if c.fold is None else min(n, c.fold) for c, n in zip(columns, natural, strict=True)
    ]
    spare = room - sum(floors)
    if spare < 0:
        return None
    widths = list(floors)
    # Share the spare room out evenly, the columns that need least first.
    wants = sorted((natural[i] - floors[i], i) for i in range(len(columns)))
    wants = [(want, i) for want, i in wants if want > 0]
    for k, (want, i) in enumerate(wants):
        given = min(want, spare // (len(wants) - k))
        widths[i] += given
        spare -= given
    return widths


def render_rows(
    c: Console,
    columns: Sequence[Col | str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    caption: str | None = None,
    compact: bool = False,
) -> None:
    """Print a listing that fits ``c.width`` without cutting a cell short: a table,
    its names and messages folded when needed, or, when even that would not fit, one
    "field: value" record per row. A plain string is a column that may fold.
    ``compact``: two spaces between columns instead of three, for a wide table of
    short figures (a time series) that should stay a table in 80 columns."""
    cols = [Col(col) if isinstance(col, str) else col for col in columns]
    cells = [[_cell(value) for value in row] for row in rows]
    natural = [
        max(_width(Text(col.header)), *(_width(row[i]) for row in cells))
        for i, col in enumerate(cols)
    ]
    probe = _table([1] * len(cols), cols, collapse_padding=compact)
    overhead = Measurement.get(c, c.options, probe).maximum - len(cols)
    widths = _fit(cols, natural, c.width - overhead)
    if widths is not None:
        # The title and caption name the user's things: plain text, never markup. One
        # wider than the table goes on its own lines, wrapped to the terminal rather
        # than folded to the table's width.
        wide = sum(widths) + overhead
        head = None if title is None else Text(title, style="table.title")
        foot = None if caption is None else Text(caption, style="table.caption")
        above = head is not None and _width(head) > wide
        below = foot is not None and _width(foot) > wide
        if above:
            c.print(head, soft_wrap=False)
        table = _table(
            widths,
            cols,
            title=None if above else head,
            caption=None if below else foot,
            collapse_padding=compact,
        )
        for row in cells:
            table.add_row(*row)
        c.print(table)
        if below:
            c.print(foot, soft_wrap=False)
        return
    if title:
        c.print(Text(title, style="bold"), soft_wrap=False)
    records = Table.grid(padding=(0, 1))
    records.add_column(no_wrap=True, style="bold")
    records.add_column(overflow="fold")
    for n, row in enumerate(cells):
        if n:
            records.add_row("", "")
        for col, value in zip(cols, row, strict=True):
            records.add_row(Text(col.header.replace("\n", " ") + ":"), value)
    c.print(records)
    if caption:
        c.print(Text(caption, style="dim"), soft_wrap=False)


def facts(rows: Iterable[tuple[str, Any]]) -> Table:
    """Named facts, one a line, for a panel: the values fold rather than end in "…"."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, _cell(value))
    return grid
