"""The prediction log shared by machines through a store (``log_uri``): shipping,
reading one log from every machine, compaction and rewrites on the store.

Each test runs against an S3 bucket on loopback (moto) and against a folder reached
through fsspec (a store without atomic objects). Two "machines" are two local folders
sharing one store.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from test_log import ids, record, wait_until

from s3_support import outside
from setpoint.errors import ConfigError, StoreError
from setpoint.serving import _logfiles, _logremote
from setpoint.serving._logremote import LogLocation, ship
from setpoint.serving.log import RecordLog, compact, read_log, rewrite_log

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["s3", pytest.param("folder")])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URI: an S3 bucket, or a folder named by a ``file://`` URI."""
    if request.param == "folder":
        return f"file://{tmp_path / 'store'}"
    bucket: str = request.getfixturevalue("s3_bucket")
    return f"{bucket}/logs"


@pytest.fixture
def machine(tmp_path: Path, store: str) -> LogLocation:
    return LogLocation(tmp_path / "a", store, seal_seconds=60)


@pytest.fixture
def other(tmp_path: Path, store: str) -> LogLocation:
    """A second machine: a folder of its own, the same store."""
    return LogLocation(tmp_path / "b", store, seal_seconds=60)


def stored(location: LogLocation, kind: str = "predictions") -> list[str]:
    """The files under the store's ``kind``, relative to it, as another process sees them."""
    fs, base = outside(location.uri)
    top = f"{base.rstrip('/')}/{kind}"
    return sorted(p.removeprefix(top + "/") for p in fs.find(top))


def local_segments(location: LogLocation, kind: str = "predictions") -> list[Path]:
    folder = _logfiles.segments_dir(location.root, kind)
    return sorted(folder.iterdir()) if folder.is_dir() else []


def write(location: LogLocation, records: list[dict[str, Any]]) -> None:
    with RecordLog(location) as log:
        log.append(records)


def test_closing_ships_the_sealed_segment_and_every_machine_reads_it(
    machine: LogLocation, other: LogLocation
) -> None:
    write(machine, [record(i) for i in range(5)])
    assert local_segments(machine) == []  # moved, not copied
    assert [p.split("/")[0] for p in stored(machine)] == ["segments"]
    assert ids(read_log(machine)) == [f"req-{i}" for i in range(5)]
    assert ids(read_log(other)) == [f"req-{i}" for i in range(5)]


def test_each_machine_ships_its_own_segments_and_readers_see_one_log(
    machine: LogLocation, other: LogLocation
) -> None:
    write(machine, [record(i) for i in range(0, 6, 2)])
    write(other, [record(i) for i in range(1, 6, 2)])
    expected = [f"req-{i}" for i in range(6)]
    assert ids(read_log(machine)) == expected
    assert ids(read_log(other, since=T0 + dt.timedelta(seconds=2))) == expected[2:]
    assert len(stored(machine)) == 2


def test_a_segment_is_sealed_and_shipped_once_it_is_seal_seconds_old(
    tmp_path: Path, store: str
) -> None:
    quick = LogLocation(tmp_path / "a", store, seal_seconds=0.05)
    with RecordLog(quick) as log:
        log.append([record(1)])
        wait_until(lambda: len(stored(quick)) == 1, "the segment to reach the store")
        wait_until(lambda: local_segments(quick) == [], "the local copy to go")
        log.append([record(2)])  # a new segment
        wait_until(lambda: len(stored(quick)) == 2, "the second segment")
    assert ids(read_log(LogLocation(tmp_path / "b", store))) == ["req-1", "req-2"]


def test_what_is_not_shipped_yet_is_read_on_its_own_machine(
    machine: LogLocation, other: LogLocation
) -> None:
    with RecordLog(machine) as log:
        log.append([record(1)])
        assert ids(read_log(machine)) == ["req-1"]  # the open segment, here
        assert ids(read_log(other)) == []  # elsewhere: not yet
    assert ids(read_log(other)) == ["req-1"]


def test_a_segment_both_here_and_in_the_store_is_read_once(machine: LogLocation) -> None:
    """Between its upload and the deletion of the local file."""
    with RecordLog(machine.root) as log:  # written locally, not shipped
        log.append([record(1), record(2)])
    [segment] = local_segments(machine)
    assert machine.remote is not None
    machine.remote.write(
        machine.remote.segment_path("predictions", segment.stem), segment.read_bytes()
    )
    assert ids(read_log(machine)) == ["req-1", "req-2"]


def test_a_dead_writers_segment_is_shipped_by_the_next_process_on_its_machine(
    machine: LogLocation,
) -> None:
    """An ``.open`` file nobody locks: its process was killed after acknowledging."""
    folder = _logfiles.segments_dir(machine.root, "predictions")
    folder.mkdir(parents=True)
    lines = b"".join(_line(i) for i in range(3))
    (folder / "20260301T120000Z-p1-dead00-000001.open").write_bytes(lines + b'{"request_id": "cut')
    RecordLog(machine).close()  # opens and closes: ships what is closed
    assert local_segments(machine) == []
    assert stored(machine) == ["segments/20260301T120000Z-p1-dead00-000001.seg"]
    assert ids(read_log(machine)) == ["req-0", "req-1", "req-2"]  # the torn line was never acked


def _line(i: int) -> bytes:
    import orjson

    return orjson.dumps(record(i) | {"ts": (T0 + dt.timedelta(seconds=i)).isoformat()}) + b"\n"


def test_a_live_writers_segment_is_not_shipped(machine: LogLocation) -> None:
    with RecordLog(machine) as log:
        log.append([record(1)])
        assert ship(machine, "predictions") == 0
        assert stored(machine) == []
        log.append([record(2)])
    assert ids(read_log(machine)) == ["req-1", "req-2"]


def test_a_failing_store_keeps_the_segments_here_and_says_so_once(
    tmp_path: Path, s3_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Appends are acknowledged all the same (they are fsynced here); the segments go
    once the store works."""
    import s3fs

    bucket = "setpoint-test-made-later"
    location = LogLocation(tmp_path / "a", f"s3://{bucket}/logs", seal_seconds=60)
    with caplog.at_level(logging.ERROR, logger="setpoint.serving"):
        write(location, [record(1)])
        write(location, [record(2)])
    failures = [r for r in caplog.records if "cannot be moved" in r.getMessage()]
    assert len(failures) == 2  # one per log opened, not one per attempt
    assert "does not exist; create it" in failures[0].getMessage()
    assert len(local_segments(location)) == 2
    assert ids(read_log(LogLocation(location.root))) == ["req-1", "req-2"]
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(bucket)
    try:
        assert ship(location, "predictions") == 2
        assert ids(read_log(LogLocation(tmp_path / "b", location.uri))) == ["req-1", "req-2"]
    finally:
        fs.rm(bucket, recursive=True)


# ---------------------------------------------------------------------------- compaction


def test_compaction_makes_one_part_per_endpoint_and_date_of_every_machines_segments(
    machine: LogLocation, other: LogLocation
) -> None:
    day2 = T0 + dt.timedelta(days=1)
    write(machine, [record(1), record(2, endpoint="fraud"), record(3, ts=day2)])
    write(other, [record(4), record(5, endpoint="fraud")])
    with RecordLog(machine) as log:  # not shipped until compaction ships it
        log.append([record(6)])
        done = compact(other)
    assert (done.segments, done.records, done.parts) == (2, 5, 3)
    files = stored(machine)
    assert [f.split("/")[:2] for f in files] == [
        ["endpoint=credit", "date=2026-03-01"],
        ["endpoint=credit", "date=2026-03-02"],
        ["endpoint=fraud", "date=2026-03-01"],
        ["segments", files[-1].split("/")[1]],  # the segment shipped at close
    ]
    day1 = [f"req-{i}" for i in (1, 2, 4, 5, 6)]
    assert ids(read_log(other)) == [*day1, "req-3"]
    part = files[0]
    fs, base = outside(machine.uri)
    metadata = pq.read_schema(fs.open(f"{base}/predictions/{part}")).metadata
    assert len(metadata[b"setpoint.segments"].split()) == 2  # both machines' segments
    assert compact(machine).segments == 1
    assert [f.split("/")[0] for f in stored(machine)].count("segments") == 0
    assert ids(read_log(machine, endpoint="credit")) == ["req-1", "req-4", "req-6", "req-3"]


def test_a_compaction_that_died_before_deleting_its_segments_leaves_no_duplicate(
    machine: LogLocation,
) -> None:
    write(machine, [record(1), record(2)])
    remote = machine.remote
    assert remote is not None
    [(_, path)] = remote.segments("predictions").items()
    data = remote.read(path)
    assert data is not None
    compact(machine)
    remote.write(path, data)  # as if the compaction had stopped before its delete
    assert ids(read_log(machine)) == ["req-1", "req-2"]
    assert compact(machine).segments == 1  # deleted, and its records not written again
    assert ids(read_log(machine)) == ["req-1", "req-2"]
    assert [f.split("/")[0] for f in stored(machine)] == ["endpoint=credit"]


@pytest.fixture(params=["file", "postgresql"])
def locked(request: pytest.FixtureRequest, machine: LogLocation) -> Iterator[LogLocation]:
    """The location with its store lock: a file here, or PostgreSQL's advisory lock."""
    if request.param == "file":
        yield machine
        return
    from setpoint.store.db import Database

    db = Database(request.getfixturevalue("postgres_url"))
    yield LogLocation(machine.root, machine.uri, lock=db.lock)
    db.dispose()


def test_the_store_lock_is_held_by_one_at_a_time(locked: LogLocation) -> None:
    machine = locked
    inside = threading.Event()
    release = threading.Event()
    entered: list[str] = []

    def first() -> None:
        with machine.store_lock("predictions"):
            entered.append("first")
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(30)
    second = threading.Thread(target=lambda: _enter(machine, entered))
    second.start()
    second.join(0.2)
    assert entered == ["first"]  # waits while the first holds it
    release.set()
    thread.join()
    second.join(30)
    assert entered == ["first", "second"]


def _enter(location: LogLocation, entered: list[str]) -> None:
    with location.store_lock("predictions"):
        entered.append("second")


# ---------------------------------------------------------------------------- rewrites


def _income_over(limit: float) -> Any:
    def drop(table: pa.Table) -> pa.Array:
        incomes = [
            float(text.split('"income":')[1].split(",")[0]) for text in table["inputs"].to_pylist()
        ]
        return pc.greater(pa.array(incomes), limit)

    return drop


def test_a_rewrite_reaches_the_store_the_local_folder_and_the_parts(
    machine: LogLocation, other: LogLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_logremote, "SHIP_MARGIN_SECONDS", 0.0)
    write(machine, [record(i) for i in range(4)])
    compact(machine)  # records 0-3 in a part
    write(other, [record(i) for i in range(4, 8)])  # a shipped segment
    with RecordLog(machine.root) as log:  # a segment still here
        log.append([record(i) for i in range(8, 12)])
    quick = LogLocation(machine.root, machine.uri, seal_seconds=0.01)
    dry = rewrite_log(quick, "predictions", drop=_income_over(1002.5), dry_run=True)
    assert dry.rows_removed == 9
    assert len(read_log(quick)) == 12
    done = rewrite_log(quick, "predictions", drop=_income_over(1002.5))
    assert done.rows_removed == 9
    assert {f.action for f in done.files} == {"rewritten", "deleted"}
    assert any(f.path.startswith(("s3://", "file://")) for f in done.files)
    assert ids(read_log(other)) == ["req-0", "req-1", "req-2"]
    assert local_segments(machine) == []  # shipped by the rewrite


def test_a_rewrite_waits_for_segments_other_machines_still_hold(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment another machine writes when the rewrite starts is sealed within
    seal_seconds and shipped; the rewrite waits that long, so it reaches it."""
    monkeypatch.setattr(_logremote, "SHIP_MARGIN_SECONDS", 0.5)
    remote_machine = LogLocation(tmp_path / "b", store, seal_seconds=0.3)
    here = LogLocation(tmp_path / "a", store, seal_seconds=0.3)
    said: list[str] = []
    with RecordLog(remote_machine) as log:
        log.append([record(1), record(5000)])
        done = rewrite_log(here, "predictions", drop=_income_over(2000), progress=said.append)
        assert done.rows_removed == 1
        assert said[0].startswith("waiting"), said
    assert ids(read_log(here)) == ["req-1"]


def test_retention_of_old_records_does_not_wait(
    machine: LogLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(machine, [record(1), record(2)])
    slow = LogLocation(machine.root, machine.uri, seal_seconds=3600)
    monkeypatch.setattr(_logremote, "SHIP_MARGIN_SECONDS", 3600.0)
    before = T0 + dt.timedelta(seconds=2)

    def old(table: pa.Table) -> pa.ChunkedArray:
        return pc.less(table.column("ts"), pa.scalar(before, pa.timestamp("us", tz="UTC")))

    assert rewrite_log(slow, "predictions", drop=old, before=before).rows_removed == 1
    assert ids(read_log(machine)) == ["req-2"]


# ---------------------------------------------------------------------------- settings


def test_seal_seconds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="log_seal_seconds must be more than 0"):
        LogLocation(tmp_path, "s3://bucket/logs", seal_seconds=0)


def test_a_store_uri_fsspec_cannot_open_names_the_setting(tmp_path: Path) -> None:
    location = LogLocation(tmp_path, "nosuchprotocol://bucket/logs")
    with pytest.raises(ConfigError, match=r"prediction log store .*log_uri"):
        _ = location.remote


def test_a_workspace_with_log_uri_ships_its_log(
    tmp_path: Path, s3_bucket: str, database_url: str | None
) -> None:
    from setpoint.workspace import Workspace

    uri = f"{s3_bucket}/logs"
    ws = Workspace.init(tmp_path / "ws", database_url=database_url, log_uri=uri)
    try:
        assert ws.logs.uri == uri
        assert (ws.logs.lock is None) == ws.db.is_sqlite
        write(ws.logs, [record(1)])
        assert ids(read_log(LogLocation(tmp_path / "elsewhere", uri))) == ["req-1"]
        assert compact(ws.logs).parts == 1
    finally:
        ws.close()


def test_init_refuses_a_log_bucket_that_does_not_exist(tmp_path: Path, s3_endpoint: str) -> None:
    from setpoint.workspace import Workspace

    with pytest.raises(StoreError, match=r"bucket 'no-such-bucket' of s3://no-such-bucket/logs"):
        Workspace.init(tmp_path / "ws", log_uri="s3://no-such-bucket/logs")
    assert not (tmp_path / "ws" / "setpoint.toml").exists()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = {t.name for t in threading.enumerate()}
    yield
    shippers = [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("setpoint-ship") and t.name not in before
    ]
    assert not shippers, f"shipping threads left running: {shippers}"


def test_the_hourly_compaction_job_compacts_every_log_once_an_hour(
    tmp_path: Path, s3_bucket: str
) -> None:
    from setpoint.loop.handlers import HANDLERS, SCHEDULES
    from setpoint.worker import Worker
    from setpoint.workspace import Workspace

    with Workspace.init(tmp_path / "ws", log_uri=f"{s3_bucket}/logs") as ws:
        write(ws.logs, [record(1)])
        with RecordLog(ws.logs, kind="feedback") as feedback:
            feedback.append([{"request_id": "req-1", "ts": T0, "endpoint": "credit", "label": 1}])
        worker = Worker(ws, HANDLERS, schedules=SCHEDULES)
        at = dt.datetime(2026, 3, 1, 12, 5, tzinfo=dt.UTC)
        [job] = worker.drain(now=at)
        assert (job.kind, job.key, job.state) == ("compaction", "2026-03-01T12", "succeeded")
        assert job.result["predictions"]["parts"] == 1
        assert job.result["feedback"]["parts"] == 1
        assert worker.drain(now=at + dt.timedelta(minutes=30)) == []  # once an hour
        assert [f.split("/")[0] for f in stored(ws.logs)] == ["endpoint=credit"]
        assert ids(read_log(ws.logs)) == ["req-1"]


def test_a_workspace_with_a_bad_seal_time_fails_when_opened(tmp_path: Path) -> None:
    from setpoint.workspace import Workspace

    with pytest.raises(ConfigError, match="log_seal_seconds must be more than 0"):
        Workspace.init(tmp_path / "ws", log_seal_seconds=0)


def test_no_compaction_is_queued_while_there_is_nothing_to_compact(tmp_path: Path) -> None:
    from setpoint.serving.compaction import schedule
    from setpoint.workspace import Workspace

    at = dt.datetime(2026, 3, 1, 12, 5, tzinfo=dt.UTC)
    with Workspace.init(tmp_path / "ws") as ws:
        assert schedule(ws, at) is None  # no log at all
        with RecordLog(ws.logs) as log:
            log.append([record(1)])
            assert schedule(ws, at) is None  # a live writer's segment only
        job = schedule(ws, at)
        assert job is not None
        assert job.key == "2026-03-01T12"
