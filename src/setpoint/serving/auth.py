"""Who may call the server: API keys checked on every request, with rate limits.

Whether a key is needed is decided by configuration, never by how many keys are left:
it is needed once the workspace has ever had a key (a revoked key still counts), when
the ``require_keys`` setting is on (``setpoint serve --require-keys``), and when the
server listens beyond loopback without ``--insecure``. A server that needs a key and
has no active one refuses every request, naming the fix; revoking the last key never
opens it. Health and metrics probes are always open, and so is the /docs page (not the
document it shows). The check is an ASGI middleware
that reads the endpoint from the path (``/invocations`` is checked against the
endpoint it would serve), so every protocol's routes are covered the same way; the
routes that list endpoints show a key limited to one endpoint only that one.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

from setpoint.errors import (
    ForbiddenError,
    RateLimitedError,
    SetpointError,
    UnauthorizedError,
)
from setpoint.serving._hotpath import error_reply, reply
from setpoint.serving.keys import ApiKey, parse
from setpoint.serving.keys import Scope as KeyScope

OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready", "/ping",
     "/health", "/version"}
)  # fmt: skip
DOC_PATHS = frozenset({"/openapi.json", "/docs/plain"})
# The Swagger UI page, its script and its files hold no data, so a browser can load
# them without a key; what they show comes from /openapi.json (serving.swagger).
PAGE_PATHS = frozenset({"/docs", "/docs/setpoint.js"})
PAGE_PREFIX = "/docs/static/"
# The dashboard checks its own visitors: a key once, then a signed session cookie
# (setpoint.ui.session), so a browser need not send the key with every request.
UI_PREFIX = "/ui"
_MAX_VERIFIED = 10_000
_ENDPOINT = re.compile(r"^/(?:v1/endpoints|v2/models|endpoints)/([^/]+)")
_CREATE = "create one with: setpoint keys create --scope predict"


@dataclass
class TokenBucket:
    """``rate`` requests per second on average, bursts of up to one second's worth."""

    rate: float
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = max(1.0, self.rate)

    def take(self) -> float:
        """0 when a request may go now, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Guard:
    """Whether a key is needed, the active keys (both refreshed with the deployments),
    and the keys' rate-limit buckets."""

    def __init__(self, *, required: bool = False) -> None:
        self._required = required
        self._keys: dict[str, ApiKey] = {}
        self._buckets: dict[str, TokenBucket] = {}
        # Tokens already checked against their key's hash, so that a busy caller does
        # not pay a SHA-256 per request; emptied whenever the keys are re-read.
        self._verified: dict[str, ApiKey] = {}

    @property
    def required(self) -> bool:
        return self._required

    def update(self, keys: Iterable[ApiKey], *, required: bool) -> None:
        """Every key the workspace has had (revoked ones too: any key at all makes
        keys required), and whether the configuration requires keys anyway."""
        known = list(keys)
        self._required = required or bool(known)
        self._keys = {k.key_id: k for k in known if k.active}
        self._verified = {}
        self._buckets = {
            key_id: self._buckets.get(key_id) or TokenBucket(key.rate_per_second)
            for key_id, key in self._keys.items()
            if key.rate_per_second is not None
        }

    def active(self, key_id: str) -> ApiKey | None:
        """The active key ``key_id``, or None (unknown, or revoked when last read)."""
        return self._keys.get(key_id)

    def authorize(
        self, request: Scope, scopes: tuple[KeyScope, ...], endpoint: str | None
    ) -> ApiKey | None:
        """The key an ASGI ``request`` carries (Authorization: Bearer, or X-API-Key),
        ``check``-ed; None when no key is needed."""
        if not self._required:
            return None
        return self.check(_token(request), scopes, endpoint)

    def check(
        self, token: str | None, scopes: tuple[KeyScope, ...], endpoint: str | None
    ) -> ApiKey | None:
        """The key ``token`` names, if it may make a request that one of ``scopes``
        allows on ``endpoint`` (None: a route naming no endpoint) now."""
        if not self._required:
            return None
        none_active = "" if self._keys else "; the workspace has no active API key: " + _CREATE
        if not token:
            raise UnauthorizedError(
                "this server needs an API key: send 'Authorization: Bearer sp_...'"
                + (none_active or f" ({_CREATE})")
            )
        key = self._verified.get(token)
        if key is None:
            parsed = parse(token)
            key = self._keys.get(parsed[0]) if parsed else None
            if key is None or parsed is None or not key.matches(parsed[1]):
                raise UnauthorizedError(
                    "the API key is not valid (unknown, mistyped or revoked)" + none_active
                )
            if len(self._verified) < _MAX_VERIFIED:
                self._verified[token] = key
        if not key.allows(scopes, endpoint):
            where = f"endpoint {key.endpoint!r}" if key.endpoint else "every endpoint"
            raise ForbiddenError(
                f"key {key.key_id} has scope {key.scope!r} on {where}; this needs "
                + " or ".join(map(repr, scopes))
                + (f" on {endpoint!r}" if endpoint else "")
            )
        bucket = self._buckets.get(key.key_id)
        if bucket is not None:
            wait = bucket.take()
            if wait > 0:
                raise RateLimitedError(
                    f"key {key.key_id} is limited to {key.rate_per_second:g} requests per "
                    "second; slow down",
                    retry_after=max(1, math.ceil(wait)),
                )
        return key


def _token(request: Scope) -> str | None:
    """The key in the Authorization header (scheme Bearer, in any case: RFC 7235) or,
    without that header, in X-API-Key."""
    authorization: str | None = None
    api_key: str | None = None
    for name, value in request["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1").strip()
    if authorization is None:
        return api_key
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise UnauthorizedError(
            f"the Authorization header uses the scheme {scheme[:20]!r}; send "
            "'Authorization: Bearer sp_...' (or 'X-API-Key: sp_...')"
        )
    return token.strip()


def caller(request: Scope) -> ApiKey | None:
    """The key that authorized ``request`` (None when the server needs none)."""
    found = request.get("state", {}).get("api_key")
    return found if isinstance(found, ApiKey) else None


def limited_to(request: Scope) -> str | None:
    """The one endpoint the caller's key is limited to; None when it may see every one."""
    key = caller(request)
    return None if key is None else key.endpoint


class AuthMiddleware:
    """Checks every request but the probes; ``only_endpoint`` names the endpoint
    ``/invocations`` serves (None when the server has none or several)."""

    def __init__(self, app: ASGIApp, guard: Guard, only_endpoint: Callable[[], str | None]) -> None:
        self.app = app
        self.guard = guard
        self.only_endpoint = only_endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guard.required or _open(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            key = self._authorize(scope)
        except SetpointError as error:
            await _reply(send, error)
            return
        scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)

    def _authorize(self, scope: Scope) -> ApiKey | None:
        path: str = scope["path"]
        if path in DOC_PATHS:
            return self.guard.authorize(scope, ("read",), None)
        match = _ENDPOINT.match(path)
        endpoint = match.group(1) if match else None
        needed: tuple[KeyScope, ...] = (
            ("feedback",)
            if path.endswith("/feedback")
            else ("predict", "read")
            if scope["method"] in ("GET", "HEAD")
            else ("predict",)
        )
        key = self.guard.authorize(scope, needed, endpoint)
        only = None if key is None else key.endpoint
        if path == "/invocations" and only is not None and self.only_endpoint() != only:
            raise ForbiddenError(
                f"this key is limited to endpoint {only!r}, which /invocations does not "
                f"serve here; post to /endpoints/{only}/invocations"
            )
        return key


def _open(path: str) -> bool:
    return (
        path in OPEN_PATHS
        or path in PAGE_PATHS
        or path == UI_PREFIX
        or path.startswith((PAGE_PREFIX, UI_PREFIX + "/"))
    )


async def _reply(send: Send, error: SetpointError) -> None:
    await reply(send, *error_reply(error))
