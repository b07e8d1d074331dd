"""Rewriting the prediction log without some of its records: what erasure and retention use.

:func:`rewrite_log` removes the records a predicate selects from every file of one kind
of log, and never edits a file in place: each file that loses records is written again
to a temporary file, fsynced, renamed over the old one and its folder fsynced (as
compaction writes its parts), and a file left without records is deleted. A crash
leaves each file either as it was or as it should be, so the log always reads; running
the rewrite again finishes the work.

Segments are rewritten before Parquet parts. While a crashed compaction leaves a
segment beside some of its parts, :func:`read_log` shows the part's records and hides
the segment's for that partition; rewriting segments first keeps the segment's records
a subset of the part's after any crash, so a part deleted because it emptied never
uncovers a record it hid.

A segment a live writer still appends to (an ``.open`` file whose flock is held) cannot
be rewritten under it. If it holds records to remove, the rewrite lists its id in
``logs/<kind>/.seal-request``; each writer looks at that file about once a second (busy
or idle), seals a listed segment (``.open`` -> ``.seg``) and goes on in a new one. The
rewrite waits up to ``seal_timeout`` seconds for that, then rewrites the sealed segment
like any other. A segment whose writer did not answer in time (its process stopped, or
stalled on a full disk) is left as it is and
reported as skipped; run the rewrite again. Records appended after the rewrite
looked at a writer's segments are in a new segment and are not looked at.

One rewrite or compaction of a kind runs at a time (they share ``.compact.lock``);
readers and writers go on meanwhile. Temporary files a crash left in the log's folders
(they may hold records) are deleted.

With a store (``LogLocation.uri``, see ``_logremote``), the local folder is rewritten
as above and its closed segments are shipped; then, so that segments other machines
still hold reach the store, the rewrite waits until ``seal_seconds`` (and a margin)
have passed since it started, unless ``before`` is older than that or ``settle`` is
off; then it rewrites the store's segments and parts under the store's lock. An
object is replaced whole by one write. A machine whose process died, or that cannot
reach the store, keeps its segments until a process there ships them: records in
those are not reached.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setpoint._names import check_name
from setpoint.errors import UsageError
from setpoint.serving._logfiles import (
    OPEN_SUFFIX,
    PART_PREFIX,
    PART_SUFFIX,
    SEAL_REQUEST,
    SEALED_SUFFIX,
    compaction_lock,
    endpoint_folder,
    fsync_dir,
    io_error,
    kind_dir,
    partition_dir,
    read_segment,
    segment_id,
    segments_dir,
    try_lock,
    write_durably,
)
from setpoint.serving._logformat import LogSchema, schema_for, split_lines, to_table
from setpoint.serving._logremote import (
    SHIP_MARGIN_SECONDS,
    LogLocation,
    RemoteLog,
    as_location,
    ship,
)

Drop = Callable[[pa.Table], "pa.Array | pa.ChunkedArray"]
"""Given a table of one file's records, a boolean mask of the rows to remove."""

_TS = pa.timestamp("us", tz="UTC")
_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class RewrittenFile:
    """One file that loses records: its path under the workspace, and what happens."""

    path: str
    removed: int  # records removed (or that would be, in a dry run)
    left: int  # records it keeps
    action: str  # "rewritten", "deleted" (nothing left), or "skipped" (a live writer's)


@dataclass(frozen=True)
class RewriteResult:
    """What one :func:`rewrite_log` did (or, in a dry run, would do)."""

    kind: str
    rows_removed: int = 0  # records removed from the log
    files_rewritten: int = 0  # files written again without some records
    files_deleted: int = 0  # files that held only records to remove
    files_skipped: int = 0  # live segments whose writer did not seal them in time
    rows_skipped: int = 0  # records to remove that are still in those segments
    dry_run: bool = False
    files: tuple[RewrittenFile, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "rows_removed": self.rows_removed,
            "files_rewritten": self.files_rewritten,
            "files_deleted": self.files_deleted,
            "files_skipped": self.files_skipped,
            "rows_skipped": self.rows_skipped,
            "dry_run": self.dry_run,
        }


def rewrite_log(
    root: Path | LogLocation,
    kind: str,
    *,
    endpoint: str | None = None,
    drop: Drop,
    before: dt.datetime | None = None,
    dry_run: bool = False,
    seal_timeout: float = 10.0,
    settle: bool = True,
    progress: Callable[[str], None] | None = None,
) -> RewriteResult:
    """Remove the records ``drop`` selects from every segment and Parquet part of ``kind``.

    ``drop(table)`` gets the records of one file as a table with the columns
    :func:`read_log` gives (typed fixed fields, JSON text for the rest, extra fields
    only where the file has them; records of other endpoints too) and returns a
    boolean mask, true for a row to remove (null
    keeps it). It must decide each row by the row's own values, since a record may be
    in a segment and a part at once after a crashed compaction. ``endpoint`` removes
    that endpoint's records only and skips the other endpoints' parts; ``before`` (a
    promise about ``drop``: it selects nothing at or after this time) keeps every
    record from then on and skips the parts of later dates unread, so retention does
    not read the whole log. ``dry_run`` changes nothing and counts what would go,
    live segments included.

    Records of a segment are kept byte for byte (their JSON lines as written); a
    part keeps its other rows' values. Returns what was done; a failure to read or
    write raises StoreError, and everything done before it stays done.

    With a store, ``settle`` waits for other machines' segments (see the module's
    docstring; a dry run does not wait) and ``progress`` hears about that wait.
    """
    check_name("log kind", kind)
    if endpoint is not None:
        check_name("endpoint", endpoint)
    if seal_timeout < 0:
        raise UsageError(f"seal_timeout must be 0 or more seconds, not {seal_timeout}")
    location = as_location(root)
    root = location.root
    started = time.monotonic()
    rewrite = _Rewrite(root, schema_for(kind), endpoint, drop, _utc(before), dry_run)
    path = kind_dir(root, kind)
    if path.is_dir():
        try:
            with compaction_lock(root, kind):
                rewrite.remove_temporary_files()
                rewrite.segments(seal_timeout)
                rewrite.parts()
        except OSError as exc:
            raise io_error("rewrite", getattr(exc, "filename", None) or path, exc) from exc
    remote = location.remote
    if remote is None:
        return rewrite.result()
    if not dry_run:
        ship(location, kind)
        if settle:
            _settle(location, started, rewrite.before, progress)
    store = _StoreRewrite(remote, rewrite)
    with location.store_lock(kind):
        store.segments()
        store.parts()
    return store.result()


def _settle(
    location: LogLocation,
    started: float,
    before: dt.datetime | None,
    progress: Callable[[str], None] | None,
) -> None:
    """Wait until segments other machines held when the rewrite started are shipped
    (unless every record to go is older than that anyway)."""
    settled = location.seal_seconds + SHIP_MARGIN_SECONDS
    now = dt.datetime.now(dt.UTC)
    if before is not None and before <= now - dt.timedelta(seconds=settled):
        return
    wait = started + settled - time.monotonic()
    if wait <= 0:
        return
    if progress is not None:
        progress(f"waiting {wait:.0f} s for other machines' log segments to reach {location.uri}")
    time.sleep(wait)


class _Rewrite:
    """One rewrite of one kind, under its compaction lock."""

    def __init__(
        self,
        root: Path,
        schema: LogSchema,
        endpoint: str | None,
        drop: Drop,
        before: dt.datetime | None,
        dry_run: bool,
    ) -> None:
        self.root = root
        self.schema = schema
        self.endpoint = endpoint
        self.drop = drop
        self.before = before
        self.dry_run = dry_run
        self.files: list[RewrittenFile] = []

    # -- the predicate ---------------------------------------------------------------------

    def mask(self, table: pa.Table) -> pa.Array:
        """Which rows go: ``drop``'s answer, within the endpoint and before ``before``."""
        if table.num_rows == 0:
            return pa.array([], pa.bool_())
        answer = self.drop(table)
        if isinstance(answer, pa.ChunkedArray):
            answer = answer.combine_chunks()
        if not isinstance(answer, pa.Array) or not pa.types.is_boolean(answer.type):
            raise UsageError(
                "drop(table) must return a boolean Arrow array (one value per row), "
                f"not {type(answer).__name__}"
            )
        if len(answer) != table.num_rows:
            raise UsageError(
                f"drop(table) returned {len(answer)} values for a table of {table.num_rows} rows"
            )
        mask = answer.fill_null(False)
        if self.endpoint is not None:
            mask = pc.and_(mask, pc.equal(table.column("endpoint"), self.endpoint).fill_null(False))
        if self.before is not None:
            mask = pc.and_(mask, pc.less(table.column("ts"), pa.scalar(self.before, _TS)))
        if isinstance(mask, pa.ChunkedArray):
            mask = mask.combine_chunks()
        return mask

    # -- segments --------------------------------------------------------------------------

    def segments(self, seal_timeout: float) -> None:
        folder = segments_dir(self.root, self.schema.kind)
        if not folder.is_dir():
            return
        live: list[Path] = []
        for path in sorted(folder.iterdir()):
            if path.suffix not in (OPEN_SUFFIX, SEALED_SUFFIX):
                continue
            held: int | None = None
            if path.suffix == OPEN_SUFFIX:
                held = try_lock(path)
                if held is None:  # a live writer's, or sealed meanwhile (.seg, closed)
                    if self._count(path):
                        live.append(path)
                    continue
            try:
                self._segment(path)
            finally:
                if held is not None:
                    os.close(held)
        if not live:
            return
        if self.dry_run:
            for path in live:
                self._segment(path)  # read only: counted as if sealed first
            return
        for path in self._seal(folder, live, seal_timeout):
            self._segment(path)

    def _count(self, path: Path) -> int:
        """How many records of a segment are to go (0 when it vanished)."""
        data = read_segment(path)  # follows a seal from .open to .seg
        lines = split_lines(data, path) if data else []
        if not lines:
            return 0
        table = to_table([record for _, record in lines], self.schema)
        return int(pc.sum(self.mask(table)).as_py() or 0)

    def _seal(self, folder: Path, live: list[Path], timeout: float) -> list[Path]:
        """Ask the writers of ``live`` segments to seal them; the segments now closed
        (sealed, or their writer died). Those still open are recorded as skipped."""
        request = kind_dir(self.root, self.schema.kind) / SEAL_REQUEST
        ids = sorted(segment_id(path) for path in live)
        write_durably(request, lambda temp: _write_lines(temp, [i.encode() for i in ids]))
        closed: list[Path] = []
        waiting = list(live)
        deadline = time.monotonic() + timeout
        try:
            while waiting:
                still: list[Path] = []
                for path in waiting:
                    current = _current(path)
                    if current is None:
                        continue  # gone (no writer deletes a segment): nothing to remove
                    if current.suffix == SEALED_SUFFIX:
                        closed.append(current)
                        continue
                    held = try_lock(current)
                    if held is None:  # still written to (or sealed this instant)
                        still.append(path)
                    else:  # its writer died meanwhile: closed too
                        os.close(held)
                        closed.append(current)
                waiting = still
                if not waiting or time.monotonic() >= deadline:
                    break
                time.sleep(_POLL_SECONDS)
        finally:
            request.unlink(missing_ok=True)
        for path in waiting:
            count = self._count(path)
            self.files.append(RewrittenFile(self._relative(path), count, -1, "skipped"))
        return closed

    def _segment(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        removed, keep = self.kept_lines(split_lines(data, path))
        if removed:
            self._replace(path, removed, len(keep), lambda temp: _write_lines(temp, keep))

    def kept_lines(self, lines: list[tuple[bytes, dict[str, Any]]]) -> tuple[int, list[bytes]]:
        """How many of a segment's records go, and the lines of those that stay."""
        if not lines:
            return 0, []
        mask = self.mask(to_table([record for _, record in lines], self.schema))
        removed = int(pc.sum(mask).as_py() or 0)
        if not removed:
            return 0, []
        keep = [line for (line, _), gone in zip(lines, mask.to_pylist(), strict=True) if not gone]
        return removed, keep

    # -- parts -----------------------------------------------------------------------------

    def parts(self) -> None:
        base = kind_dir(self.root, self.schema.kind)
        if self.endpoint is not None:
            endpoint_dirs = [partition_dir(self.root, self.schema.kind, self.endpoint, "x").parent]
        else:
            endpoint_dirs = sorted(base.glob("endpoint=*"))
        last = self.before.date().isoformat() if self.before is not None else None
        for endpoint_dir in endpoint_dirs:
            if not endpoint_dir.is_dir():
                continue
            for date_dir in sorted(endpoint_dir.glob("date=*")):
                if last is not None and date_dir.name.removeprefix("date=") > last:
                    continue
                for part in sorted(date_dir.glob(f"{PART_PREFIX}*{PART_SUFFIX}")):
                    self._part(part)
                if not self.dry_run:
                    with contextlib.suppress(OSError):  # not empty: parts remain
                        date_dir.rmdir()
            if not self.dry_run:
                with contextlib.suppress(OSError):
                    endpoint_dir.rmdir()

    def _part(self, path: Path) -> None:
        table = pq.read_table(path)
        mask = self.mask(table)
        removed = int(pc.sum(mask).as_py() or 0)
        if not removed:
            return
        kept = table.filter(pc.invert(mask))

        def write(temp: Path) -> None:
            pq.write_table(kept, temp, compression="zstd")

        self._replace(path, removed, kept.num_rows, write)

    # -- files -----------------------------------------------------------------------------

    def _replace(self, path: Path, removed: int, left: int, write: Callable[[Path], None]) -> None:
        """Write ``path`` again through ``write``, or delete it when nothing is left."""
        action = "rewritten" if left else "deleted"
        self.files.append(RewrittenFile(self._relative(path), removed, left, action))
        if self.dry_run:
            return
        if left:
            write_durably(path, write)
        else:
            path.unlink()
            fsync_dir(path.parent)

    def remove_temporary_files(self) -> None:
        """Temporary files a crashed compaction or rewrite left (under the lock, no
        other is being written): they may hold records that are to go."""
        if self.dry_run:
            return
        base = kind_dir(self.root, self.schema.kind)
        for temp in base.rglob(".*.tmp"):
            temp.unlink(missing_ok=True)

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def result(self) -> RewriteResult:
        done = [f for f in self.files if f.action != "skipped"]
        skipped = [f for f in self.files if f.action == "skipped"]
        return RewriteResult(
            kind=self.schema.kind,
            rows_removed=sum(f.removed for f in done),
            files_rewritten=sum(f.action == "rewritten" for f in done),
            files_deleted=sum(f.action == "deleted" for f in done),
            files_skipped=len(skipped),
            rows_skipped=sum(f.removed for f in skipped),
            dry_run=self.dry_run,
            files=tuple(self.files),
        )


class _StoreRewrite(_Rewrite):
    """The store's side of a rewrite (its lock held), adding to a local one's files."""

    def __init__(self, remote: RemoteLog, local: _Rewrite) -> None:
        super().__init__(
            local.root, local.schema, local.endpoint, local.drop, local.before, local.dry_run
        )
        self.files = local.files
        self.remote = remote

    def segments(self, seal_timeout: float = 0.0) -> None:
        for path in self.remote.segments(self.schema.kind).values():
            data = self.remote.read(path)
            removed, keep = self.kept_lines(
                split_lines(data, self.remote.name(path)) if data else []
            )
            if removed:
                self._store_replace(path, removed, len(keep), b"\n".join(keep) + b"\n")

    def parts(self) -> None:
        last = self.before.date().isoformat() if self.before is not None else "9999-12-31"
        folder = endpoint_folder(self.endpoint) if self.endpoint is not None else None
        for endpoint_dir, date in self.remote.partitions(self.schema.kind, folder, "", last):
            for path in self.remote.parts(self.schema.kind, endpoint_dir, date):
                table = self.remote.read_part(path)
                if table is None:
                    continue
                mask = self.mask(table)
                removed = int(pc.sum(mask).as_py() or 0)
                if not removed:
                    continue
                kept = table.filter(pc.invert(mask))  # its metadata (segments held) too
                self._store_replace(path, removed, kept.num_rows, kept)

    def _store_replace(self, path: str, removed: int, left: int, content: bytes | pa.Table) -> None:
        """Write the object at ``path`` again with ``content`` (a segment's lines or a
        part's table), or delete it when nothing is left."""
        action = "rewritten" if left else "deleted"
        self.files.append(RewrittenFile(self.remote.name(path), removed, left, action))
        if self.dry_run:
            return
        if not left:
            self.remote.delete(path)
        elif isinstance(content, pa.Table):
            self.remote.write_part(path, content)
        else:
            self.remote.write(path, content)


def _current(path: Path) -> Path | None:
    """Where the segment opened as ``path`` is now: still ``.open``, or sealed to ``.seg``."""
    if path.exists():
        return path
    sealed = path.with_suffix(SEALED_SUFFIX)
    return sealed if sealed.exists() else None


def _write_lines(temp: Path, lines: list[bytes]) -> None:
    with open(temp, "wb") as out:
        out.write(b"\n".join(lines) + b"\n")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


__all__ = ["Drop", "RewriteResult", "RewrittenFile", "rewrite_log"]
