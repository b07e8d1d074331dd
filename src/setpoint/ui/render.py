"""Templates to pages: one Jinja2 environment, its filters, and the headers every page
carries.

Templates are package files under ``ui/templates/``, autoescaped; text from the
workspace (names, notes, reasons) is always escaped, and only what ``ui/charts.py``
draws enters a page as markup. The Content-Security-Policy allows nothing but this
server: no inline script, no inline style, no fonts or images from elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from setpoint import __version__

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("setpoint.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # Stored documents differ across versions: a missing field shows as nothing.
        undefined=jinja2.ChainableUndefined,
    )
    env.filters.update(
        figure=figure,
        percent=percent,
        count=count,
        when=when,
        ago=ago,
        ms=ms,
        signed=signed,
    )
    env.globals["version"] = __version__
    return env


def render(
    template: str, context: Mapping[str, Any], *, status: int = 200, fragment: str | None = None
) -> HTMLResponse:
    """The page ``template`` renders from ``context``; with ``fragment``, only that
    block (the live refresh asks for ``main``)."""
    tmpl = environment().get_template(template)
    if fragment is None:
        text = tmpl.render(context)
    else:
        # A page's blocks are its own and its base's (``main`` is base.html's): Jinja links
        # them, and runs the page's imports, only in a whole render. So the page is rendered,
        # then the block again in the same context (templates cost a millisecond).
        ctx = tmpl.new_context(dict(context))
        whole = "".join(tmpl.root_render_func(ctx))
        text = "".join(ctx.blocks[fragment][0](ctx)) if fragment in ctx.blocks else whole
    return HTMLResponse(text, status_code=status, headers=HEADERS)


def _missing(value: Any) -> bool:
    """Unknown: None, a field the document lacks, or a number that is not finite."""
    if value is None or isinstance(value, jinja2.Undefined):
        return True
    return isinstance(value, float) and not math.isfinite(value)


def figure(value: Any, digits: int = 3) -> str:
    """A number as people read it: a few significant digits, thousands separated;
    an em dash when unknown."""
    if _missing(value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def signed(value: Any, digits: int = 2) -> str:
    """A difference, with its sign always shown."""
    if _missing(value):
        return "—"
    return "±0" if value == 0 else f"{value:+.{digits}g}"


def percent(value: Any, digits: int = 1) -> str:
    if _missing(value):
        return "—"
    shown = f"{100 * value:.{digits}f}"
    if float(shown) == 0 and value > 0:
        return f"<{10**-digits:g}%"
    return f"{shown}%"


def count(value: Any) -> str:
    return "—" if _missing(value) else f"{int(value):,}"


def ms(value: Any) -> str:
    if _missing(value):
        return "—"
    return f"{value:.3g} ms" if value < 100 else f"{value:,.0f} ms"


def when(value: Any) -> str:
    """A moment in UTC to the minute."""
    if _missing(value):
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(value: Any, now: datetime | None = None) -> str:
    """How long before ``now`` (the system's time) ``value`` was, in the largest unit."""
    if _missing(value):
        return "never"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    if seconds < 0:
        return "just now" if seconds > -60 else "in the future"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"
