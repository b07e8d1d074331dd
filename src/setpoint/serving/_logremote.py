"""The prediction log shared by machines: sealed segments moved to an object store.

Without ``log_uri`` the log is the folder ``logs/`` of the workspace (``_logfiles``).
With it, each process still appends to segments of its own in that local folder and
fsyncs them before answering (an acknowledged record is on the machine's disk), and
seals each segment after at most ``seal_seconds``. Sealed segments are *shipped*:
uploaded whole to ``<log_uri>/<kind>/segments/<segment-id>.seg`` (an object appears
whole or not at all), then deleted locally. A process that opens the log ships
segments that a dead process left (an ``.open`` file nobody locks), so what a killed
replica acknowledged goes out with the replica Ray starts in its place.

The store's layout mirrors the local one::

    <log_uri>/<kind>/segments/<segment-id>.seg
    <log_uri>/<kind>/endpoint=<E>/date=<YYYY-MM-DD>/part-<run-id>.parquet

A compaction here turns every shipped segment of a run into one Parquet part per
endpoint and date, and names the segments a part holds in the part's metadata
(``setpoint.segments``): a reader, and the next compaction, skip a segment's records
that a part already holds, so a compaction that died before deleting its segments
leaves no duplicate. Compactions and rewrites of the store (erasure, retention) take a
lock across machines (PostgreSQL's advisory lock; a file lock on one machine).

Readers read the local folder first, then the store's segments, then its parts, so a
segment shipped or compacted while they read is seen once. A record reaches the store
within about ``seal_seconds`` of being written (plus the upload), which is also how
long a rewrite waits before it rewrites the store: what was acknowledged before it
started is there by then, on every machine whose process is alive and reaches the
store.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from setpoint.errors import ConfigError
from setpoint.serving._logfiles import (
    OPEN_SUFFIX,
    PART_PREFIX,
    PART_SUFFIX,
    SEALED_SUFFIX,
    compaction_lock,
    file_lock,
    fsync_dir,
    kind_dir,
    segment_id,
    segments_dir,
    try_lock,
)
from setpoint.store._remote import (
    Place,
    is_object_store,
    missing_bucket,
    no_bucket,
    talking,
    unusable,
)

# Part metadata: the ids of the segments whose records a part holds, one per line.
SEGMENTS_KEY = b"setpoint.segments"
# How long after a rewrite starts, beyond seal_seconds, it waits for other machines'
# segments to arrive: the writer's seal check (once a second) and the upload.
SHIP_MARGIN_SECONDS = 5.0

Lock = Callable[[str], AbstractContextManager[None]]


@dataclass(frozen=True, eq=False)
class LogLocation:
    """Where a workspace's log lives: the local folder ``root/logs`` always, and the
    store at ``uri`` when one is set (``seal_seconds``: a segment's longest life).

    ``lock(name)`` holds a lock across machines (``Database.lock``); without it, the
    store's compactions and rewrites lock a file in the local folder, which is enough
    on one machine only."""

    root: Path
    uri: str = ""
    seal_seconds: float = 60.0
    lock: Lock | None = None

    def __post_init__(self) -> None:
        if not self.seal_seconds > 0:
            raise ConfigError(
                f"log_seal_seconds must be more than 0 seconds, not {self.seal_seconds}"
            )

    @cached_property
    def remote(self) -> RemoteLog | None:
        """The store the log is shipped to; None when the log stays local."""
        return RemoteLog(self.uri) if self.uri else None

    @contextlib.contextmanager
    def store_lock(self, kind: str) -> Iterator[None]:
        """Held by every compaction and rewrite of ``kind`` in the store."""
        if self.lock is not None:
            with self.lock(f"setpoint.log.{kind}"):
                yield
            return
        folder = kind_dir(self.root, kind)
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(folder / ".store.lock"):
            yield


def as_location(where: Path | str | LogLocation) -> LogLocation:
    """``where`` as a LogLocation: a bare folder is a log without a store."""
    return where if isinstance(where, LogLocation) else LogLocation(Path(where))


class RemoteLog:
    """The store's side of the log: listing, reading and writing its files."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.place = Place(uri, "log_uri", what="prediction log store")
        try:
            fs, base = fsspec.core.url_to_fs(uri)
        except (ValueError, ImportError) as exc:
            raise unusable(self.place, exc) from None
        self.fs: AbstractFileSystem = fs
        self.base = base.rstrip("/")
        self.objects = is_object_store(self.fs)
        self.bucket = self.base.split("/", 1)[0] if self.objects else ""
        if self.objects and not self.bucket:
            raise no_bucket(self.place)

    def __repr__(self) -> str:
        return f"RemoteLog({self.uri!r})"

    # -- paths -----------------------------------------------------------------------

    def kind_path(self, kind: str) -> str:
        return f"{self.base}/{kind}"

    def segment_path(self, kind: str, seg_id: str) -> str:
        return f"{self.base}/{kind}/segments/{seg_id}{SEALED_SUFFIX}"

    def name(self, path: str) -> str:
        """``path`` as a user would write it: with the store's protocol."""
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{path}"

    # -- the store -------------------------------------------------------------------

    def talking(self, *, writing: bool = False) -> AbstractContextManager[None]:
        """Say the store's failures in terms of ``log_uri`` (``_remote.talking``)."""
        return talking(self.place, self.bucket, writing=writing)

    def check(self) -> None:
        """Make sure the store answers: its bucket exists (never created), or its folder
        is made."""
        with self.talking(writing=True):
            if self.objects:
                self.fs.invalidate_cache(self.bucket)
                try:
                    self.fs.info(self.bucket)
                except FileNotFoundError:
                    raise missing_bucket(self.place, self.bucket) from None
            else:
                self.fs.makedirs(self.base, exist_ok=True)

    def _list(self, path: str) -> list[dict[str, Any]]:
        """The entries under ``path`` (none if it does not exist), never from a cache."""
        with self.talking():
            self.fs.invalidate_cache(path)
            try:
                return list(self.fs.ls(path, detail=True))
            except FileNotFoundError:
                return []

    def segments(self, kind: str) -> dict[str, str]:
        """The shipped segments of ``kind``: segment id to path, in id order."""
        found = {}
        for entry in self._list(f"{self.kind_path(kind)}/segments"):
            path = str(entry["name"])
            leaf = path.rsplit("/", 1)[-1]
            if entry.get("type") == "file" and leaf.endswith(SEALED_SUFFIX):
                found[leaf.removesuffix(SEALED_SUFFIX)] = path
        return dict(sorted(found.items()))

    def partitions(
        self, kind: str, endpoint_dir: str | None, first: str, last: str
    ) -> Iterator[tuple[str, str]]:
        """The (``endpoint=…`` folder name, date) partitions dated ``first`` to ``last``
        (``endpoint_dir`` alone, when given)."""
        base = self.kind_path(kind)
        if endpoint_dir is not None:
            endpoints = [endpoint_dir]
        else:
            endpoints = sorted(
                str(e["name"]).rsplit("/", 1)[-1]
                for e in self._list(base)
                if e.get("type") == "directory"
                and str(e["name"]).rsplit("/", 1)[-1].startswith("endpoint=")
            )
        for endpoint in endpoints:
            for entry in sorted(self._list(f"{base}/{endpoint}"), key=lambda e: str(e["name"])):
                leaf = str(entry["name"]).rsplit("/", 1)[-1]
                if entry.get("type") != "directory" or not leaf.startswith("date="):
                    continue
                date = leaf.removeprefix("date=")
                if first <= date <= last:
                    yield endpoint, date

    def parts(self, kind: str, endpoint_dir: str, date: str) -> list[str]:
        """The Parquet parts of one partition, in name order."""
        folder = f"{self.kind_path(kind)}/{endpoint_dir}/date={date}"
        return sorted(
            str(e["name"])
            for e in self._list(folder)
            if e.get("type") == "file"
            and str(e["name"]).rsplit("/", 1)[-1].startswith(PART_PREFIX)
            and str(e["name"]).endswith(PART_SUFFIX)
        )

    def read(self, path: str) -> bytes | None:
        """An object's bytes; None when it is gone."""
        with self.talking():
            try:
                data: bytes = self.fs.cat_file(path)
            except FileNotFoundError:
                return None
        return data

    def read_part(self, path: str) -> pa.Table | None:
        """A part as a table (its metadata kept); None when it is gone."""
        data = self.read(path)
        return None if data is None else pq.read_table(pa.BufferReader(data))

    def part_segments(self, path: str) -> frozenset[str] | None:
        """The ids of the segments a part holds, from its footer alone; None if gone."""
        with self.talking():
            try:
                with self.fs.open(path, "rb") as file:
                    metadata = pq.read_schema(file).metadata or {}
            except FileNotFoundError:
                return None
        return segments_of(path, metadata)

    def write(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path``, seen whole or not at all: one object on an object
        store; elsewhere a hidden temporary file renamed into place."""
        with self.talking(writing=True):
            if self.objects:
                self.fs.pipe_file(path, data)
                return
            folder, leaf = path.rsplit("/", 1)
            self.fs.makedirs(folder, exist_ok=True)
            temp = f"{folder}/.{leaf}.{secrets.token_hex(4)}.tmp"
            self.fs.pipe_file(temp, data)
            try:
                self.fs.mv(temp, path)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.fs.rm(temp)
                raise

    def write_part(self, path: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        self.write(path, sink.getvalue().to_pybytes())

    def delete(self, path: str) -> None:
        with self.talking(), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)


def segments_of(path: str, metadata: dict[bytes, bytes]) -> frozenset[str]:
    """The segment ids a part at ``path`` holds: listed in its metadata, or (a part
    compacted from the local folder) the one in its name."""
    listed = metadata.get(SEGMENTS_KEY)
    if listed is not None:
        return frozenset(listed.decode().split())
    leaf = path.rsplit("/", 1)[-1]
    return frozenset({leaf.removeprefix(PART_PREFIX).removesuffix(PART_SUFFIX)})


def new_part_name() -> str:
    """A part's file name, unique across runs and machines, sorting by time."""
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{PART_PREFIX}{started}-c{uuid.uuid4().hex[:12]}{PART_SUFFIX}"


# ---------------------------------------------------------------------------- shipping


def closed_segments(location: LogLocation, kind: str) -> bool:
    """Whether ``kind`` has segments no writer holds: here (sealed, or a dead process's)
    or in the store. What a compaction has to do."""
    folder = segments_dir(location.root, kind)
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix == SEALED_SUFFIX:
            return True
        if path.suffix == OPEN_SUFFIX:
            held = try_lock(path)
            if held is not None:
                os.close(held)
                return True
    remote = location.remote
    return remote is not None and bool(remote.segments(kind))


def ship(location: LogLocation, kind: str) -> int:
    """Move this machine's closed segments of ``kind`` to the store; how many went.

    A closed segment is a ``.seg`` file or an ``.open`` file no live writer locks (its
    process died). Each is uploaded, then deleted here. Runs under the local folder's
    compaction lock, so a rewrite here (an erasure) never races an upload. Raises
    StoreError when the store fails; what was not shipped stays here and goes next time.
    """
    remote = location.remote
    folder = segments_dir(location.root, kind)
    if remote is None or not folder.is_dir():
        return 0
    shipped = 0
    with compaction_lock(location.root, kind):
        for path in sorted(folder.iterdir()):
            held: int | None = None
            if path.suffix == OPEN_SUFFIX:
                held = try_lock(path)
                if held is None:  # a live writer's
                    continue
            elif path.suffix != SEALED_SUFFIX:
                continue
            try:
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
                if data.strip(b"\0\n"):
                    remote.write(remote.segment_path(kind, segment_id(path)), data)
                    shipped += 1
                path.unlink()
                fsync_dir(folder)
            finally:
                if held is not None:
                    os.close(held)
    return shipped


__all__ = ["LogLocation", "RemoteLog", "as_location", "closed_segments", "ship"]
