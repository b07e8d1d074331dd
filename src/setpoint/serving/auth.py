"""Who may call the server: API keys checked on every request, with rate limits.

Authentication is on as soon as the workspace has an active key (``setpoint keys
create``); a workspace without keys serves openly, which is why the server refuses
to listen beyond loopback without keys unless told ``--insecure``. Health and
metrics probes are always open. The check is an ASGI middleware that reads the
endpoint from the path, so every protocol's routes are covered the same way.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
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
     "/health", "/version", "/openapi.json", "/docs"}
)  # fmt: skip
_MAX_VERIFIED = 10_000
_ENDPOINT = re.compile(r"^/(?:v1/endpoints|v2/models|endpoints)/([^/]+)")


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
    """The active keys, refreshed with the deployments, and their buckets."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._buckets: dict[str, TokenBucket] = {}
        # Tokens already checked against their key's hash, so that a busy caller does
        # not pay a SHA-256 per request; emptied whenever the keys are re-read.
        self._verified: dict[str, ApiKey] = {}

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def update(self, keys: Iterable[ApiKey]) -> None:
        self._keys = {k.key_id: k for k in keys if k.active}
        self._verified = {}
        self._buckets = {
            key_id: self._buckets.get(key_id) or TokenBucket(key.rate_per_second)
            for key_id, key in self._keys.items()
            if key.rate_per_second is not None
        }

    def authorize(self, request: Scope, scope: KeyScope, endpoint: str | None) -> None:
        """``check`` the API key an ASGI ``request`` carries (Authorization: Bearer, or
        X-API-Key)."""
        if not self._keys:
            return
        header = None
        for name, value in request["headers"]:
            if name == b"authorization" or (name == b"x-api-key" and header is None):
                header = value.decode("latin-1")
        self.check(header, scope, endpoint)

    def check(self, header: str | None, scope: KeyScope, endpoint: str | None) -> None:
        if not self._keys:
            return
        if not header:
            raise UnauthorizedError(
                "this server needs an API key: send 'Authorization: Bearer sp_...' "
                "(create one with: setpoint keys create --scope predict)"
            )
        token = header.removeprefix("Bearer ").strip()
        key = self._verified.get(token)
        if key is None:
            parsed = parse(token)
            key = self._keys.get(parsed[0]) if parsed else None
            if key is None or parsed is None or not key.matches(parsed[1]):
                raise UnauthorizedError("the API key is not valid (unknown, mistyped or revoked)")
            if len(self._verified) < _MAX_VERIFIED:
                self._verified[token] = key
        if not key.allows(scope, endpoint):
            where = f"endpoint {key.endpoint!r}" if key.endpoint else "every endpoint"
            raise ForbiddenError(
                f"key {key.key_id} has scope {key.scope!r} on {where}; this needs "
                f"{scope!r}" + (f" on {endpoint!r}" if endpoint else "")
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


class AuthMiddleware:
    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guard.required or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        match = _ENDPOINT.match(path)
        needed: KeyScope = "feedback" if path.endswith("/feedback") else "predict"
        try:
            self.guard.authorize(scope, needed, match.group(1) if match else None)
        except SetpointError as error:
            await _reply(send, error)
            return
        await self.app(scope, receive, send)


async def _reply(send: Send, error: SetpointError) -> None:
    await reply(send, *error_reply(error))
