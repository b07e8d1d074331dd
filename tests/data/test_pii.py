"""Personal data outside the dataset store: a keyed hash per workspace, or nothing."""

from __future__ import annotations

import errno
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from setpoint.data import pii
from setpoint.data.contract import ColumnRule, Contract
from setpoint.data.pii import SECRET_FILE, PiiPolicy, canonical, workspace_secret
from setpoint.errors import InvalidSpecError, StoreError

CONTRACT = Contract(
    columns={
        "income": ColumnRule(kind="numeric"),
        "customer": ColumnRule(kind="integer", pii=True),
        "email": ColumnRule(kind="string", pii="drop"),
    }
)


def test_one_value_is_one_hash_whatever_its_type() -> None:
    policy = PiiPolicy.of(CONTRACT, b"k" * 32)
    # A number from JSON, a float from Parquet and text from the command line.
    assert policy.hash(123) == policy.hash(123.0) == policy.hash("123")
    assert policy.hash(123) != policy.hash(124)
    assert policy.hash(True) == policy.hash("true")
    assert policy.hash(None) is None
    assert policy.hash(float("nan")) is None
    hashed = policy.hash(123)
    assert hashed is not None
    assert hashed.startswith("pii:")
    assert len(hashed) == 36
    # Another workspace's secret gives other hashes: they cannot be joined across.
    assert PiiPolicy.of(CONTRACT, b"x" * 32).hash(123) != policy.hash(123)


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_integral_floats_read_as_their_integer(value: int) -> None:
    assert canonical(float(value)) == canonical(value) == str(value)


def test_a_record_and_a_table_keep_each_column_as_the_contract_says() -> None:
    policy = PiiPolicy.of(CONTRACT, b"k" * 32)
    record = {"income": 52_000.0, "customer": 42, "email": "ana@example.test", "other": 1}
    assert policy.record(record) == {"income": 52_000.0, "customer": policy.hash(42), "other": 1}
    table = pa.table({"income": [1.0, 2.0], "customer": [42, None], "email": ["a", "b"]})
    kept = policy.table(table)
    assert kept.column_names == ["income", "customer"]
    assert kept.column("customer").to_pylist() == [policy.hash(42), None]
    assert kept.column("income").to_pylist() == [1.0, 2.0]


def test_the_contract_says_hash_or_drop_in_yaml() -> None:
    again = Contract.from_yaml(CONTRACT.to_yaml())
    assert (again.columns["customer"].pii, again.columns["customer"].pii_mode) == (True, "hash")
    assert (again.columns["email"].pii, again.columns["email"].pii_mode) == (True, "drop")
    assert not again.columns["income"].pii
    text = "columns:\n  customer: {kind: integer, pii: hash}\n  email: {kind: string, pii: drop}\n"
    parsed = Contract.from_yaml(text)
    assert parsed.columns["customer"].pii_mode == "hash"
    assert parsed.columns["email"].pii_mode == "drop"
    with pytest.raises(InvalidSpecError, match=r"columns.customer.pii: must be true, false, hash"):
        Contract.from_yaml("columns:\n  customer: {kind: integer, pii: mask}\n")


def test_the_secret_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = workspace_secret(tmp_path)
    assert workspace_secret(tmp_path) == first
    path = tmp_path / SECRET_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    path.write_bytes(b"short")
    with pytest.raises(StoreError, match="restore it from a backup"):
        workspace_secret(tmp_path)


def _secret_of(root: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(workspace_secret(Path(root)))


def test_processes_that_make_the_secret_at_once_agree_on_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    workers = [context.Process(target=_secret_of, args=(str(tmp_path), results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    secrets = {results.get(timeout=30) for _ in workers}
    for worker in workers:
        worker.join(timeout=30)
    assert len(secrets) == 1
    assert os.path.getsize(tmp_path / SECRET_FILE) == 32


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *_: object) -> None:
        self.raw.close()

    def write(self, _data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_secret_that_could_not_be_written_leaves_nothing_under_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fdopen
    monkeypatch.setattr(pii.os, "fdopen", lambda fd, *a, **k: _FullDisk(real(fd, *a, **k)))
    with pytest.raises(OSError, match="No space left"):
        workspace_secret(tmp_path)
    monkeypatch.undo()
    assert len(workspace_secret(tmp_path)) == 32  # made now, not refused as damaged
    assert [p.name for p in (tmp_path / SECRET_FILE).parent.iterdir()] == ["pii.key"]
