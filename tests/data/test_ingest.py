"""A file streamed in batches and the same rows in memory: one hash, one profile."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setpoint.data import io
from setpoint.data.ingest import Ingested, ingest
from setpoint.data.profile import profile_table
from setpoint.data.reader import read_batches


def streamed(path: Path, out: Path, block_size: int) -> Ingested:
    return read_batches(path, lambda s, b: ingest(s, b, out), block_size=block_size)


def whole_table_hash(table: pa.Table) -> str:
    """The definition before streaming: the whole table as one IPC batch."""
    table = io.normalise(table)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(-(10**6), 10**6)),
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
        st.one_of(st.none(), st.sampled_from(["a", "b", "ccc", "é"])),
    ),
    min_size=1,
    max_size=300,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=rows, block_size=st.sampled_from([64, 256, 4096]))
def test_streamed_and_in_memory_agree(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[object, ...]], block_size: int
) -> None:
    folder = tmp_path_factory.mktemp("f")
    table = pa.table(
        {
            "i": pa.array([r[0] for r in rows], pa.int64()),
            "x": pa.array([r[1] for r in rows], pa.float64()),
            "c": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    path = folder / "t.csv"
    pa_csv.write_csv(table, path)
    found = streamed(path, folder / "t.parquet", block_size)
    loaded = io.read_file(path)
    assert found.content_hash == io.content_hash(loaded)
    assert found.profile == profile_table(loaded)
    # a table of at most HASH_ROWS rows hashes as before streaming
    assert found.content_hash == whole_table_hash(loaded)


def test_many_hash_batches_agree_and_the_parquet_holds_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(io, "HASH_ROWS", 64)
    rng = np.random.default_rng(3)
    n = 5000
    values = rng.normal(size=n)
    values[rng.random(n) < 0.1] = np.nan
    table = pa.table({"x": pa.array(values, from_pandas=True), "c": rng.choice(["u", "v", "w"], n)})
    path = tmp_path / "t.csv"
    pa_csv.write_csv(table, path)
    found = streamed(path, tmp_path / "t.parquet", block_size=300)
    loaded = io.read_file(path)
    assert found.content_hash == io.content_hash(loaded)
    assert found.profile == profile_table(loaded)
    assert pa.parquet.read_table(tmp_path / "t.parquet").equals(loaded)


def test_long_text_streamed_and_in_memory_agree(tmp_path: Path) -> None:
    """Long values go to the bounded summaries (a HyperLogLog past the byte cap, keys
    of a bounded length) the same way whether the rows stream or sit in memory."""
    rng = np.random.default_rng(7)
    words = np.array(["alpha", "beta", "gamma", "délta"])
    text = [" ".join(rng.choice(words, 800)) for _ in range(1500)]
    table = pa.table({"t": text, "c": [f"{'long label ' * 10}{i % 3}" for i in range(1500)]})
    path = tmp_path / "t.csv"
    pa_csv.write_csv(table, path)
    found = streamed(path, tmp_path / "t.parquet", block_size=1 << 16)
    loaded = io.read_file(path)
    assert found.profile == profile_table(loaded)
    assert abs(found.profile.column("t").distinct - 1500) <= 20  # a HyperLogLog: 7 MB of text
    assert found.profile.column("c").top == [(f"{'long label ' * 10}{i}", 500) for i in range(3)]
