"""The output helpers every command shares: numbers and listings."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console
from rich.text import Text

from setpoint.cli._common import Col, count, fmt, render_rows, short


def _rendered(width: int, columns: list[Col | str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    render_rows(Console(file=out, width=width, highlight=False), columns, rows)
    return out.getvalue()


def test_numbers_print_with_sensible_precision() -> None:
    assert fmt(0.1 + 0.2) == "0.3"
    assert fmt(44.620000000000005) == "44.62"
    assert fmt(123_456.7) == "123,457"
    assert fmt(np.float32(0.1)) == "0.1"
    assert fmt(np.int64(7)) == "7"
    assert fmt(-0.0) == "0"
    assert fmt(None) == "-"
    assert fmt(2024) == "2024"  # a value (a year, a port) keeps its digits together
    assert count(1_234_567) == "1,234,567"
    assert count(None) == "-"


def test_a_table_that_fits_stays_a_table() -> None:
    shown = _rendered(80, ["name", Col("rows", fold=None, justify="right")], [["loans", 300]])
    assert "name" in shown.splitlines()[0]
    assert "loans" in shown
    assert "300" in shown


def test_cells_are_text_not_markup() -> None:
    shown = _rendered(80, ["name"], [["[bold]loans[/]"]])
    assert "[bold]loans[/]" in shown
    styled = _rendered(80, ["state"], [[Text.from_markup("[red]failed[/]")]])
    assert "failed" in styled
    assert "[red]" not in styled


def test_a_long_name_folds_whole_instead_of_ending_in_an_ellipsis() -> None:
    name = "a-dataset-name-that-is-forty-characters-"
    shown = _rendered(60, ["dataset", "description"], [[name, "x " * 20]])
    assert "…" not in shown
    lines = shown.splitlines()
    assert name == "".join(line.split()[0] for line in lines[2:] if line.strip())
    assert all(len(line) <= 60 for line in shown.splitlines()), shown


def test_too_many_columns_turn_into_one_record_per_row() -> None:
    columns: list[Col | str] = [f"column {i}" for i in range(8)]
    shown = _rendered(40, columns, [[f"value {i}" for i in range(8)], ["x"] * 8])
    assert "column 3: value 3" in " ".join(shown.split())
    assert all(len(line) <= 40 for line in shown.splitlines()), shown


def test_titles_are_text_not_markup() -> None:
    out = io.StringIO()
    render_rows(
        Console(file=out, width=80, highlight=False),
        ["name"],
        [["loans"]],
        title="[bold]endpoint[/]",
        caption="[dim]note[/]",
    )
    assert "[bold]endpoint[/]" in out.getvalue()
    assert "[dim]note[/]" in out.getvalue()


def test_a_compact_table_has_two_spaces_between_columns() -> None:
    def rendered(compact: bool) -> str:
        out = io.StringIO()
        console = Console(file=out, width=80, highlight=False)
        render_rows(console, [short("a"), short("b")], [["xx", "yy"]], compact=compact)
        return out.getvalue()

    assert "xx   yy" in rendered(compact=False)
    assert "xx  yy" in rendered(compact=True)
    assert "xx   yy" not in rendered(compact=True)
