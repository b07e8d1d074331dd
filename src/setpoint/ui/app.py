"""The dashboard's routes: pages, actions, the login, and its static files.

``Dashboard(workspace, guard).mount()`` is what ``setpoint serve`` adds at ``/ui``;
``create_ui_app`` is the dashboard alone (``setpoint ui``). Who may see and do what is
decided here, before a page module runs: see ``session.py`` and the architecture's
"The dashboard". Errors become an HTML page with the error's status and its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from setpoint.data.pii import workspace_secret
from setpoint.errors import ForbiddenError, SetpointError, UnauthorizedError, UsageError
from setpoint.serving.auth import Guard
from setpoint.serving.keys import ApiKey
from setpoint.serving.keys import Scope as KeyScope
from setpoint.ui import pages as page_modules
from setpoint.ui.pages._page import Action, Download, LiveCounts, Page, View
from setpoint.ui.render import HEADERS, render
from setpoint.ui.session import COOKIE, SECRET_FILE, Session, Sessions
from setpoint.workspace import Workspace

logger = logging.getLogger("setpoint.ui")

PREFIX = "/ui"
READ_SCOPES: tuple[KeyScope, ...] = ("read", "approve", "admin")
ACT_SCOPES: tuple[KeyScope, ...] = ("approve", "admin")
_MAX_FORM_BYTES = 64 * 1024
_STATIC = Path(__file__).parent / "static"


class _SignIn(Exception):
    """The visitor must give a key first (``why``: what to tell them)."""

    def __init__(self, why: str = "") -> None:
        self.why = why


class Dashboard:
    """The dashboard over ``workspace``, letting in whom ``guard`` lets in (its keys are
    refreshed by whoever owns it); ``live`` gives the serving process's request counts."""

    def __init__(self, workspace: Workspace, guard: Guard, *, live: LiveCounts | None = None):
        self.workspace = workspace
        self.guard = guard
        self.live = live
        self.sessions = Sessions(workspace_secret(workspace.root, SECRET_FILE))

    def mount(self) -> Mount:
        routes: list[BaseRoute] = [
            Route("/login", self._login_page, methods=["GET"]),
            Route("/login", self._login, methods=["POST"]),
            Route("/logout", self._logout, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=_STATIC), name="ui-static"),
        ]
        # Downloads first: their fixed paths (/datasets/quarantine/3.csv) would read as
        # a page's parameters (/datasets/{name}/{version}).
        for download in page_modules.downloads():
            routes.append(Route(download.path, self._download(download), methods=["GET", "HEAD"]))
        for page in page_modules.pages():
            routes.append(Route(page.path or "/", self._page(page), methods=["GET", "HEAD"]))
        for action in page_modules.actions():
            routes.append(Route(action.path, self._action(action), methods=["POST"]))
        return Mount(PREFIX, routes=routes)

    # -- who is looking --------------------------------------------------------------

    def _viewer(self, request: Request) -> tuple[Session, ApiKey | None, bool]:
        """The visitor's session, its key (None without keys) and whether the session
        is new (its cookie is to be set)."""
        session = self.sessions.read(request.cookies.get(COOKIE))
        if not self.guard.required:
            if session is None or not session.anonymous:
                return self.sessions.open(), None, True
            return session, None, False
        if session is None or session.anonymous:
            raise _SignIn()
        key = self.guard.active(session.key_id)
        if key is None:
            raise _SignIn(f"key {session.key_id} is no longer active; sign in with another")
        return session, key, False

    def _view(self, request: Request, session: Session, key: ApiKey | None) -> View:
        if key is None:
            actor, can_act = f"ui:{self.workspace.actor}", True
        else:
            if key.scope not in READ_SCOPES:  # keys are checked at sign-in; scopes can't change
                raise ForbiddenError(
                    f"key {key.key_id} has scope {key.scope!r}; the dashboard needs read"
                )
            actor = f"key:{key.key_id}" + (f" ({key.note})" if key.note else "")
            can_act = key.scope in ACT_SCOPES
        return View(
            workspace=self.workspace,
            params={k: str(v) for k, v in request.path_params.items()},
            query=dict(request.query_params),
            base=_base(request),
            can_act=can_act,
            actor=actor[:200],
            csrf=self.sessions.csrf(session),
            live=self.live,
        )

    # -- pages and actions -------------------------------------------------------------

    def _page(self, page: Page) -> Callable[[Request], Any]:
        async def respond(request: Request, view: View, key: ApiKey | None) -> Response:
            context = await run_in_threadpool(page.gather, view)
            return render(
                page.template,
                {**self._common(view, key, page), **context},
                fragment=request.query_params.get("fragment"),
            )

        return self._reading(respond)

    def _download(self, download: Download) -> Callable[[Request], Any]:
        async def respond(_request: Request, view: View, _key: ApiKey | None) -> Response:
            filename, media_type, body = await run_in_threadpool(download.make, view)
            disposition = f'attachment; filename="{_plain(filename)}"'
            return Response(
                body, media_type=media_type, headers={**HEADERS, "Content-Disposition": disposition}
            )

        return self._reading(respond)

    def _reading(
        self, respond: Callable[[Request, View, ApiKey | None], Awaitable[Response]]
    ) -> Callable[[Request], Any]:
        """A GET handler: who is looking (or the sign-in), then ``respond``; an error
        is the HTML error page; a new session's cookie is set on whatever answers."""

        async def handler(request: Request) -> Response:
            try:
                session, key, new = self._viewer(request)
            except _SignIn as sign_in:
                return self._to_login(request, sign_in.why)
            response: Response
            try:
                response = await respond(request, self._view(request, session, key), key)
            except SetpointError as error:
                response = self._error(request, error, session, key)
            if new:
                self._set_cookie(request, response, session)
            return response

        return handler

    def _action(self, action: Action) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            try:
                session, key, _ = self._viewer(request)
            except _SignIn as sign_in:
                return self._to_login(request, sign_in.why)
            try:
                form = await _form(request)
                if not self.sessions.check_csrf(session, form.get("csrf")):
                    raise ForbiddenError(
                        "this form's security token is missing or out of date; reload the "
                        "page and send it again"
                    )
                view = self._view(request, session, key)
                if not view.can_act:
                    assert key is not None
                    raise ForbiddenError(
                        f"key {key.key_id} has scope {key.scope!r}; approving, rejecting and "
                        "acknowledging need a key with scope approve"
                    )
                target, message = await run_in_threadpool(action.run, view, form)
            except SetpointError as error:
                return self._error(request, error, session, key)
            return RedirectResponse(self._with_notice(target, message), status_code=303)

        return handler

    def _common(self, view: View, key: ApiKey | None, page: Page) -> dict[str, Any]:
        notice = view.query.get("notice", "")
        signed = view.query.get("sig", "")
        return {
            "view": view,
            "base": view.base,
            "page_title": page.title,  # a page's gather may name itself more closely
            "section": page.title,  # the navigation's current entry
            "live": page.live,
            "signed_in": key is not None,
            "who": None if key is None else view.actor,
            "can_act": view.can_act,
            "csrf": view.csrf,
            # Only a notice this server signed is shown: a link cannot put words here.
            "notice": notice if notice and self.sessions.check_notice(notice, signed) else "",
        }

    def _with_notice(self, target: str, message: str) -> str:
        join = "&" if "?" in target else "?"
        query = urlencode({"notice": message, "sig": self.sessions.notice(message)})
        return f"{target}{join}{query}"

    def _error(
        self, request: Request, error: SetpointError, session: Session, key: ApiKey | None
    ) -> Response:
        base = _base(request)
        return render(
            "error.html",
            {
                "base": base,
                "page_title": "Something is wrong",
                "section": "",
                "live": False,
                "signed_in": key is not None,
                "who": None,
                "can_act": False,
                "csrf": self.sessions.csrf(session),
                "notice": "",
                "message": error.message,
                "status": error.http_status,
            },
            status=error.http_status,
        )

    # -- signing in --------------------------------------------------------------------

    def _to_login(self, request: Request, why: str) -> Response:
        base = _base(request)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": here, **({"why": why} if why else {})})
        return RedirectResponse(f"{base}/login?{query}", status_code=303)

    async def _login_page(self, request: Request) -> Response:
        session = self.sessions.read(request.cookies.get(COOKIE))
        new = session is None or not session.anonymous
        if new or session is None:
            session = self.sessions.open()
        response = self._login_form(request, session, request.query_params.get("why", ""))
        if new:
            self._set_cookie(request, response, session)
        return response

    def _login_form(
        self, request: Request, session: Session, problem: str, status: int = 200
    ) -> Response:
        base = _base(request)
        return render(
            "login.html",
            {
                "base": base,
                "page_title": "Sign in",
                "section": "",
                "live": False,
                "signed_in": False,
                "who": None,
                "can_act": False,
                "csrf": self.sessions.csrf(session),
                "notice": "",
                "problem": problem,
                "next": _local(request.query_params.get("next", ""), base),
                "keys_needed": self.guard.required,
            },
            status=status,
        )

    async def _login(self, request: Request) -> Response:
        base = _base(request)
        session = self.sessions.read(request.cookies.get(COOKIE))
        form = await _form(request)
        if session is None or not self.sessions.check_csrf(session, form.get("csrf")):
            fresh = self.sessions.open()
            response = self._login_form(
                request, fresh, "The form was out of date (or cookies are off); try again.", 403
            )
            self._set_cookie(request, response, fresh)
            return response
        target = _local(form.get("next", ""), base)
        if not self.guard.required:
            return RedirectResponse(target, status_code=303)
        try:
            key = self.guard.check((form.get("key") or "").strip(), READ_SCOPES, None)
            assert key is not None
            if key.endpoint is not None:
                raise ForbiddenError(
                    f"key {key.key_id} is limited to endpoint {key.endpoint!r}; the dashboard "
                    "shows the whole workspace: sign in with a key for every endpoint"
                )
        except (UnauthorizedError, ForbiddenError, UsageError) as error:
            return self._login_form(request, session, error.message, error.http_status)
        except SetpointError as error:  # rate-limited
            return self._login_form(request, session, error.message, error.http_status)
        response = RedirectResponse(target, status_code=303)
        self._set_cookie(request, response, self.sessions.open(key.key_id))
        return response

    async def _logout(self, request: Request) -> Response:
        base = _base(request)
        session = self.sessions.read(request.cookies.get(COOKIE))
        form = await _form(request)
        if session is None or not self.sessions.check_csrf(session, form.get("csrf")):
            return Response("the form was out of date; reload the page", 403, headers=HEADERS)
        response = RedirectResponse(f"{base}/login", status_code=303)
        response.delete_cookie(COOKIE, path=base)
        return response

    def _set_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.sessions.cookie(session),
            max_age=self.sessions.lifetime,
            path=_base(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


def _base(request: Request) -> str:
    """The dashboard's URL prefix: the mount's, behind any proxy's prefix (``/ui``)."""
    return str(request.scope.get("root_path", ""))


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the last of a repeated name), refused when large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise UsageError("the form is larger than 64 KB; say it in fewer words")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise UsageError("the form is not UTF-8 text") from None


def _plain(filename: str) -> str:
    """A file name safe inside a quoted header value: letters, digits, ``.-_`` only."""
    return "".join(c if c.isascii() and (c.isalnum() or c in ".-_") else "_" for c in filename)


def _local(target: str, base: str) -> str:
    """``target`` when it is a path on this dashboard, else its front page: a sign-in
    link can send nobody elsewhere."""
    inside = target == base or target.startswith(base + "/")
    if inside and "//" not in target and "\\" not in target:
        return target
    return base + "/"


def create_ui_app(workspace: Workspace, *, refresh_seconds: float | None = None) -> Starlette:
    """The dashboard alone (``setpoint ui``): no model is loaded; the keys are read
    again every ``refresh_seconds`` (the workspace's setting by default)."""
    guard = Guard(required=workspace.settings.require_keys)
    every = refresh_seconds or workspace.settings.refresh_seconds

    def read_keys() -> None:
        guard.update(
            workspace.keys.list(include_revoked=True), required=workspace.settings.require_keys
        )

    async def follow() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await run_in_threadpool(read_keys)
            except Exception:  # the store may be unreachable for a moment
                logger.exception("reading the API keys failed; keeping the last ones")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(read_keys)
        task = asyncio.ensure_future(follow())
        try:
            yield
        finally:
            task.cancel()

    async def front(_request: Request) -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    app = Starlette(
        routes=[Route("/", front), Dashboard(workspace, guard).mount()], lifespan=lifespan
    )
    app.state.read_keys = read_keys  # read them now, not at the next refresh
    return app
