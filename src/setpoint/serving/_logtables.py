"""Reading the prediction log, and compacting its segments into partitioned Parquet."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setpoint._names import check_name
from setpoint.serving._logfiles import (
    OPEN_SUFFIX,
    PART_PREFIX,
    PART_SUFFIX,
    SEALED_SUFFIX,
    endpoint_folder,
    endpoint_of,
    fsync_dir,
    io_error,
    kind_dir,
    make_dirs_durably,
    part_path,
    partition_dir,
    read_segment,
    segment_id,
    segments_dir,
    try_lock,
    write_durably,
)
from setpoint.serving._logformat import LogSchema, empty_table, parse_lines, schema_for, to_table
from setpoint.serving._logremote import (
    SEGMENTS_KEY,
    LogLocation,
    RemoteLog,
    as_location,
    new_part_name,
    segments_of,
    ship,
)

_TS = pa.timestamp("us", tz="UTC")
# A compaction of the store reads at most about this many bytes of segments at once.
_STORE_BATCH_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class CompactionResult:
    """What one :func:`compact` run did."""

    segments: int  # segments turned into Parquet and deleted
    records: int  # records they held
    parts: int  # Parquet files written
    live: int  # segments skipped because a live writer still holds them


def _dates(table: pa.Table) -> pa.Array:
    """The UTC date of every row, as YYYY-MM-DD."""
    ts = table.column("ts").combine_chunks()
    return ts.cast(pa.timestamp("us")).cast(pa.date32()).cast(pa.string())


def _partitions(table: pa.Table) -> list[tuple[str, str, pa.Table]]:
    """The table split by (endpoint, UTC date)."""
    dates = _dates(table)
    endpoints = table.column("endpoint").combine_chunks()
    keys = pa.table({"endpoint": endpoints, "date": dates})
    pairs = keys.group_by(["endpoint", "date"]).aggregate([]).to_pylist()
    return [
        (
            pair["endpoint"],
            pair["date"],
            table.filter(
                pc.and_(pc.equal(endpoints, pair["endpoint"]), pc.equal(dates, pair["date"]))
            ),
        )
        for pair in sorted(pairs, key=lambda p: (p["endpoint"], p["date"]))
    ]


def compact(root: Path | LogLocation, *, kind: str = "predictions") -> CompactionResult:
    """Turn every closed segment into Parquet files and delete it.

    A closed segment is a ``.seg`` file, or an ``.open`` file whose writer died (no lock
    held on it). Each becomes one ``part-<segment-id>.parquet`` (zstd) per endpoint and
    UTC date it holds, written durably, before the segment is deleted. Crash-safe and
    idempotent: a crash leaves the segment in place, a re-run rewrites the same part
    names, and :func:`read_log` shows a record once while both exist. One compaction
    runs at a time per kind (an flock on ``logs/<kind>/.compact.lock``).

    With a store (``LogLocation.uri``), this machine's closed segments are shipped
    first, and the store's segments are compacted there (``_logremote``): one part per
    endpoint and date per batch of segments, under the store's lock.
    """
    check_name("log kind", kind)
    location = as_location(root)
    if location.remote is not None:
        return _compact_store(location, location.remote, kind)
    root = location.root
    schema = schema_for(kind)
    folder = segments_dir(Path(root), kind)
    if not folder.is_dir():
        return CompactionResult(0, 0, 0, 0)
    segments = records = parts = live = 0
    lock_path = kind_dir(Path(root), kind) / ".compact.lock"
    path = lock_path
    try:
        lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for path in sorted(folder.iterdir()):
                held: int | None = None
                if path.suffix == OPEN_SUFFIX:
                    held = try_lock(path)
                    if held is None:
                        live += path.exists()
                        continue
                elif path.suffix != SEALED_SUFFIX:
                    continue
                try:
                    written = _compact_segment(Path(root), schema, path)
                finally:
                    if held is not None:
                        os.close(held)
                if written is not None:
                    segments += 1
                    records += written[0]
                    parts += written[1]
        finally:
            os.close(lock)
    except OSError as exc:
        raise io_error("compact", path, exc) from exc
    return CompactionResult(segments, records, parts, live)


def _compact_segment(root: Path, schema: LogSchema, path: Path) -> tuple[int, int] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    table = to_table(parse_lines(data, path), schema)
    partitions = _partitions(table) if table.num_rows else []
    for endpoint, date, rows in partitions:
        directory = partition_dir(root, schema.kind, endpoint, date)
        make_dirs_durably(directory)

        def write(temp: Path, rows: pa.Table = rows) -> None:
            pq.write_table(rows, temp, compression="zstd")

        write_durably(part_path(directory, segment_id(path)), write)
    path.unlink()
    fsync_dir(path.parent)
    return table.num_rows, len(partitions)


def _compact_store(location: LogLocation, remote: RemoteLog, kind: str) -> CompactionResult:
    schema = schema_for(kind)
    ship(location, kind)
    segments = records = parts = 0
    with location.store_lock(kind):
        batch: list[tuple[str, str, bytes]] = []
        size = 0
        listed = list(remote.segments(kind).items())
        for number, (seg_id, path) in enumerate(listed, start=1):
            data = remote.read(path)
            if data is not None:
                batch.append((seg_id, path, data))
                size += len(data)
            if batch and (size >= _STORE_BATCH_BYTES or number == len(listed)):
                tables = _store_batch(remote, schema, batch)
                records += sum(table.num_rows for _, _, table in tables)
                parts += _store_parts_written(remote, schema, tables)
                segments += len(batch)
                for _, done, _ in batch:
                    remote.delete(done)
                batch, size = [], 0
    return CompactionResult(segments, records, parts, 0)


def _store_batch(
    remote: RemoteLog, schema: LogSchema, batch: list[tuple[str, str, bytes]]
) -> list[tuple[str, str, pa.Table]]:
    return [
        (seg_id, path, to_table(parse_lines(data, remote.name(path)), schema))
        for seg_id, path, data in batch
    ]


def _store_parts_written(
    remote: RemoteLog, schema: LogSchema, batch: list[tuple[str, str, pa.Table]]
) -> int:
    """Write one part per endpoint and date of a batch of the store's segments,
    without the records a part already holds; how many parts were written."""
    pieces: dict[tuple[str, str], list[tuple[str, pa.Table]]] = {}
    for seg_id, _, table in batch:
        for endpoint, date, rows in _partitions(table) if table.num_rows else []:
            pieces.setdefault((endpoint, date), []).append((seg_id, rows))
    fixed = [name for name, _ in schema.fields]
    written = 0
    for (endpoint, date), found in sorted(pieces.items()):
        folder = endpoint_folder(endpoint)
        held: set[str] = set()
        for part in remote.parts(schema.kind, folder, date):
            held |= remote.part_segments(part) or set()
        found = [(seg_id, rows) for seg_id, rows in found if seg_id not in held]
        if not found:
            continue
        table = pa.concat_tables([rows for _, rows in found], promote_options="default")
        table = table.select(fixed + sorted(set(table.column_names) - set(fixed)))
        ids = "\n".join(seg_id for seg_id, _ in found).encode()
        table = table.replace_schema_metadata({SEGMENTS_KEY: ids})
        path = f"{remote.kind_path(schema.kind)}/{folder}/date={date}/{new_part_name()}"
        remote.write_part(path, table)
        written += 1
    return written


# ---------------------------------------------------------------------------- reading


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _filtered(
    table: pa.Table,
    endpoint: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> pa.Table:
    mask = None
    conditions = []
    if endpoint is not None:
        conditions.append(pc.equal(table.column("endpoint"), endpoint))
    if since is not None:
        conditions.append(pc.greater_equal(table.column("ts"), pa.scalar(since, _TS)))
    if until is not None:
        conditions.append(pc.less(table.column("ts"), pa.scalar(until, _TS)))
    for condition in conditions:
        mask = condition if mask is None else pc.and_(mask, condition)
    return table if mask is None else table.filter(mask)


def read_log(
    root: Path | LogLocation,
    *,
    kind: str = "predictions",
    endpoint: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> pa.Table:
    """Every stored record of ``kind`` (compacted or not), oldest first.

    ``since`` is inclusive, ``until`` exclusive; naive datetimes are UTC. The fixed
    fields are typed columns; ``inputs``, ``outputs``, ``label`` and fields the kind
    does not define are JSON text (``json.loads`` each value; null when absent). A
    record whose write a crash cut short was never acknowledged and is skipped.

    With a store (``LogLocation.uri``), this machine's segments, the store's segments
    and the store's parts, read in that order: a segment shipped or compacted meanwhile
    is read once.
    """
    check_name("log kind", kind)
    schema = schema_for(kind)
    location = as_location(root)
    root = location.root
    since, until = _utc(since), _utc(until)

    # Segments first, Parts second: compaction writes a segment's parts before it
    # deletes the segment, so a segment that vanishes while we read is in the parts.
    raw: list[tuple[str, pa.Table]] = []
    folder = segments_dir(root, kind)
    try:
        names = sorted(folder.iterdir()) if folder.is_dir() else []
        for path in names:
            if path.suffix not in (OPEN_SUFFIX, SEALED_SUFFIX):
                continue
            data = read_segment(path)
            if data:
                rows = _filtered(to_table(parse_lines(data, path), schema), endpoint, since, until)
                if rows.num_rows:
                    raw.append((segment_id(path), rows))
        compacted, present = _read_parts(root, kind, endpoint, since, until)
    except OSError as exc:
        raise io_error("read", folder.parent, exc) from exc
    if location.remote is not None:
        raw = _read_store(location.remote, schema, raw, endpoint, since, until)
        _read_store_parts(location.remote, kind, endpoint, since, until, compacted, present)

    tables = [_filtered(t, None, since, until) for t in compacted]
    for seg_id, rows in raw:
        # Records already in a part of this segment: a compaction is in progress or
        # crashed before deleting the segment.
        if seg_id in present.segments:
            keys = zip(rows.column("endpoint").to_pylist(), _dates(rows).to_pylist(), strict=True)
            keep = [(e, d, seg_id) not in present.parts for e, d in keys]
            rows = rows.filter(pa.array(keep, pa.bool_()))
        tables.append(rows)
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return empty_table(schema)
    table = pa.concat_tables(tables, promote_options="default")
    fixed = [name for name, _ in schema.fields]
    extras = sorted(set(table.column_names) - set(fixed))
    table = table.select(fixed + extras)
    return table.take(pc.sort_indices(table, [("ts", "ascending")]))


def _read_store(
    remote: RemoteLog,
    schema: LogSchema,
    local: list[tuple[str, pa.Table]],
    endpoint: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> list[tuple[str, pa.Table]]:
    """The store's segments added to this machine's (``local``, read before): a segment
    in both (shipped while we read) counts once."""
    shipped = remote.segments(schema.kind)
    raw = [(seg_id, rows) for seg_id, rows in local if seg_id not in shipped]
    for seg_id, path in shipped.items():
        data = remote.read(path)
        if data:
            table = to_table(parse_lines(data, remote.name(path)), schema)
            rows = _filtered(table, endpoint, since, until)
            if rows.num_rows:
                raw.append((seg_id, rows))
    return raw


def _read_store_parts(
    remote: RemoteLog,
    kind: str,
    endpoint: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    tables: list[pa.Table],
    present: _Present,
) -> None:
    """Add the store's parts to ``tables``, and the segments they hold to ``present``."""
    first = since.date().isoformat() if since else ""
    last = until.date().isoformat() if until else "9999-12-31"
    folder = endpoint_folder(endpoint) if endpoint is not None else None
    for endpoint_dir, date in remote.partitions(kind, folder, first, last):
        name = endpoint_of(Path(endpoint_dir))
        for path in remote.parts(kind, endpoint_dir, date):
            table = remote.read_part(path)
            if table is None:
                continue
            for seg_id in segments_of(path, table.schema.metadata or {}):
                present.parts.add((name, date, seg_id))
                present.segments.add(seg_id)
            tables.append(table.replace_schema_metadata(None))


@dataclass
class _Present:
    parts: set[tuple[str, str, str]]  # (endpoint, date, segment id)
    segments: set[str]


def _read_parts(
    root: Path,
    kind: str,
    endpoint: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> tuple[list[pa.Table], _Present]:
    present = _Present(set(), set())
    tables: list[pa.Table] = []
    base = kind_dir(root, kind)
    if endpoint is not None:
        endpoint_dirs = [partition_dir(root, kind, endpoint, "x").parent]
    else:
        endpoint_dirs = sorted(base.glob("endpoint=*")) if base.is_dir() else []
    first = since.date().isoformat() if since else ""
    last = until.date().isoformat() if until else "9999-12-31"
    for endpoint_dir in endpoint_dirs:
        if not endpoint_dir.is_dir():
            continue
        name = endpoint_of(endpoint_dir)
        for date_dir in sorted(endpoint_dir.glob("date=*")):
            date = date_dir.name.removeprefix("date=")
            if not first <= date <= last:
                continue
            for part in sorted(date_dir.glob(f"{PART_PREFIX}*{PART_SUFFIX}")):
                seg_id = part.name.removeprefix(PART_PREFIX).removesuffix(PART_SUFFIX)
                tables.append(pq.read_table(part))
                present.parts.add((name, date, seg_id))
                present.segments.add(seg_id)
    return tables, present
