"""A monitor's windows as time series: their digests, never their full results.

The dashboard draws up to a year of windows per chart (8,760 hourly ones); reading
their 17 KB results documents would cost seconds a page, so a series reads the
``digest`` column only (``digest.py``). A window stored without one (by a writer
older than migration 0012 running beside a newer one) is digested from its results
as it is read, which costs only for those rows.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import orjson
import sqlalchemy as sa

from setpoint.monitoring.digest import digest
from setpoint.monitoring.window import aware
from setpoint.store.schema import monitor_windows

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_BATCH = 500


class WindowDigest(NamedTuple):
    """One window of a series: its span, its answered rows and its digest. A named
    tuple, not a dataclass: a year of hourly windows is 8,760 of them, and a tuple is
    made several times faster."""

    start: datetime
    end: datetime
    n_rows: int
    digest: dict[str, Any]


def read_series(
    conn: Connection,
    monitor_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[WindowDigest]:
    """The windows of monitor ``monitor_id`` that start in [``since``, ``until``),
    oldest first (either bound may be left open)."""
    w = monitor_windows.c
    # The digests are read as text and parsed by orjson: a year of hourly windows is
    # 8,760 documents, and the standard library's parser takes twice as long.
    text = sa.cast(w.digest, sa.Text).label("digest")
    query = sa.select(w.id, w.start, w.end, w.n_rows, text).where(w.monitor_id == monitor_id)
    if since is not None:
        query = query.where(w.start >= since)
    if until is not None:
        query = query.where(w.start < until)
    rows = conn.execute(query.order_by(w.start)).all()
    with paused_gc():
        # SQL NULL, or JSON null where a writer stored None through the JSON type.
        digests = {r.id: None if r.digest is None else orjson.loads(r.digest) for r in rows}
    missing = [key for key, found in digests.items() if found is None]
    # The safety net: digest what an older writer left without one, a batch at a time
    # (SQLite bounds the parameters of one statement).
    for i in range(0, len(missing), _BATCH):
        batch = missing[i : i + _BATCH]
        found = conn.execute(sa.select(w.id, w.n_rows, w.results).where(w.id.in_(batch)))
        digests.update({r.id: digest(r.results or {}, r.n_rows) for r in found})
    with paused_gc():
        return [
            WindowDigest(
                aware(r.start), aware(r.end), r.n_rows, cast(dict[str, Any], digests[r.id])
            )
            for r in rows
        ]


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a year of digests becomes objects: the tens of
    thousands of dicts they are set off collection after collection, each walking the
    objects alive, which doubled the time to read them (bench/ui.py: 110 ms to parse
    8,760 digests with it, 49 ms without). The objects hold no cycles; reference
    counting frees them as always, and the collector runs again right after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
