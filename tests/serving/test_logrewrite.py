"""Rewriting the prediction log without some records: exact, crash-safe, beside writers."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.errors import UsageError
from setpoint.serving import _logfiles, _logrewrite
from setpoint.serving import log as log_module
from setpoint.serving.log import RecordLog, compact, read_log, rewrite_log
from setpoint.workspace import Workspace

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
KINDS = ["predictions", "feedback", "refused"]


def record(kind: str, i: int, *, endpoint: str = "credit", days: int = 0) -> dict[str, Any]:
    """Record ``i`` of a log of ``kind``, ``days`` after T0 (plus i seconds)."""
    base = {
        "request_id": f"req-{i}",
        "ts": T0 + dt.timedelta(days=days, seconds=i),
        "endpoint": endpoint,
        "row": 0,
    }
    if kind == "feedback":
        return {**base, "label": {"default": i % 2}}
    if kind == "refused":
        return {
            **base,
            "model": "credit-risk",
            "version": 1,
            "inputs": {"customer": f"c{i}", "income": "lots"},
            "reasons": [{"column": "income", "rule": "type", "value": "lots"}],
        }
    return {
        **base,
        "model": "credit-risk",
        "version": 1,
        "route": "champion",
        "latency_ms": 1.5,
        "cached": False,
        "fallback": False,
        "inputs": {"customer": f"c{i}", "income": 1000.0 + i},
        "outputs": {"p": 0.25},
    }


def ids(table: pa.Table) -> list[str]:
    return table.column("request_id").to_pylist()


def by_id(*gone: str) -> Callable[[pa.Table], pa.ChunkedArray]:
    return lambda table: pc.is_in(table.column("request_id"), pa.array(list(gone), pa.string()))


def segments(root: Path, kind: str) -> list[Path]:
    folder = _logfiles.segments_dir(root, kind)
    return sorted(p for p in folder.iterdir() if p.suffix in (".seg", ".open"))


def parts(root: Path, kind: str) -> list[Path]:
    return sorted(_logfiles.kind_dir(root, kind).rglob("*.parquet"))


def mixed_log(root: Path, kind: str) -> None:
    """Two endpoints over three days: one segment compacted, one not."""
    with RecordLog(root, kind=kind) as log:
        log.append(
            [
                record(kind, i, endpoint=("credit", "fraud")[i % 2], days=i % 3)
                for i in (1, 2, 3, 4, 5, 6)
            ]
        )
    compact(root, kind=kind)
    with RecordLog(root, kind=kind) as log:
        log.append(
            [
                record(kind, i, endpoint=("credit", "fraud")[i % 2], days=i % 3)
                for i in (7, 8, 9, 10)
            ]
        )


def without(table: pa.Table, *gone: str) -> list[dict[str, Any]]:
    return [row for row in table.to_pylist() if row["request_id"] not in gone]


# ---------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("kind", KINDS)
def test_removes_exactly_the_selected_rows_of_every_kind(tmp_path: Path, kind: str) -> None:
    mixed_log(tmp_path, kind)
    before = read_log(tmp_path, kind=kind)
    (segment,) = segments(tmp_path, kind)
    lines = segment.read_bytes().splitlines()

    result = rewrite_log(tmp_path, kind, drop=by_id("req-2", "req-5", "req-8"))

    assert result.rows_removed == 3
    assert read_log(tmp_path, kind=kind).to_pylist() == without(before, "req-2", "req-5", "req-8")
    # the segment keeps the other records' lines byte for byte
    assert segment.read_bytes().splitlines() == [line for line in lines if b'"req-8"' not in line]


def test_a_file_left_empty_is_deleted_and_the_others_are_untouched(tmp_path: Path) -> None:
    mixed_log(tmp_path, "predictions")
    untouched = {p: p.stat().st_mtime_ns for p in parts(tmp_path, "predictions")}

    result = rewrite_log(tmp_path, "predictions", drop=by_id("req-1", "req-4"))

    # each was alone in its part
    assert (result.rows_removed, result.files_rewritten, result.files_deleted) == (2, 0, 2)
    left = parts(tmp_path, "predictions")
    assert len(left) == len(untouched) - 2
    assert all(p.stat().st_mtime_ns == untouched[p] for p in left)
    assert [f.action for f in result.files] == ["deleted", "deleted"]


def test_an_endpoint_limits_what_goes(tmp_path: Path) -> None:
    mixed_log(tmp_path, "predictions")
    before = read_log(tmp_path)

    result = rewrite_log(
        tmp_path, "predictions", endpoint="fraud", drop=lambda t: pc.equal(t.column("row"), 0)
    )

    assert result.rows_removed == 5
    assert read_log(tmp_path).to_pylist() == [
        r for r in before.to_pylist() if r["endpoint"] == "credit"
    ]


def test_a_dry_run_counts_and_changes_nothing(tmp_path: Path) -> None:
    mixed_log(tmp_path, "predictions")
    with RecordLog(tmp_path) as live:
        live.append([record("predictions", 11)])
        files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

        result = rewrite_log(
            tmp_path, "predictions", drop=by_id("req-1", "req-8", "req-11"), dry_run=True
        )

        assert (result.rows_removed, result.dry_run) == (3, True)
        assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files


def test_before_keeps_later_rows_and_leaves_later_parts_unread(tmp_path: Path) -> None:
    mixed_log(tmp_path, "predictions")
    before = read_log(tmp_path)
    compact(tmp_path)
    later = [p for p in parts(tmp_path, "predictions") if "date=2026-03-03" in str(p)]
    for part in later:
        part.write_bytes(b"not parquet")  # reading it would fail

    result = rewrite_log(
        tmp_path, "predictions", drop=lambda t: pc.is_valid(t.column("ts")), before=T0 + DAY
    )

    assert result.rows_removed == 3  # every row of 2026-03-01
    for part in later:
        part.unlink()
    remaining = read_log(tmp_path).to_pylist()
    assert remaining == [r for r in before.to_pylist() if r["ts"] >= T0 + DAY and r["ts"].day != 3]


def test_a_drop_that_is_not_a_mask_is_refused(tmp_path: Path) -> None:
    mixed_log(tmp_path, "predictions")
    with pytest.raises(UsageError, match="boolean"):
        rewrite_log(tmp_path, "predictions", drop=lambda t: t.column("row"))
    with pytest.raises(UsageError, match="values for a table"):
        rewrite_log(tmp_path, "predictions", drop=lambda t: pa.array([True]))


def test_a_log_that_does_not_exist_is_nothing_to_do(tmp_path: Path) -> None:
    assert rewrite_log(tmp_path, "feedback", drop=by_id("x")).rows_removed == 0


def test_workspaces_on_either_database_rewrite_alike(workspace: Workspace) -> None:
    mixed_log(workspace.root, "feedback")
    before = read_log(workspace.root, kind="feedback")
    rewrite_log(workspace.root, "feedback", drop=by_id("req-3", "req-9"))
    assert read_log(workspace.root, kind="feedback").to_pylist() == without(
        before, "req-3", "req-9"
    )


# ---------------------------------------------------------------------------- crashes


class Crash(Exception):
    pass


def crowded_log(root: Path) -> None:
    """Three records per endpoint and date: a compacted segment and a sealed one."""
    for numbers in (range(1, 13), range(13, 21)):
        with RecordLog(root) as log:
            log.append(
                [
                    record("predictions", i, endpoint=("credit", "fraud")[i % 2], days=i // 2 % 2)
                    for i in numbers
                ]
            )
        if numbers.start == 1:
            compact(root)


GONE = ("req-1", "req-2", "req-4", "req-5", "req-9", "req-13", "req-14", "req-20")


@pytest.mark.parametrize("after", [0, 1, 2, 3])  # of the four files that change
def test_a_crash_between_files_leaves_a_readable_log_and_a_rerun_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    crowded_log(tmp_path)
    before = read_log(tmp_path)
    real = _logrewrite._Rewrite._replace
    calls = 0

    def crashing(self: Any, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > after:
            raise Crash
        real(self, *args)

    monkeypatch.setattr(_logrewrite._Rewrite, "_replace", crashing)
    with pytest.raises(Crash):
        rewrite_log(tmp_path, "predictions", drop=by_id(*GONE))

    # each file is old or new: every record kept is there once, nothing else appears
    halfway = read_log(tmp_path).to_pylist()
    assert [r for r in halfway if r["request_id"] not in GONE] == without(before, *GONE)
    assert {r["request_id"] for r in halfway} <= set(ids(before))
    assert len(halfway) > len(before) - len(GONE)  # the crash left work undone

    monkeypatch.setattr(_logrewrite._Rewrite, "_replace", real)
    rewrite_log(tmp_path, "predictions", drop=by_id(*GONE))
    assert read_log(tmp_path).to_pylist() == without(before, *GONE)


@pytest.mark.parametrize("kind", ["segment", "part"])
def test_a_crash_while_writing_a_file_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    crowded_log(tmp_path)
    before = read_log(tmp_path)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def half_then_crash(*args: Any, **_: Any) -> None:
        temp = Path(args[-1] if kind == "part" else args[0])
        temp.write_bytes(b"half a fi")
        raise Crash

    if kind == "segment":
        monkeypatch.setattr(_logrewrite, "_write_lines", half_then_crash)
        drop = by_id("req-13")
    else:
        monkeypatch.setattr(_logrewrite.pq, "write_table", half_then_crash)
        drop = by_id("req-1")
    with pytest.raises(Crash):
        rewrite_log(tmp_path, "predictions", drop=drop)

    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files
    assert read_log(tmp_path).equals(before)


def test_a_part_emptied_beside_its_crashed_compactions_segment_hides_nothing(
    tmp_path: Path,
) -> None:
    with RecordLog(tmp_path) as log:
        log.append([record("predictions", 1), record("predictions", 2, days=1)])
    (segment,) = segments(tmp_path, "predictions")
    saved = segment.read_bytes()
    compact(tmp_path)
    segment.write_bytes(saved)  # a compaction that crashed before deleting the segment

    rewrite_log(tmp_path, "predictions", drop=by_id("req-1"))

    assert ids(read_log(tmp_path)) == ["req-2"]
    compact(tmp_path)
    assert ids(read_log(tmp_path)) == ["req-2"]


def test_temporary_files_a_crash_left_are_removed(tmp_path: Path) -> None:
    mixed_log(tmp_path, "predictions")
    (part, *_) = parts(tmp_path, "predictions")
    stale = part.with_name(f".{part.name}.123.abcd.tmp")
    shutil.copy(part, stale)

    rewrite_log(tmp_path, "predictions", drop=by_id("nobody"))

    assert not stale.exists()


# ---------------------------------------------------------------------------- writers


def test_a_live_writers_segment_is_sealed_then_rewritten(tmp_path: Path) -> None:
    with RecordLog(tmp_path) as log:
        log.append([record("predictions", i) for i in (1, 2, 3)])
        (live,) = segments(tmp_path, "predictions")
        assert live.suffix == ".open"

        result = rewrite_log(tmp_path, "predictions", drop=by_id("req-2"))

        assert (result.rows_removed, result.files_skipped) == (1, 0)
        assert not live.exists()
        assert live.with_suffix(".seg").exists()
        log.append([record("predictions", 4)])  # goes on in a new segment
    assert ids(read_log(tmp_path)) == ["req-1", "req-3", "req-4"]
    assert not (_logfiles.kind_dir(tmp_path, "predictions") / _logfiles.SEAL_REQUEST).exists()


def test_a_live_segment_without_rows_to_remove_stays_open(tmp_path: Path) -> None:
    with RecordLog(tmp_path) as log:
        log.append([record("predictions", 1)])
        (live,) = segments(tmp_path, "predictions")
        result = rewrite_log(tmp_path, "predictions", drop=by_id("req-9"))
        assert result.rows_removed == 0
        assert live.exists()


def test_a_writer_that_does_not_answer_is_reported_and_left_alone(tmp_path: Path) -> None:
    with RecordLog(tmp_path) as log:
        log.append([record("predictions", i) for i in (1, 2)])
    (sealed,) = segments(tmp_path, "predictions")
    stuck = sealed.with_suffix(".open")
    os.rename(sealed, stuck)
    content = stuck.read_bytes()
    holder = os.open(stuck, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a writer alive, but not looking
    try:
        result = rewrite_log(tmp_path, "predictions", drop=by_id("req-1"), seal_timeout=0)
    finally:
        os.close(holder)

    assert (result.rows_removed, result.files_skipped, result.rows_skipped) == (0, 1, 1)
    assert stuck.read_bytes() == content
    # once its writer is gone, the next run removes the row
    assert rewrite_log(tmp_path, "predictions", drop=by_id("req-1")).rows_removed == 1
    assert ids(read_log(tmp_path)) == ["req-2"]


def test_writers_and_compaction_run_on_during_rewrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers append and a compaction loops while rewrites remove the odd records:
    every even record is read back once, and no odd record written before the last
    rewrite started is left."""
    monkeypatch.setattr(log_module, "SEAL_CHECK_SECONDS", 0.01)
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []
    # The writer keeps at most AHEAD records ahead of the next rewrite's turn: it still
    # appends while a rewrite runs, but a fast disk does not let it write thousands of
    # records (and segments) for each rewrite to go through.
    ahead, turn = 30, threading.Condition()
    allowed = [60]

    def write() -> None:
        try:
            with RecordLog(tmp_path, max_segment_bytes=2000) as log:
                i = 0
                while not stop.is_set() or i < 200:
                    with turn:
                        turn.wait_for(lambda i=i: i < allowed[0] or stop.is_set())
                    i += 1
                    log.append([record("predictions", i)])
                    written.append(i)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    def compacting() -> None:
        try:
            while not stop.is_set():
                compact(tmp_path)
                stop.wait(0.005)  # not a spin: leave the cores to the others
        except BaseException as exc:
            errors.append(exc)

    def odd(table: pa.Table) -> pa.Array:
        numbers = pc.cast(pc.utf8_slice_codeunits(table.column("request_id"), 4), pa.int64())
        return pc.equal(pc.bit_wise_and(numbers, 1), 1)

    threads = [threading.Thread(target=write), threading.Thread(target=compacting)]
    for thread in threads:
        thread.start()
    try:
        removed = 0
        for n in range(1, 6):  # five rewrites, each after 30 more records
            deadline = time.monotonic() + 60
            while len(written) < 30 * n and not errors:
                assert time.monotonic() < deadline, "the writer stalled"
                stop.wait(0.001)
            removed += rewrite_log(tmp_path, "predictions", drop=odd).rows_removed
            with turn:
                allowed[0] = 30 * (n + 1) + ahead
                turn.notify_all()
        stop.set()
        with turn:
            turn.notify_all()
        assert removed >= 60
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors
    final = len(written)
    rewrite_log(tmp_path, "predictions", drop=odd)
    assert sorted(int(i[4:]) for i in ids(read_log(tmp_path))) == list(range(2, final + 1, 2))


# ---------------------------------------------------------------------------- property


@settings(max_examples=40, deadline=None)
@given(
    layout=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3)),
        min_size=1,
        max_size=12,
    ),
    gone=st.sets(st.integers(0, 11)),
    compacted=st.integers(0, 3),
)
def test_rewriting_is_filtering(
    layout: list[tuple[str, int]], gone: set[int], compacted: int
) -> None:
    """Whatever records, segments and parts: the log reads as before, less the rows."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        batches = [layout[i::3] for i in range(3)]
        number = 0
        for n, batch in enumerate(batches):
            with RecordLog(root) as log:
                rows = []
                for endpoint, days in batch:
                    rows.append(record("predictions", number, endpoint=endpoint, days=days))
                    number += 1
                if rows:
                    log.append(rows)
            if n < compacted:
                compact(root)
        before = read_log(root)
        names = [f"req-{i}" for i in gone]

        result = rewrite_log(root, "predictions", drop=by_id(*names))

        assert read_log(root).to_pylist() == without(before, *names)
        assert result.rows_removed == sum(n in names for n in ids(before))
