"""Ground truth sent back after the fact: ``POST /v1/endpoints/{endpoint}/feedback``.

A label names the prediction it belongs to by request id (and, for a request of
several rows, the row). It is stored in the feedback log, durably, before the
answer goes out; monitoring joins it to the prediction log later. A label may
arrive before or after its prediction is logged, so nothing here looks it up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from setpoint.errors import MalformedRequestError

_SHAPE = (
    'send {"request_id": "...", "label": value} (optionally "row" for a request of several '
    'rows), or {"feedback": [those, ...]}'
)
MAX_ITEMS = 10_000


def decode(body: bytes, endpoint: str, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Feedback records from a request body, ready for the feedback log, stamped
    ``now`` (the server's clock; default: the system's UTC time)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"the body is not valid JSON ({exc}); {_SHAPE}") from None
    if isinstance(data, dict) and set(data) == {"feedback"}:
        items = data["feedback"]
        if not isinstance(items, list) or not items:
            raise MalformedRequestError(f"feedback must be a non-empty list; {_SHAPE}")
        if len(items) > MAX_ITEMS:
            raise MalformedRequestError(f"at most {MAX_ITEMS} labels per request; split them")
    else:
        items = [data]
    if now is None:
        now = datetime.now(UTC)
    records, problems = [], []
    for index, item in enumerate(items):
        problem = _problem(item)
        if problem:
            problems.append(f"item {index}: {problem}")
            continue
        records.append(
            {
                "request_id": item["request_id"],
                "row": int(item.get("row", 0)),
                "ts": now,
                "endpoint": endpoint,
                "label": item["label"],
            }
        )
    if problems:
        raise MalformedRequestError("; ".join(problems[:20]) + f"; {_SHAPE}", details=problems)
    return records


def _problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "not an object"
    unknown = sorted(set(item) - {"request_id", "label", "row"})
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 200:
        return "request_id must be text of 1 to 200 characters"
    if "label" not in item:
        return "label is missing"
    if isinstance(item["label"], dict | list):
        return "label must be a single value (text, number, boolean or null)"
    row = item.get("row", 0)
    if isinstance(row, float) and row.is_integer():  # 3.0 is a whole number in JSON Schema
        row = int(row)
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < 2**31:
        return "row must be a whole number from 0"
    return None
