"""API keys: created once, shown once, stored hashed, revocable.

A key reads ``sp_<key id>_<secret>``. The key id is public (it names the key in
lists, logs and revocations); only the sha256 of the secret is stored, and a key is
checked by hashing what a caller sends and comparing in constant time. A key has a
scope — ``predict``, ``feedback``, ``read`` (the API description, ``/openapi.json`` and
``/docs``, the endpoints' metadata, and the dashboard's pages), ``approve`` (the
dashboard's pages and its actions: approving or rejecting a rollout, acknowledging an
alert) or ``admin`` (which allows everything) — may be
limited to one endpoint, and may carry a rate limit in requests per second.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa

from setpoint._names import check_name
from setpoint.errors import NotFoundError, UsageError
from setpoint.store import audit
from setpoint.store.db import Database
from setpoint.store.schema import api_keys

Scope = Literal["predict", "feedback", "read", "approve", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
PREFIX = "sp"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    scope: Scope
    endpoint: str | None
    rate_per_second: float | None
    note: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    secret_hash: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scopes: Collection[Scope], endpoint: str | None) -> bool:
        """Whether this key may make a request that any of ``scopes`` allows, on
        ``endpoint``; None is a route that names no endpoint, which shows a key limited
        to one endpoint only that endpoint (the routes filter what they list)."""
        if self.scope != "admin" and self.scope not in scopes:
            return False
        return self.endpoint is None or endpoint is None or self.endpoint == endpoint

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_hash(secret), self.secret_hash)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "scope": self.scope,
            "endpoint": self.endpoint,
            "rate_per_second": self.rate_per_second,
            "note": self.note,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


def parse(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a presented key, or None when it is not shaped like one."""
    parts = token.strip().split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class KeyStore:
    def __init__(self, db: Database, *, actor: str) -> None:
        self._db = db
        self._actor = actor

    def create(
        self,
        scope: str,
        *,
        endpoint: str | None = None,
        rate_per_second: float | None = None,
        note: str = "",
    ) -> tuple[ApiKey, str]:
        """A new key and its full text, which is shown this once and never stored."""
        if scope not in SCOPES:
            raise UsageError(f"--scope {scope!r}: use one of {', '.join(SCOPES)}")
        if endpoint is not None:
            check_name("endpoint", endpoint)
        if rate_per_second is not None and not rate_per_second > 0:
            raise UsageError("--rate must be a positive number of requests per second")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
        with self._db.write() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    secret_hash=_hash(secret),
                    scope=scope,
                    endpoint=endpoint,
                    rate_per_second=rate_per_second,
                    note=note,
                    created_by=self._actor,
                    created_at=audit.now(),
                )
            )
            audit.record(
                conn,
                actor=self._actor,
                action="key.create",
                entity_type="api_key",
                entity=key_id,
                after={"scope": scope, "endpoint": endpoint, "rate_per_second": rate_per_second},
            )
        return self.get(key_id), f"{PREFIX}_{key_id}_{secret}"

    def revoke(self, key_id: str) -> ApiKey:
        with self._db.write() as conn:
            changed = conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=audit.now())
            ).rowcount
            if changed:
                audit.record(
                    conn,
                    actor=self._actor,
                    action="key.revoke",
                    entity_type="api_key",
                    entity=key_id,
                )
        return self.get(key_id)

    def get(self, key_id: str) -> ApiKey:
        with self._db.read() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            raise NotFoundError(f"no API key {key_id!r}; list them with: setpoint keys list")
        return _key(row)

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self._db.read() as conn:
            return [_key(r) for r in conn.execute(query)]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        scope=row.scope,
        endpoint=row.endpoint,
        rate_per_second=row.rate_per_second,
        note=row.note,
        created_by=row.created_by,
        created_at=audit.as_utc(row.created_at),
        revoked_at=None if row.revoked_at is None else audit.as_utc(row.revoked_at),
        secret_hash=row.secret_hash,
    )
