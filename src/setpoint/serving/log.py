"""The prediction log: every answered prediction, durable before the caller is answered.

:class:`RecordLog` appends records as JSON lines to segment files of its own. In the
default durable mode, ``append`` returns only once the records are written and
fsynced, so an acknowledged record survives SIGKILL and power loss. Concurrent callers
share that cost by group commit. A caller that finds the log idle writes and fsyncs
its records itself (no hand-off: the lowest latency at light load). Callers arriving
while a group is being written queue up; when it is done, the log's writer thread
takes everything queued and commits it as the next group with one ``write`` and one
fsync, and keeps doing so while groups keep queuing, so the disk never waits for a
caller's thread to be scheduled. Each waiting caller is woken alone once its group is
durable. ``append_async`` queues the same way and is answered on its event loop (one
wake-up per loop and group). With ``durable=False`` appends only queue: the writer
thread writes and fsyncs at least every ``flush_interval`` seconds, and a crash loses
the records of that window.

:func:`compact` turns closed segments into Parquet partitioned by endpoint and date,
and :func:`read_log` reads both, each record once. :func:`rewrite_log` removes the
records a predicate selects from every file (erasure, retention). See ``_logfiles`` for
the layout.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import copy
import errno
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from setpoint._names import check_name
from setpoint.errors import LogUnavailableError, StoreError, UsageError
from setpoint.serving._logfiles import (
    SegmentFile,
    io_error,
    kind_dir,
    make_dirs_durably,
    requested_seals,
    segment_id,
    segments_dir,
)
from setpoint.serving._logformat import encode_records, schema_for
from setpoint.serving._logremote import LogLocation, as_location, ship
from setpoint.serving._logrewrite import RewriteResult, rewrite_log
from setpoint.serving._logtables import CompactionResult, compact, read_log

__all__ = [
    "CompactionResult",
    "LogLocation",
    "LogStats",
    "RecordLog",
    "RewriteResult",
    "compact",
    "read_log",
    "rewrite_log",
]

logger = logging.getLogger("setpoint.serving")

MiB = 1024 * 1024
# After a failed write or fsync, appends are refused (LogUnavailableError, a 503 with
# Retry-After) for this long, doubling on each failed retry up to the maximum: a full
# disk then costs one write attempt per backoff, not one (and a new file) per request.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
# In async mode a writer is woken early once this much is queued, and appends wait
# (backpressure) while eight times as much is.
_EARLY_FLUSH_BYTES = 1 * MiB
# How often a writer looks whether a rewrite asked it to seal its segment: by the
# leader before a write, and by the writer thread while the log is idle.
SEAL_CHECK_SECONDS = 1.0


_UNWRITABLE = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "the folder is not writable",
    errno.EPERM: "the folder is not writable",
    errno.EROFS: "the file system is read-only",
}


@dataclass
class LogStats:
    """Counters of one RecordLog (read them; do not write)."""

    appends: int = 0  # calls of append / append_async
    records: int = 0  # records written
    groups: int = 0  # group commits: one write each
    fsyncs: int = 0  # fsync calls, files and directories
    bytes: int = 0  # bytes written
    segments: int = 0  # segment files created


class _Waiter:
    """One append waiting for its group commit.

    A thread waits on its own lock (held from the start, released to wake it), so a
    leader wakes exactly the callers of its group and the next leader, not everyone.
    """

    __slots__ = ("done", "error", "future", "loop", "signaled", "wake")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.done = False
        self.error: StoreError | None = None
        self.loop = loop
        self.future = future
        self.signaled = False
        self.wake: threading.Lock | None = None
        if loop is None:
            self.wake = threading.Lock()
            self.wake.acquire()

    def signal(self) -> None:
        """Wake the waiting thread (log lock held); at most once per wait."""
        if self.wake is not None and not self.signaled:
            self.signaled = True
            self.wake.release()


def _resolve(waiters: list[_Waiter]) -> None:
    """Answer append_async callers (on their event loop)."""
    for waiter in waiters:
        future = waiter.future
        if future is None or future.done():  # cancelled
            continue
        if waiter.error is None:
            future.set_result(None)
        else:
            future.set_exception(copy.copy(waiter.error))  # a fresh one per caller


@dataclass
class _Group:
    chunks: list[bytes]
    records: int
    waiters: list[_Waiter]


class RecordLog:
    """Appends records of one ``kind`` (``predictions``, ``feedback``) under a workspace.

    Thread-safe; create one per process (after a fork). ``close`` (or ``with``) flushes,
    fsyncs and seals the current segment; appending afterwards raises UsageError.
    Segments are sealed at ``max_segment_bytes``, and within about a second when
    :func:`rewrite_log` asks for it (so a rewrite can reach every record, busy or idle);
    ``flush_interval`` (seconds) is the longest a record waits to be written in async
    mode (``durable=False``).

    When a write or fsync fails, the segment is cut back to what was made durable and
    appends are refused with LogUnavailableError for ``FIRST_BACKOFF_SECONDS``, doubling
    up to ``MAX_BACKOFF_SECONDS`` while retries fail; the full error (with the path)
    goes to the ``setpoint.serving`` logger once per attempt. ``clock`` (monotonic
    seconds) times the backoff.

    ``root`` is the workspace folder, or a :class:`LogLocation` with a store
    (``log_uri``): then each segment is also sealed ``seal_seconds`` after it was
    opened, and a thread ships sealed segments to the store (``_logremote``), those of
    dead processes of this machine too; a failing store is logged and retried, and the
    segments wait here meanwhile.
    """

    def __init__(
        self,
        root: Path | LogLocation,
        *,
        kind: str = "predictions",
        durable: bool = True,
        max_segment_bytes: int = 64 * MiB,
        flush_interval: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_segment_bytes < 1 or flush_interval <= 0:
            raise UsageError("max_segment_bytes and flush_interval must be positive")
        self.location = as_location(root)
        self.root = self.location.root
        self.kind = check_name("log kind", kind)
        self.durable = durable
        self.max_segment_bytes = max_segment_bytes
        self.flush_interval = flush_interval
        self.stats = LogStats()
        self._schema = schema_for(kind)
        self._dir = segments_dir(self.root, kind)
        self._kind_dir = kind_dir(self.root, kind)
        self._next_seal_check = 0.0  # monotonic; read and set by the leader
        try:
            make_dirs_durably(self._dir)
        except OSError as exc:
            raise io_error("create the folder", self._dir, exc) from exc
        self._pid = os.getpid()
        self._token = os.urandom(3).hex()
        self._sequence = 0
        self._segment: SegmentFile | None = None  # owned by the current leader
        self._opened_at = 0.0  # monotonic: when the segment was created
        # With a store: segments live at most this long, and a thread ships them.
        self._seal_after = self.location.seal_seconds if self.location.remote else None
        self._ship_wake = threading.Event()
        self._shipper: threading.Thread | None = None
        self._shipping_stops = False
        self._ship_failing = False  # the last shipping failed (said once per streak)

        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)  # async mode backpressure
        self._flusher_wake = threading.Condition(self._lock)
        self._pending: list[bytes] = []
        self._pending_waiters: list[_Waiter] = []
        self._pending_records = 0
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._leading = False
        self._closed = False
        self._lost: StoreError | None = None  # a background failure not yet reported
        self._clock = clock
        self._backoff = 0.0  # seconds; 0 while writes succeed
        self._retry_at = 0.0  # on the clock: appends are refused until then
        self._unwritable = ""  # why, in words (no path) for callers
        self._flusher = threading.Thread(
            target=self._flush_loop, name=f"setpoint-log-{kind}", daemon=True
        )
        self._flusher.start()
        if self._seal_after is not None:
            self._shipper = threading.Thread(
                target=self._ship_loop, name=f"setpoint-ship-{kind}", daemon=True
            )
            self._shipper.start()
        atexit.register(self.close)

    # ------------------------------------------------------------------ appending

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Store ``records``; when durable, return only once they are written and fsynced.

        Raises InvalidDataError for a record that cannot be stored (the others of the
        call are not stored either) and StoreError when writing or fsyncing fails: then
        the records must not be acknowledged. Blocks: on an event loop, use
        :meth:`append_async`.
        """
        data, count = encode_records(records, self._schema)
        self._store(data, count)

    def append_lines(self, data: bytes, count: int) -> None:
        """``append`` for records the caller encoded itself: ``count`` JSON lines, each
        a record with this kind's fields of their types and a UTC ``ts`` (the caller
        vouches; a batch writer that builds many alike records this way skips a dict
        and a check per record). Blocks like ``append``."""
        if data.count(b"\n") != count or (count and not data.endswith(b"\n")):
            raise UsageError(f"append_lines needs {count} whole lines, one per record")
        self._store(data, count)

    def _store(self, data: bytes, count: int) -> None:
        """Queue encoded lines; when durable, wait until their group is fsynced."""
        if not self.durable:
            with self._lock:
                self._enqueue(data, count, None)
                self._throttle()
            return
        waiter = _Waiter()
        wake = waiter.wake
        assert wake is not None
        with self._lock:
            self._enqueue(data, count, waiter)
            group = None if self._leading else self._take()
        while group is None:
            wake.acquire()  # until our group is done, or we are the next leader
            with self._lock:
                waiter.signaled = False  # consumed: a new signal may come
                if waiter.done:
                    break
                group = None if self._leading else self._take()
        if group is not None:
            self._commit(group)  # ours is in it
        if waiter.error is not None:
            # a fresh exception per caller: one instance raised in many threads shares a traceback
            raise copy.copy(waiter.error) from waiter.error

    async def append_async(
        self, records: Sequence[Mapping[str, Any]], *, checked: bool = False
    ) -> None:
        """``append`` for event-loop callers: awaits the same group commit without blocking.

        If the awaiting task is cancelled, the records are stored all the same.
        ``checked`` skips re-checking the fields of records the server built itself
        with the log's types (a UTC ``ts``, an int ``version``...); the hot path's.
        """
        data, count = encode_records(records, self._schema, checked=checked)
        if not self.durable:
            with self._lock:
                self._enqueue(data, count, None)
                wait = self._pending_bytes > 8 * _EARLY_FLUSH_BYTES
            if wait:  # backpressure without blocking the loop
                await asyncio.to_thread(self._wait_drained)
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop, loop.create_future())
        with self._lock:
            self._enqueue(data, count, waiter)
            if not self._leading:
                self._flusher_wake.notify()
        assert waiter.future is not None
        await waiter.future

    def _enqueue(self, data: bytes, count: int, waiter: _Waiter | None) -> None:
        """Queue one append's lines (lock held)."""
        if self._closed:
            raise UsageError(f"the {self.kind} log at {self._dir} is closed")
        if os.getpid() != self._pid:
            raise UsageError(
                f"this {self.kind} log was opened in process {self._pid} and used in "
                f"{os.getpid()} after a fork; open a RecordLog in each worker process"
            )
        if self._lost is not None:
            lost, self._lost = self._lost, None
            raise lost
        if self._backoff:
            wait = self._retry_at - self._clock()
            if wait > 0:
                raise self._unavailable(wait)
        self.stats.appends += 1
        if not self._pending:
            self._pending_since = time.monotonic()
            if not self.durable:
                self._flusher_wake.notify()  # to start the flush_interval clock
        self._pending.append(data)
        self._pending_records += count
        self._pending_bytes += len(data)
        if waiter is not None:
            self._pending_waiters.append(waiter)

    def _throttle(self) -> None:
        """Async mode (lock held): wake the writer early; wait while far too much is queued."""
        if self._pending_bytes >= _EARLY_FLUSH_BYTES:
            self._flusher_wake.notify()
        while self._pending_bytes > 8 * _EARLY_FLUSH_BYTES and not self._closed:
            self._drained.wait()

    def _wait_drained(self) -> None:
        with self._lock:
            self._throttle()

    def _take(self) -> _Group:
        """Become the leader and take everything queued (lock held)."""
        self._leading = True
        group = _Group(self._pending, self._pending_records, self._pending_waiters)
        self._pending, self._pending_waiters = [], []
        self._pending_records = self._pending_bytes = 0
        return group

    # ------------------------------------------------------------------ group commit

    def _commit(self, group: _Group) -> None:
        """Write and fsync one group, then answer its waiters (the leader, lock not held)."""
        error: StoreError | None = StoreError(f"writing to the {self.kind} log was interrupted")
        try:
            self._write(b"".join(group.chunks), group.records)
            error = None
        except StoreError as exc:
            error = exc
        finally:
            self._finish(group, error)

    def _finish(self, group: _Group, error: StoreError | None) -> None:
        """Step down as leader and answer the group's waiters."""
        with self._lock:
            self._leading = False
            if self._pending or self._closed:
                # queued meanwhile: the flusher thread commits it at once and keeps
                # leading while groups queue up, so the disk never waits for a caller
                # thread to be scheduled
                self._flusher_wake.notify()
            for waiter in group.waiters:
                waiter.done = True
                waiter.error = error
                waiter.signal()
            if error is not None and not group.waiters and group.records:
                self._lost = StoreError(
                    f"{group.records} {self.kind} records queued in async mode were lost: "
                    + error.message,
                    details=error.details,
                )
            if not self.durable:
                self._drained.notify_all()
        by_loop: dict[asyncio.AbstractEventLoop, list[_Waiter]] = {}
        for waiter in group.waiters:
            if waiter.loop is not None:
                by_loop.setdefault(waiter.loop, []).append(waiter)
        for loop, waiters in by_loop.items():  # one wake-up per event loop, not per caller
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, waiters)

    def _write(self, data: bytes, records: int) -> None:
        """Append to the current segment (rotating when full) and fsync it."""
        segment = self._segment
        try:
            if segment is not None and (
                (segment.size and segment.size + len(data) > self.max_segment_bytes)
                or self._seal_requested(segment)
            ):
                self._segment = None
                segment.seal()
                self.stats.fsyncs += 1
                segment = None
                self._ship_wake.set()
            if not data:
                return  # an idle check for a seal request: nothing to write
            if segment is None:
                self._sequence += 1
                segment = self._segment = SegmentFile.create(self._dir, self._sequence, self._token)
                self._sequence = segment.sequence
                self._opened_at = time.monotonic()
                self.stats.segments += 1
                self.stats.fsyncs += 1
            segment.write(data)
            segment.sync()
        except OSError as exc:
            path = segment.path if segment is not None else self._dir
            if segment is not None:
                try:
                    segment.rewind()
                except OSError:
                    # Start a new segment next time: what this one holds is unknown.
                    # Unlocked, it is adopted by compaction.
                    self._segment = None
                    segment.close()
            raise self._back_off(io_error("write to", path, exc), exc) from exc
        if self._backoff:
            with self._lock:
                self._backoff = 0.0
            logger.warning("the %s log is written again", self.kind)
        self.stats.fsyncs += 1
        self.stats.groups += 1
        self.stats.records += records
        self.stats.bytes += len(data)

    def _back_off(self, cause: StoreError, exc: OSError) -> LogUnavailableError:
        """Refuse appends for the next backoff; the error for this group's callers."""
        with self._lock:
            self._backoff = min(MAX_BACKOFF_SECONDS, 2 * self._backoff or FIRST_BACKOFF_SECONDS)
            self._retry_at = self._clock() + self._backoff
            self._unwritable = _UNWRITABLE.get(exc.errno or 0, "the disk failed")
            backoff = self._backoff
        logger.error("%s; appends are refused for %g s", cause.message, backoff)
        return self._unavailable(backoff)

    def _unavailable(self, wait: float) -> LogUnavailableError:
        seconds = max(1, math.ceil(wait))
        return LogUnavailableError(
            f"the {self.kind} log cannot be written ({self._unwritable}), so nothing was "
            f"stored; retry in {seconds} s (the server log has the details)",
            retry_after=seconds,
            details={"log": self.kind, "retry_after": seconds},
        )

    def _seal_requested(self, segment: SegmentFile) -> bool:
        """Whether the segment is to be sealed: it lived ``seal_seconds`` (with a store),
        or a rewrite asked for it (looked at about once a second: a stat of a missing
        file when nobody asks)."""
        now = time.monotonic()
        if self._seal_after is not None and now - self._opened_at >= self._seal_after:
            return True  # old enough to be shipped
        if now < self._next_seal_check:
            return False
        self._next_seal_check = now + SEAL_CHECK_SECONDS
        return segment_id(segment.path) in requested_seals(self._kind_dir)

    def _idle_check_due(self) -> bool:
        """Nothing to write, a segment open, and time to look for a seal request (lock held)."""
        return (
            not self._pending
            and not self._leading
            and self._segment is not None
            and time.monotonic() >= self._next_seal_check
        )

    def _flush_loop(self) -> None:
        """The writer thread: commits what queues behind a group, and all of async mode."""
        while True:
            with self._lock:
                while True:
                    if self._pending and not self._leading:
                        if self._closed or self.durable:
                            break
                        due = self._pending_since + self.flush_interval - time.monotonic()
                        if due <= 0 or self._pending_bytes >= _EARLY_FLUSH_BYTES:
                            break
                        self._flusher_wake.wait(due)
                    elif self._closed and not self._pending and not self._leading:
                        return
                    elif self._idle_check_due():
                        break  # an empty group: its leader looks for a seal request
                    else:  # woken to commit, or to look for a seal request
                        self._flusher_wake.wait(SEAL_CHECK_SECONDS)
                group = self._take()
            self._commit(group)

    # ------------------------------------------------------------------ shipping

    def _ship_loop(self) -> None:
        """The shipping thread: ships at once (segments dead processes left), then each
        time a segment is sealed, and every ``seal_seconds`` (to retry a failure)."""
        assert self._seal_after is not None
        every = max(1.0, self._seal_after)
        while not self._shipping_stops:
            self._ship_once()
            self._ship_wake.wait(every)
            self._ship_wake.clear()

    def _ship_once(self) -> bool:
        """Ship this machine's closed segments; on failure say so once per streak."""
        try:
            ship(self.location, self.kind)
        except (StoreError, OSError) as exc:
            if not self._ship_failing:
                message = exc.message if isinstance(exc, StoreError) else str(exc)
                logger.error(
                    "the %s log's sealed segments cannot be moved to %s: %s; they wait "
                    "in %s and are moved once it works",
                    self.kind,
                    self.location.uri,
                    message,
                    self._dir,
                )
            self._ship_failing = True
            return False
        if self._ship_failing:
            logger.warning("the %s log's segments reach %s again", self.kind, self.location.uri)
        self._ship_failing = False
        return True

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Write and fsync everything queued, seal the segment; idempotent.

        Raises StoreError if the last records or the seal could not be made durable.
        """
        atexit.unregister(self.close)
        if os.getpid() != self._pid:
            self._closed = True  # a forked copy: the segment belongs to the parent
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._flusher_wake.notify()
            self._drained.notify_all()
        self._flusher.join()
        segment, self._segment = self._segment, None
        if segment is not None:
            try:
                segment.seal()
            except OSError as exc:
                raise io_error("seal", segment.path, exc) from exc
            self.stats.fsyncs += 1
        if self._shipper is not None:
            self._shipping_stops = True
            self._ship_wake.set()
            self._shipper.join()
            self._ship_once()  # the sealed segment goes now, or with the next process
        lost, self._lost = self._lost, None
        if lost is not None:
            raise lost

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "durable" if self.durable else f"async, every {self.flush_interval * 1000:g} ms"
        return f"RecordLog({str(self.root)!r}, kind={self.kind!r}, {mode})"
