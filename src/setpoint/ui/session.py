"""The dashboard's sessions: a signed cookie naming the key that opened it, and the
CSRF token every form carries.

The cookie holds ``<key id>.<session id>.<expiry>.<signature>``: the signature is
HMAC-SHA256 of the rest under the workspace's dashboard secret, so a visitor can read
their own cookie but change nothing in it. The key's secret is never kept: each
request looks the key up by id among the active keys (``Guard.active``), so a revoked
key's sessions end when the server next reads the keys. Without keys (a server on
loopback that needs none) every visitor gets an anonymous session, whose id the CSRF
token is still bound to.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "setpoint_ui"
SECRET_FILE = Path("secrets") / "ui.key"
LIFETIME_SECONDS = 8 * 3600
ANONYMOUS = "-"  # the key id of a session that needs no key


@dataclass(frozen=True)
class Session:
    key_id: str  # ANONYMOUS when the server needs no key
    session_id: str
    expires: int  # seconds since the epoch

    @property
    def anonymous(self) -> bool:
        return self.key_id == ANONYMOUS


class Sessions:
    """Makes and reads session cookies and CSRF tokens under one secret."""

    def __init__(self, secret: bytes, *, lifetime: int = LIFETIME_SECONDS) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def open(self, key_id: str = ANONYMOUS, *, now: float | None = None) -> Session:
        at = time.time() if now is None else now
        return Session(key_id, secrets.token_urlsafe(18), int(at) + self.lifetime)

    def cookie(self, session: Session) -> str:
        body = f"{session.key_id}.{session.session_id}.{session.expires}"
        return f"{body}.{self._sign('session:' + body)}"

    def read(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """The session ``cookie`` holds, or None when it is missing, forged or expired."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], self._sign("session:" + body)):
            return None
        session = Session(parts[0], parts[1], int(parts[2]))
        at = time.time() if now is None else now
        return session if session.expires > at else None

    def csrf(self, session: Session) -> str:
        """The token the forms of ``session`` carry."""
        return self._sign("csrf:" + session.session_id)

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(session))

    def notice(self, message: str) -> str:
        """The signature that lets a redirect show ``message`` on the next page."""
        return self._sign("notice:" + message)

    def check_notice(self, message: str, signature: str) -> bool:
        return bool(signature) and hmac.compare_digest(signature, self.notice(message))

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()
