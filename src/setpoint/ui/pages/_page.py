"""What a page module gives the dashboard: its pages and its actions.

A page is a path, a template and a ``gather`` function that turns a :class:`View` (the
workspace, the path and query parameters, who is looking) into the template's context;
it runs in a worker thread, since the store is synchronous. An action is a POSTed form
(approve, reject, acknowledge): it needs the ``approve`` scope and the form's CSRF
token (both checked by the app before ``run`` is called), and answers with where to go
next and what to say there. A download is a GET like a page whose answer is a file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from setpoint.errors import UsageError

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

# endpoint -> {"requests": n, "errors": n (5xx), "refused": n (4xx)} since the server started
LiveCounts = Callable[[], Mapping[str, Mapping[str, int]]]


@dataclass(frozen=True)
class View:
    workspace: Workspace
    params: Mapping[str, str]  # from the path
    query: Mapping[str, str]
    base: str  # the dashboard's URL prefix, e.g. "/ui"
    can_act: bool  # the viewer may approve, reject and acknowledge
    actor: str  # who the audit log names for what the viewer does
    csrf: str
    live: LiveCounts | None = None  # the serving process's counters, when there is one
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def url(self, *parts: object, **query: object) -> str:
        """A dashboard URL: ``view.url("models", name)`` -> ``/ui/models/<name>``."""
        from urllib.parse import quote, urlencode

        path = "/".join(quote(str(p), safe="") for p in parts)
        shown = {k: v for k, v in query.items() if v is not None and v != ""}
        return f"{self.base}/{path}" + (f"?{urlencode(shown)}" if shown else "")

    def integer(self, name: str, *, source: str = "params") -> int:
        """A whole-number path (or query) parameter, refused with a 400 otherwise."""
        values = self.params if source == "params" else self.query
        text = values.get(name, "")
        if not text.isdigit():
            raise UsageError(f"{name} must be a whole number, not {text[:40]!r}")
        return int(text)


@dataclass(frozen=True)
class Page:
    path: str  # under the dashboard's prefix, Starlette path syntax: "/models/{name}"
    template: str
    gather: Callable[[View], dict[str, Any]]
    title: str
    live: bool = False  # refreshed in place while open (ui.js)


@dataclass(frozen=True)
class Download:
    """A file a GET returns (a quarantine batch as CSV), let in like a page."""

    path: str
    # view -> (the file's name, its media type, its bytes)
    make: Callable[[View], tuple[str, str, bytes]]


@dataclass(frozen=True)
class Action:
    path: str
    # (view, the form's fields) -> (where to go next, what to tell the person there)
    run: Callable[[View, Mapping[str, str]], tuple[str, str]]


def reason(form: Mapping[str, str], what: str) -> str:
    """The form's required ``reason`` field, stripped; a 400 naming the fix without it."""
    text = (form.get("reason") or "").strip()
    if not text:
        raise UsageError(f"say why you {what}: the reason is required (it goes in the audit log)")
    if len(text) > 2000:
        raise UsageError("the reason is longer than 2,000 characters; say it in fewer words")
    return text
