"""How result objects show themselves: a one-line repr and a small HTML table.

The dataclasses the Python API returns carry profiles, contracts and results
documents; their generated reprs printed all of it, so a notebook cell or a log line
holding a dataset version scrolled for pages. Each result object builds its short repr
and its Jupyter table from these few helpers, so they all look alike (and like
:class:`~setpoint.monitoring.comparison.Comparison`): ``<Kind what: facts>`` on one
bounded line, and a two-column table of escaped text with no external assets.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime

MAX_REPR = 160  # characters of a repr, the marks included
MAX_VALUE = 60  # characters of one value inside a repr
MAX_CELL = 300  # characters of one value in an HTML table


def clip(value: object, width: int = MAX_VALUE) -> str:
    """``value`` as text on one line, at most ``width`` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def short_repr(kind: str, what: object, facts: Iterable[str]) -> str:
    """``<kind what: fact, fact>``, one line of at most :data:`MAX_REPR` characters."""
    shown = ", ".join(f for f in facts if f)
    body = f"{kind} {clip(what)}" + (f": {shown}" if shown else "")
    return f"<{clip(body, MAX_REPR - 2)}>"


def count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def number(value: float | None, digits: int = 3) -> str:
    """A figure as people read it: a few significant digits, ``-`` when unknown."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def day(when: datetime | None) -> str:
    return "-" if when is None else when.date().isoformat()


def minute(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M")


def listing(values: Iterable[object], limit: int = 3) -> str:
    """The first ``limit`` values, then how many more."""
    items = [str(v) for v in values]
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" and {more} more" if more > 0 else "")


def html_summary(kind: str, what: object, rows: Sequence[tuple[str, object]]) -> str:
    """A heading and a table of (label, value) rows; every value escaped and clipped."""
    body = "".join(
        f'<tr><th style="text-align:left">{html.escape(label)}</th>'
        f'<td style="text-align:left">{html.escape(clip(value, MAX_CELL))}</td></tr>'
        for label, value in rows
    )
    return (
        f"<p><b>{html.escape(kind)}</b> {html.escape(clip(what, MAX_CELL))}</p>"
        f"<table><tbody>{body}</tbody></table>"
    )
