"""What a load test aims at: the server's address (loopback unless allowed), the
endpoint it serves and the model version behind it, and request bodies from that
version's training data.

The server is asked which version it serves (``GET /v1/endpoints/ENDPOINT``) rather
than the workspace's deployment read: a server follows its aliases every few
seconds, and the bodies and the record should be the version that answered.
"""

from __future__ import annotations

import http.client
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import numpy as np

from setpoint.errors import (
    ForbiddenError,
    NotFoundError,
    ServerUnavailableError,
    UnauthorizedError,
    UsageError,
)
from setpoint.serving.server import is_loopback

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

DEFAULT_URL = "http://127.0.0.1:8000"  # where `setpoint serve` listens by default
ROWS = 10_000  # distinct request bodies, at most: enough that a cache sees few repeats


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    url: str  # as given, without a trailing slash


def address(url: str, *, allow_remote: bool = False) -> Address:
    """``url`` as host and port; refused when it is not http, or not loopback without
    ``allow_remote`` (a load test beyond this machine loads someone's service)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise UsageError(
            f"--url {url}: the load generator speaks plain HTTP; load the server on "
            "loopback (setpoint serve without --tls-cert), not through TLS"
        )
    if not parts.hostname:
        raise UsageError(f"--url {url}: give an address such as {DEFAULT_URL}")
    try:
        port = parts.port or 80
    except ValueError:
        raise UsageError(f"--url {url}: the port is not a number") from None
    if not allow_remote and not is_loopback(parts.hostname):
        raise UsageError(
            f"--url {url} is not this machine: a load test sends thousands of requests a "
            "second; add --allow-remote if that server is yours to load"
        )
    return Address(parts.hostname, port, f"http://{parts.netloc}")


def served_version(
    where: Address, endpoint: str, key: str | None, *, timeout: float = 5.0
) -> dict[str, Any]:
    """What the server says of ``endpoint`` (its model and version), or the error
    that says why it cannot be loaded."""
    path = f"/v1/endpoints/{quote(endpoint, safe='')}"
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn = http.client.HTTPConnection(where.host, where.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        status, body = response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ServerUnavailableError(
            f"no setpoint server answers at {where.url} ({exc}); start one with "
            f"`setpoint serve` (or give its address with --url)"
        ) from None
    finally:
        conn.close()
    if status == 401:
        raise UnauthorizedError(
            f"the server at {where.url} needs an API key: give one with --key or "
            "SETPOINT_API_KEY (setpoint keys create --scope predict)"
        )
    if status == 403:
        raise ForbiddenError(
            f"the API key given may not call endpoint {endpoint!r}; use a predict key "
            "for it (setpoint keys create --scope predict --endpoint " + endpoint + ")"
        )
    if status == 404:
        raise NotFoundError(
            f"the server at {where.url} serves no endpoint {endpoint!r}; "
            "`setpoint deployments list` shows the endpoints"
        )
    try:
        info: dict[str, Any] = json.loads(body)
        info = {**info, "model": str(info["model"]), "version": int(info["version"])}
    except (ValueError, KeyError, TypeError):
        raise ServerUnavailableError(
            f"{where.url}{path} answered {status} without an endpoint's description: "
            "is it a setpoint server?"
        ) from None
    return info


def served_workers(where: Address, *, timeout: float = 5.0) -> int | None:
    """How many worker processes the server runs, from its ``/metrics``
    (``setpoint_workers``); None when it does not say (an older server)."""
    conn = http.client.HTTPConnection(where.host, where.port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        status, body = response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if status != 200:
        return None
    found = re.search(rb"^setpoint_workers ([0-9.e+]+)$", body, re.MULTILINE)
    if found is None:
        return None
    try:
        workers = round(float(found.group(1)))
    except ValueError:
        return None
    return workers if workers >= 1 else None


def reference_records(ws: Workspace, model_ref: str, *, limit: int = ROWS) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of ``model_ref``'s training data, as a JSON client sends
    them: the contract's columns, missing values as None; a fixed sample, so two runs
    send the same bodies."""
    version = ws.model(model_ref)
    if version.contract is None:
        raise UsageError(f"model {version.ref} has no input contract to build requests from")
    dataset = version.training_dataset
    if dataset is None:
        raise UsageError(
            f"model {version.ref} records no training dataset to draw request bodies from"
        )
    columns = list(version.contract["columns"])
    table = ws.load_dataset(dataset)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise UsageError(f"dataset {dataset} lacks the model's column(s) {', '.join(missing)}")
    n = min(limit, table.num_rows)
    rows = np.sort(np.random.default_rng(0).choice(table.num_rows, size=n, replace=False))
    records = table.select(columns).take(rows).to_pylist()
    return [{k: _json_value(v) for k, v in r.items()} for r in records]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: a missing value is null
    return value
