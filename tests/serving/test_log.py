"""The prediction log: durability, group commit, compaction and reading back."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.errors import InvalidDataError, LogUnavailableError, StoreError, UsageError
from setpoint.serving import _logfiles
from setpoint.serving.log import RecordLog, compact, read_log

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DEADLINE = 60.0


def record(i: int, *, endpoint: str = "credit", ts: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "request_id": f"req-{i}",
        "ts": ts or T0 + dt.timedelta(seconds=i),
        "endpoint": endpoint,
        "model": "credit-risk",
        "version": 3,
        "route": "champion",
        "inputs": {"income": 1000.0 + i, "region": "north"},
        "outputs": {"p": 0.25},
        "latency_ms": 1.5,
        "cached": False,
        "fallback": False,
    }


def ids(table: pa.Table) -> list[str]:
    return table.column("request_id").to_pylist()


def segment_files(root: Path, kind: str = "predictions") -> list[Path]:
    return sorted(_logfiles.segments_dir(root, kind).iterdir())


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll with a deadline (for work a background thread does on its own)."""
    deadline = time.monotonic() + DEADLINE
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.001)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[RecordLog]:
    with RecordLog(tmp_path) as opened:
        yield opened


# ---------------------------------------------------------------------------- round trip


def test_round_trip_types_the_fixed_fields_and_keeps_payloads_as_json(
    tmp_path: Path, log: RecordLog
) -> None:
    log.append([record(1), {**record(2), "row": 1}])
    log.append([{**record(3), "tenant": "acme", "model": None, "outputs": None}])

    table = read_log(tmp_path)

    assert ids(table) == ["req-1", "req-2", "req-3"]
    schema = table.schema
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("version").type == pa.int64()
    assert schema.field("latency_ms").type == pa.float64()
    assert schema.field("cached").type == pa.bool_()
    assert schema.field("inputs").type == pa.string()
    assert schema.names[:12] == [
        "request_id",
        "ts",
        "endpoint",
        "row",
        "model",
        "version",
        "route",
        "latency_ms",
        "cached",
        "fallback",
        "inputs",
        "outputs",
    ]
    rows = table.to_pylist()
    assert rows[0]["ts"] == T0 + dt.timedelta(seconds=1)
    assert json.loads(rows[0]["inputs"]) == {"income": 1001.0, "region": "north"}
    assert [row["row"] for row in rows] == [None, 1, None]
    assert rows[2]["model"] is None
    assert rows[2]["outputs"] is None
    assert json.loads(rows[2]["tenant"]) == "acme"  # unknown fields: JSON text
    assert rows[0]["tenant"] is None


def test_every_supported_value_type_is_stored(tmp_path: Path, log: RecordLog) -> None:
    when = dt.datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=dt.UTC)
    inputs = {
        "int": 7,
        "big": 2**62,
        "float": 0.1,
        "str": "naïve ☃",
        "none": None,
        "bool": True,
        "list": [1, "a", None, [2.5]],
        "dict": {"nested": {"deep": [{"x": 1}]}},
        "np_int": np.int64(5),
        "np_float": np.float32(0.5),
        "np_bool": np.bool_(True),
        "np_array": np.arange(3, dtype=np.int32),
        "np_matrix": np.array([[1.5, 2.5], [3.5, 4.5]]),
        "datetime": when,
        "date": dt.date(2026, 3, 1),
        "tuple": (1, 2),
    }
    log.append(
        [
            {
                **record(1),
                "ts": when.astimezone(dt.timezone(dt.timedelta(hours=2))),
                "version": np.int64(4),
                "latency_ms": np.float64(2.25),
                "cached": np.bool_(True),
                "inputs": inputs,
            }
        ]
    )

    row = read_log(tmp_path).to_pylist()[0]

    assert row["ts"] == when  # a +02:00 time is stored as the same instant in UTC
    assert (row["version"], row["latency_ms"], row["cached"]) == (4, 2.25, True)
    assert json.loads(row["inputs"]) == {
        **inputs,
        "np_int": 5,
        "np_float": 0.5,
        "np_bool": True,
        "np_array": [0, 1, 2],
        "np_matrix": [[1.5, 2.5], [3.5, 4.5]],
        "datetime": "2026-03-01T08:30:15.123456Z",
        "date": "2026-03-01",
        "tuple": [1, 2],
    }


def test_naive_and_string_timestamps_are_utc(tmp_path: Path, log: RecordLog) -> None:
    log.append([{**record(1), "ts": "2026-03-01T12:00:00"}])
    log.append([{**record(2), "ts": "2026-03-01T14:00:00+02:00"}])
    log.append([{**record(3), "ts": dt.datetime(2026, 3, 1, 12, 0)}])

    assert read_log(tmp_path).column("ts").to_pylist() == [T0, T0, T0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"request_id": None}, "needs request_id"),
        ({"endpoint": None}, "needs endpoint"),
        ({"version": "3"}, "'version' should be int"),
        ({"cached": 1}, "'cached' should be bool"),
        ({"latency_ms": "fast"}, "'latency_ms' should be float"),
        ({"ts": "yesterday"}, "not an ISO 8601 timestamp"),
        ({"ts": 1700000000}, "give a datetime"),
        ({"inputs": {"x": object()}}, "cannot be stored"),
    ],
)
def test_a_record_that_cannot_be_read_back_is_refused(
    tmp_path: Path, log: RecordLog, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidDataError, match=message):
        log.append([record(1), {**record(2), **change}])

    assert read_log(tmp_path).num_rows == 0  # nothing of the call was stored
    assert log.stats.appends == 0


def test_an_integer_beyond_64_bits_is_stored_not_refused(tmp_path: Path, log: RecordLog) -> None:
    # A text column may legally carry one; refusing it would fail the whole group commit.
    log.append([record(1), {**record(2), "inputs": {"zip": 2**70}}])
    log.close()
    table = read_log(tmp_path)
    assert table.num_rows == 2
    assert json.loads(table.column("inputs")[1].as_py())["zip"] == pytest.approx(2**70)


def test_feedback_has_a_label(tmp_path: Path) -> None:
    with RecordLog(tmp_path, kind="feedback") as feedback:
        feedback.append(
            [{"request_id": "req-1", "ts": T0, "endpoint": "credit", "label": {"default": 1}}]
        )

    table = read_log(tmp_path, kind="feedback")
    assert table.schema.names == ["request_id", "ts", "endpoint", "row", "label"]
    assert json.loads(table.column("label")[0].as_py()) == {"default": 1}
    assert read_log(tmp_path).num_rows == 0  # the predictions log is another one


def test_refused_rows_have_their_reasons_and_compact_like_predictions(tmp_path: Path) -> None:
    refusal = {
        "request_id": "req-1",
        "ts": T0,
        "endpoint": "credit",
        "row": 2,
        "model": "credit-risk",
        "version": 3,
        "inputs": {"income": "lots", "age": "***"},
        "reasons": [{"column": "income", "rule": "type", "value": "lots"}],
    }
    with RecordLog(tmp_path, kind="refused") as refused:
        refused.append([refusal, {**refusal, "request_id": "req-2", "ts": T0 + dt.timedelta(1)}])
        with pytest.raises(InvalidDataError, match="'row' should be int"):
            refused.append([{**refusal, "row": "two"}])

    before = read_log(tmp_path, kind="refused")
    assert before.schema.names == [
        "request_id",
        "ts",
        "endpoint",
        "row",
        "model",
        "version",
        "inputs",
        "reasons",
    ]
    assert before.schema.field("version").type == pa.int64()
    assert json.loads(before.column("reasons")[0].as_py()) == refusal["reasons"]
    assert read_log(tmp_path).num_rows == 0  # the predictions log is another one

    result = compact(tmp_path, kind="refused")
    assert (result.segments, result.records, result.parts) == (1, 2, 2)
    parts = sorted((tmp_path / "logs" / "refused").rglob("*.parquet"))
    assert [p.parent.name for p in parts] == ["date=2026-03-01", "date=2026-03-02"]
    assert read_log(tmp_path, kind="refused").equals(before)
    assert ids(read_log(tmp_path, kind="refused", since=T0 + dt.timedelta(hours=1))) == ["req-2"]


def test_appending_after_close_is_refused(log: RecordLog) -> None:
    log.close()
    log.close()  # idempotent
    with pytest.raises(UsageError, match="closed"):
        log.append([record(1)])


def test_an_empty_workspace_reads_as_an_empty_table(tmp_path: Path) -> None:
    table = read_log(tmp_path)
    assert table.num_rows == 0
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")


# ---------------------------------------------------------------------------- group commit


class FsyncSpy:
    """Counts fsyncs of segment files; can hold the first one until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, hold_first: bool = False) -> None:
        self.real = _logfiles.fsync_fd
        self.synced_sizes: list[int] = []
        self.release = threading.Event()
        self.holding = threading.Event()
        self.hold_first = hold_first
        self.lock = threading.Lock()
        monkeypatch.setattr(_logfiles, "fsync_fd", self)

    def __call__(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if self.hold_first and not self.holding.is_set():
            self.holding.set()
            assert self.release.wait(DEADLINE)
        self.real(fd)
        with self.lock:
            self.synced_sizes.append(size)

    def synced(self) -> int:
        with self.lock:
            return max(self.synced_sizes, default=0)


def test_appends_queued_during_an_fsync_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = FsyncSpy(monkeypatch, hold_first=True)
    with RecordLog(tmp_path) as log:
        first = threading.Thread(target=log.append, args=([record(0)],))
        first.start()
        assert spy.holding.wait(DEADLINE)  # the first caller leads, inside its fsync
        others = [threading.Thread(target=log.append, args=([record(i)],)) for i in range(1, 17)]
        for thread in others:
            thread.start()
        wait_until(lambda: log.stats.appends == 17, "16 more appends to queue")
        spy.release.set()
        for thread in [first, *others]:
            thread.join(DEADLINE)

        assert log.stats.groups == 2
        assert len(spy.synced_sizes) == 2
    assert sorted(ids(read_log(tmp_path))) == sorted(f"req-{i}" for i in range(17))


def test_sixteen_threads_each_return_only_once_their_records_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = FsyncSpy(monkeypatch)
    failures: list[str] = []
    per_thread = 40

    def worker(t: int) -> None:
        for j in range(per_thread):
            request_id = f"t{t}-{j}"
            log.append([{**record(0), "request_id": request_id}])
            (segment,) = segment_files(tmp_path)
            durable_prefix = segment.read_bytes()[: spy.synced()]
            if f'"{request_id}"'.encode() not in durable_prefix:
                failures.append(request_id)

    with RecordLog(tmp_path) as log:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        stats = log.stats

    assert failures == []
    assert stats.appends == stats.records == 16 * per_thread
    assert stats.groups == len(spy.synced_sizes) <= stats.appends
    assert len(set(ids(read_log(tmp_path)))) == 16 * per_thread


def test_append_async_awaits_the_group_commit(tmp_path: Path, log: RecordLog) -> None:
    async def main() -> None:
        await asyncio.gather(*(log.append_async([record(i)]) for i in range(200)))
        # answered only once stored: every record is already readable
        assert read_log(tmp_path).num_rows == 200

    asyncio.run(main())
    assert log.stats.records == 200
    assert log.stats.groups < 200


def test_close_waits_for_an_append_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = FsyncSpy(monkeypatch, hold_first=True)
    log = RecordLog(tmp_path)
    appending = threading.Thread(target=log.append, args=([record(1)],))
    appending.start()
    assert spy.holding.wait(DEADLINE)
    closing = threading.Thread(target=log.close)
    closing.start()
    wait_until(lambda: log._closed, "close to begin")
    spy.release.set()
    appending.join(DEADLINE)
    closing.join(DEADLINE)

    assert not closing.is_alive()
    assert [p.suffix for p in segment_files(tmp_path)] == [".seg"]
    assert ids(read_log(tmp_path)) == ["req-1"]


def test_a_failed_fsync_fails_the_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    now = [0.0]
    with RecordLog(tmp_path, clock=lambda: now[0]) as log:
        log.append([record(1)])
        monkeypatch.setattr(_logfiles, "fsync_fd", broken)
        with pytest.raises(LogUnavailableError, match=r"cannot be written") as failed:
            log.append([record(2)])
        assert str(tmp_path) not in failed.value.message  # the path is for the server log
        monkeypatch.undo()
        now[0] += 1.0  # the backoff is over

        # A new segment: with fsync failing, cutting the old one back could not be
        # made durable either, so what it holds is unknown.
        log.append([record(3)])

        assert log.stats.segments == 2
    assert ids(read_log(tmp_path)) == ["req-1", "req-3"]


class FullDisk:
    """SegmentFile.write on a full disk: counts the attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FullDisk:
        def write(segment: _logfiles.SegmentFile, data: bytes) -> None:
            self.fail(segment, data)

        monkeypatch.setattr(_logfiles.SegmentFile, "write", write)
        return self

    def fail(self, segment: _logfiles.SegmentFile, data: bytes) -> None:
        self.attempts += 1
        os.write(segment.fd, data[: len(data) // 2])  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_backs_off_instead_of_making_a_file_per_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [100.0]
    log = RecordLog(tmp_path, clock=lambda: now[0])
    log.append([record(0)])
    files_before = segment_files(tmp_path)
    full = FullDisk().install(monkeypatch)
    waits = []
    for i in range(1, 6000):  # a busy server: thousands of requests while the disk is full
        with pytest.raises(LogUnavailableError) as refused:
            log.append([record(i)])
        assert refused.value.http_status == 503
        assert refused.value.retry_after is not None
        if i % 100 == 0:  # a second passes now and then
            waits.append(refused.value.retry_after)
            now[0] += 1.0
    # One write per backoff (1 s doubling to 30 s), not one per append; no new files.
    assert full.attempts < 15, full.attempts
    assert segment_files(tmp_path) == files_before
    assert max(waits) == 30
    assert sum("No space left" in r.getMessage() for r in caplog.records) == full.attempts
    monkeypatch.undo()
    now[0] += 30.0
    log.append([record(5000)])  # the disk has room again
    log.close()
    # What was acknowledged is there, whole; nothing that was refused is.
    assert ids(read_log(tmp_path)) == ["req-0", "req-5000"]
    assert len(segment_files(tmp_path)) == len(files_before)


def test_appends_wait_for_the_backoff_not_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    log = RecordLog(tmp_path, clock=lambda: now[0])
    FullDisk().install(monkeypatch)
    with pytest.raises(LogUnavailableError):
        log.append([record(1)])
    now[0] += 0.4
    with pytest.raises(LogUnavailableError) as refused:
        asyncio.run(log.append_async([record(2)]))
    assert refused.value.retry_after == 1  # 0.6 s left, rounded up
    monkeypatch.undo()
    now[0] += 0.6
    asyncio.run(log.append_async([record(3)]))
    log.close()
    assert ids(read_log(tmp_path)) == ["req-3"]


def test_async_mode_loses_nothing_on_a_clean_close(tmp_path: Path) -> None:
    with RecordLog(tmp_path, durable=False, flush_interval=0.05) as log:
        for i in range(2000):
            log.append([record(i)])
    assert log.stats.records == 2000
    assert log.stats.groups < 2000
    assert len(ids(read_log(tmp_path))) == 2000


def test_async_mode_writes_in_the_background(tmp_path: Path) -> None:
    with RecordLog(tmp_path, durable=False, flush_interval=0.002) as log:
        log.append([record(1)])
        asyncio.run(log.append_async([record(2)]))
        wait_until(lambda: log.stats.records == 2, "the background flush")
        assert ids(read_log(tmp_path)) == ["req-1", "req-2"]


# ---------------------------------------------------------------------------- segments


def test_segments_rotate_by_size_and_are_sealed_on_close(tmp_path: Path) -> None:
    with RecordLog(tmp_path, max_segment_bytes=2000) as log:
        for i in range(30):
            log.append([record(i)])
        assert [p.suffix for p in segment_files(tmp_path)].count(".open") == 1
    files = segment_files(tmp_path)
    assert len(files) == log.stats.segments > 3
    assert {p.suffix for p in files} == {".seg"}
    assert all(p.stat().st_size <= 2000 for p in files)
    assert ids(read_log(tmp_path)) == [f"req-{i}" for i in range(30)]


def test_a_torn_final_line_is_skipped(tmp_path: Path) -> None:
    with RecordLog(tmp_path) as log:
        log.append([record(1), record(2)])
    with RecordLog(tmp_path / "other") as other:
        other.append([record(3)])
    (line,) = segment_files(tmp_path / "other")[0].read_bytes().splitlines(keepends=True)
    (segment,) = segment_files(tmp_path)
    # after a power loss: zeros where unsynced data was, then a line cut short
    with segment.open("ab") as file:
        file.write(b"\0" * 8 + line + b'{"request_id": "req-4", "ts": "2026')

    assert ids(read_log(tmp_path)) == ["req-1", "req-2", "req-3"]
    assert compact(tmp_path).records == 3
    assert ids(read_log(tmp_path)) == ["req-1", "req-2", "req-3"]


def test_a_damaged_line_in_the_middle_is_reported(tmp_path: Path) -> None:
    with RecordLog(tmp_path) as log:
        log.append([record(1)])
    (segment,) = segment_files(tmp_path)
    with segment.open("ab") as file:
        file.write(b"{not json\n")
    with pytest.raises(StoreError, match=r"damaged at line 2"):
        read_log(tmp_path)


def test_two_processes_write_their_own_segments(tmp_path: Path) -> None:
    script = (
        "import sys, datetime as dt\n"
        "from pathlib import Path\n"
        "from setpoint.serving.log import RecordLog\n"
        "name = sys.argv[1]\n"
        "with RecordLog(Path(sys.argv[2])) as log:\n"
        "    for i in range(200):\n"
        "        log.append([{'request_id': f'{name}-{i}', 'ts': dt.datetime.now(dt.UTC),\n"
        "                     'endpoint': 'credit', 'route': 'champion'}])\n"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", script, name, str(tmp_path)]) for name in "ab"
    ]
    assert [child.wait(DEADLINE) for child in children] == [0, 0]

    assert len(segment_files(tmp_path)) == 2
    stored = ids(read_log(tmp_path))
    assert sorted(stored) == sorted(f"{n}-{i}" for n in "ab" for i in range(200))


SIGKILL_SCRIPT = """
import sys, datetime as dt
from pathlib import Path
from setpoint.serving.log import RecordLog
log = RecordLog(Path(sys.argv[1]), kind=sys.argv[2])
i = 0
while True:
    log.append([{"request_id": f"req-{i}", "ts": dt.datetime.now(dt.UTC), "endpoint": "credit",
                 "row": 0, "inputs": {"x": i}, "outputs": [i]}])
    print(f"req-{i}", flush=True)  # acknowledged only after append returned
    i += 1
"""


@pytest.mark.parametrize("kind", ["predictions", "refused"])
def test_every_acknowledged_record_survives_sigkill(tmp_path: Path, kind: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SIGKILL_SCRIPT, str(tmp_path), kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acknowledged = []
    try:
        while len(acknowledged) < 300:
            line = child.stdout.readline()
            assert line, f"the writer ended early (exit code {child.poll()})"
            acknowledged.append(line.strip())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(DEADLINE)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    assert [p.suffix for p in segment_files(tmp_path, kind)] == [".open"]  # never sealed
    stored = set(ids(read_log(tmp_path, kind=kind)))
    assert set(acknowledged) <= stored

    result = compact(tmp_path, kind=kind)  # the dead writer's segment is adopted
    assert (result.segments, result.live) == (1, 0)
    assert set(acknowledged) <= set(ids(read_log(tmp_path, kind=kind)))


# ---------------------------------------------------------------------------- compaction


def two_endpoints_two_days(root: Path) -> None:
    day = dt.timedelta(days=1)
    with RecordLog(root) as log:
        log.append([record(1), record(2, endpoint="fraud"), record(3, ts=T0 + day)])
        log.append([record(4, endpoint="fraud", ts=T0 + day)])


def test_compaction_partitions_by_endpoint_and_date(tmp_path: Path) -> None:
    two_endpoints_two_days(tmp_path)
    (segment,) = segment_files(tmp_path)

    result = compact(tmp_path)

    assert (result.segments, result.records, result.parts, result.live) == (1, 4, 4, 0)
    assert segment_files(tmp_path) == []
    base = tmp_path / "logs" / "predictions"
    parts = sorted(p.relative_to(base).as_posix() for p in base.rglob("*.parquet"))
    part = f"part-{segment.name.removesuffix('.seg')}.parquet"
    assert parts == [
        f"endpoint=credit/date=2026-03-01/{part}",
        f"endpoint=credit/date=2026-03-02/{part}",
        f"endpoint=fraud/date=2026-03-01/{part}",
        f"endpoint=fraud/date=2026-03-02/{part}",
    ]
    # plain Parquet, hive-partitioned: readable without setpoint
    dataset = ds.dataset(base, format="parquet", partitioning="hive", exclude_invalid_files=True)
    assert sorted(dataset.to_table().column("request_id").to_pylist()) == [
        "req-1",
        "req-2",
        "req-3",
        "req-4",
    ]
    assert ids(read_log(tmp_path)) == ["req-1", "req-2", "req-3", "req-4"]


def test_compaction_is_idempotent(tmp_path: Path) -> None:
    two_endpoints_two_days(tmp_path)
    before = read_log(tmp_path)
    compact(tmp_path)

    again = compact(tmp_path)

    assert (again.segments, again.records, again.parts) == (0, 0, 0)
    assert read_log(tmp_path).equals(before)


@pytest.mark.parametrize("parts_written", [1, 4])
def test_a_crash_during_compaction_shows_each_record_once(
    tmp_path: Path, parts_written: int
) -> None:
    two_endpoints_two_days(tmp_path)
    before = read_log(tmp_path)
    (segment,) = segment_files(tmp_path)
    saved = tmp_path / "saved.seg"
    shutil.copy(segment, saved)
    compact(tmp_path)
    # crash: some (or all) parts written, the segment not yet deleted
    parts = sorted((tmp_path / "logs" / "predictions").rglob("*.parquet"))
    for part in parts[parts_written:]:
        part.unlink()
    shutil.copy(saved, segment)

    assert read_log(tmp_path).equals(before)
    assert compact(tmp_path).parts == 4  # the re-run rewrites the same parts
    assert read_log(tmp_path).equals(before)


def test_compaction_leaves_a_live_writers_segment(tmp_path: Path, log: RecordLog) -> None:
    log.append([record(1)])

    result = compact(tmp_path)

    assert (result.segments, result.live) == (0, 1)
    log.append([record(2)])
    assert ids(read_log(tmp_path)) == ["req-1", "req-2"]


def test_a_segment_compaction_took_at_birth_does_not_lend_its_id_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compaction adopts an unlocked ``.open`` file. When it takes a writer's new segment
    between its creation and its lock, the writer starts another; the segment after
    that must not take that one's id again, or its part replaces the first one's."""
    monkeypatch.setattr(
        _logfiles, "new_segment_id", lambda sequence, token: f"20260301T120000Z-{token}-{sequence}"
    )
    real = fcntl.flock
    raced: list[int] = []

    def flock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and not raced:  # the writer's lock on its new segment
            raced.append(fd)
            assert compact(tmp_path).segments == 1  # takes the empty segment, unlocked yet
        real(fd, operation)

    monkeypatch.setattr(_logfiles, "fcntl", SimpleNamespace(**{**vars(fcntl), "flock": flock}))
    with RecordLog(tmp_path, max_segment_bytes=1) as log:  # a segment per append
        log.append([record(1)])
        log.append([record(2)])
        compact(tmp_path)  # record 1's segment becomes a part
        log.append([record(3)])
    compact(tmp_path)

    assert raced
    assert ids(read_log(tmp_path)) == ["req-1", "req-2", "req-3"]


def test_compacted_and_new_records_read_together(tmp_path: Path) -> None:
    two_endpoints_two_days(tmp_path)
    compact(tmp_path)
    with RecordLog(tmp_path) as log:
        log.append([{**record(5), "tenant": "acme"}])

    table = read_log(tmp_path)
    assert ids(table) == ["req-1", "req-2", "req-5", "req-3", "req-4"]
    assert table.column("tenant").to_pylist() == [None, None, '"acme"', None, None]


# ---------------------------------------------------------------------------- filters


@pytest.mark.parametrize("compacted", [False, True])
def test_read_filters_by_endpoint_and_time(tmp_path: Path, compacted: bool) -> None:
    two_endpoints_two_days(tmp_path)
    if compacted:
        compact(tmp_path)
    day = dt.timedelta(days=1)

    assert ids(read_log(tmp_path, endpoint="fraud")) == ["req-2", "req-4"]
    assert ids(read_log(tmp_path, since=T0 + day)) == ["req-3", "req-4"]
    assert ids(read_log(tmp_path, until=T0 + day)) == ["req-1", "req-2"]
    window = read_log(
        tmp_path,
        endpoint="credit",
        since=(T0 + dt.timedelta(seconds=1)).replace(tzinfo=None),  # naive: UTC
        until=T0 + day,  # exclusive: req-3 is at exactly this time
    )
    assert ids(window) == ["req-1"]
    assert read_log(tmp_path, endpoint="nothing").num_rows == 0


# ---------------------------------------------------------------------------- property

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(inputs=st.dictionaries(st.text(max_size=8), JSON, max_size=5), outputs=JSON)
def test_json_records_round_trip(inputs: dict[str, Any], outputs: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with RecordLog(root) as log:
            log.append([{**record(1), "inputs": inputs, "outputs": outputs}])
        row = read_log(root).to_pylist()[0]
        compact(root)
        assert read_log(root).to_pylist() == [row]
    assert json.loads(row["inputs"]) == inputs
    assert (None if row["outputs"] is None else json.loads(row["outputs"])) == outputs


def test_lines_encoded_by_the_caller_are_stored_as_given(tmp_path: Path) -> None:
    import orjson

    lines = b"".join(
        orjson.dumps({**record(i), "ts": (T0 + dt.timedelta(seconds=i)).isoformat()}) + b"\n"
        for i in range(3)
    )
    with RecordLog(tmp_path) as log:
        log.append_lines(lines, 3)
        with pytest.raises(UsageError, match="needs 2 whole lines"):
            log.append_lines(lines, 2)
        with pytest.raises(UsageError, match="whole lines"):
            log.append_lines(lines[:-1], 2)  # the last one cut
    assert ids(read_log(tmp_path)) == ["req-0", "req-1", "req-2"]
