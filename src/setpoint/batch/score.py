"""Scoring CSV and Parquet files with a model version, in bounded memory (local engine).

``setpoint predict`` and :meth:`Workspace.predict_files` read each input file as
Arrow record batches (``data/reader.py``), check every batch against the model
version's contract as a server does (``keep_soft``: only what would refuse a row at
serving refuses it here), keep the refused rows in the quarantine with their reasons
(one quarantine batch per input file, as ``data validate --mode quarantine`` does),
and score the accepted rows with the native predictor. The output gets the accepted
rows' columns, then ``prediction`` and, for a classifier, ``proba_<class>`` per
class (the native response's ``prediction`` and ``probabilities``, as columns).

Memory is bounded by the batches in flight, not the input: the reading thread
reads and checks a batch and hands its accepted rows to a pool of ``workers``
threads; a writer thread writes the scored batches in the order they came, and at
most ``2 * workers`` wait for it, so the output's rows are in the input's order.

Threads, not processes: the predictors do their work in native code that releases
the GIL (numpy's BLAS for linear models, LightGBM's and XGBoost's C++ with their own
OpenMP threads, scikit-learn's Cython trees), and threads share the one loaded
predictor and hand Arrow tables over without pickling each batch twice. Measured on
this session's 2-core machine, 1M rows x 20 features from Parquet to Parquet (zstd),
two alternated runs each: a LightGBM classifier (100 trees) 204k-224k rows/s with 1
worker, 238k-247k with 2 (its bare predict_proba on the same batches: 374k-536k);
a logistic regression 418k-532k with 1, 425k-443k with 2 (bare: 2.5M-6.9M), so
equal within the machine's noise. The parts, timed alone for the 1M rows: reading
~1.1 s, the contract check 0.05 s, LightGBM's predict_proba ~3.2 s (on both cores
already, by OpenMP), writing Parquet ~1.1 s. So the pipeline overlaps them and the two
cores are full; one worker per core stays the default, where more cores and a
single-threaded model (a linear one) would gain from more workers.

A CSV file whose column types widen part-way is read again from its start
(``read_batches``): each input is written to a part of its own first (the output
itself when there is only one input), so a re-read discards only that part.
"""

from __future__ import annotations

import glob
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from setpoint.data import io
from setpoint.data._sink import RowSink, check_output
from setpoint.data.contract import Contract
from setpoint.data.filecheck import FileValidation, check_file
from setpoint.data.pii import PiiPolicy
from setpoint.data.quarantine import QuarantineBatch
from setpoint.data.reader import BLOCK_SIZE, read_batches
from setpoint.errors import NotReadyError, UsageError
from setpoint.models.predictor import Predictor

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

Progress = Callable[[str, float], None]

# Flavors whose predicted label is by construction the most probable class: one call
# gives both (as serving's ``predict_rows``; a scikit-learn model's predict may differ
# from the argmax, so it is asked for both).
_ARGMAX_FLAVORS = frozenset({"lightgbm", "xgboost"})
_GLOB = frozenset("*?[")


@dataclass
class ScoringRun:
    """What a batch scoring run read, scored, quarantined and wrote."""

    model: str
    inputs: list[str]
    output: str
    workers: int
    engine: str = "local"
    n_rows: int = 0
    n_scored: int = 0
    n_quarantined: int = 0
    n_batches: int = 0
    seconds: float = 0.0
    quarantine: list[QuarantineBatch] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.n_rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "inputs": self.inputs,
            "output": self.output,
            "engine": self.engine,
            "workers": self.workers,
            "n_rows": self.n_rows,
            "n_scored": self.n_scored,
            "n_quarantined": self.n_quarantined,
            "n_batches": self.n_batches,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "quarantine": [q.to_dict() for q in self.quarantine],
        }


def expand(given: str | Path | Sequence[str | Path]) -> list[Path]:
    """The input files: a path, a glob (sorted by name) or a list of either; each
    with a suffix the reader knows, before anything is read."""
    items = [given] if isinstance(given, str | Path) else list(given)
    paths: list[Path] = []
    for item in items:
        text = str(item)
        if _GLOB & set(text) and not Path(text).exists():
            matches = sorted(glob.glob(os.path.expanduser(text)))
            if not matches:
                raise UsageError(f"{text}: no file matches; check the path and the pattern")
            paths += [Path(m) for m in matches if Path(m).is_file()]
        else:
            paths.append(Path(text).expanduser())
    for path in paths:
        if path.suffix.lower() not in io.FORMATS:
            raise UsageError(
                f"{path}: unsupported file type {path.suffix!r}; give a .csv or .parquet file",
            )
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    if not paths:
        raise UsageError(f"{given}: no file matches; check the path and the pattern")
    return paths


def predict_arrays(predictor: Predictor, rows: Any) -> tuple[npt.NDArray[Any], Any]:
    """Labels (or numbers) and class probabilities (None for a regressor) of ``rows``."""
    if predictor.task == "classification" and predictor.flavor in _ARGMAX_FLAVORS:
        proba = predictor.predict_proba(rows)
        if proba is not None and predictor.classes is not None:
            return np.asarray(predictor.classes)[np.argmax(proba, axis=1)], proba
    proba = predictor.predict_proba(rows)
    return np.asarray(predictor.predict(rows)), proba


def output_names(predictor: Predictor) -> list[str]:
    """The columns scoring adds: ``prediction``, then ``proba_<class>`` per class."""
    classes = predictor.classes if predictor.task == "classification" else None
    return ["prediction", *(f"proba_{c}" for c in classes or [])]


def score_table(predictor: Predictor, rows: pa.Table) -> pa.Table:
    """``rows`` with the predictor's answers as columns (the unit of work of both
    engines: the Ray engine's ``map_batches`` is to call this too)."""
    if rows.num_rows == 0:
        return _with_outputs(predictor, rows, None, None)
    # Values far out (1e308) overflow inside a model: a warning, not a failed batch.
    with np.errstate(over="ignore", invalid="ignore"):
        labels, proba = predict_arrays(predictor, rows)
    return _with_outputs(predictor, rows, labels, proba)


def _with_outputs(predictor: Predictor, rows: pa.Table, labels: Any, proba: Any) -> pa.Table:
    names = output_names(predictor)
    if labels is None:  # no rows: the columns' types from the model's classes
        types = [_label_type(predictor), *([pa.float64()] * (len(names) - 1))]
        columns = [pa.array([], type=t) for t in types]
    else:
        columns = [pa.array(labels)]
        if len(names) > 1:
            matrix = np.asarray(proba, dtype=np.float64)
            columns += [pa.array(matrix[:, i]) for i in range(len(names) - 1)]
    for name, column in zip(names, columns, strict=True):
        rows = rows.append_column(name, column)
    return rows


def _label_type(predictor: Predictor) -> pa.DataType:
    if predictor.task != "classification" or not predictor.classes:
        return pa.float64()
    return pa.array(predictor.classes).type


class _ScoringSink:
    """What ``check_file`` writes the accepted rows to: each batch is scored on the
    pool, and a writer thread of its own writes the scored batches to ``sink`` in the
    order they came, so reading and checking (this thread), scoring (the pool) and
    writing (the writer: Parquet's encoding and compression release the GIL) overlap.
    At most ``2 * workers`` batches wait for the writer; past that, ``write`` waits."""

    def __init__(self, pool: ThreadPoolExecutor, workers: int, predictor: Predictor) -> None:
        self.pool = pool
        self.predictor = predictor
        self.limit = 2 * workers
        self.queue: queue.Queue[Future[pa.Table] | None] = queue.Queue(self.limit)
        self.writer: threading.Thread | None = None
        self.sink: RowSink | None = None
        self.error: BaseException | None = None
        self.stopping = False
        self.batches = 0
        self.scored = 0

    def restart(self, sink: RowSink) -> None:
        """Write to ``sink`` from now on, counting from zero (a file read again)."""
        self.cancel()
        self.sink = sink
        self.batches = self.scored = 0
        self.error, self.stopping = None, False
        self.queue = queue.Queue(self.limit)
        self.writer = threading.Thread(target=self._write_all, name="setpoint-score-writer")
        self.writer.start()

    def write(self, rows: pa.Table) -> None:
        if self.error is not None:
            raise self.error
        self.batches += 1
        self.queue.put(self.pool.submit(score_table, self.predictor, rows))

    def drain(self) -> None:
        """Wait for every batch to be written; the first failure, if any, is raised."""
        self._stop()
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        """Stop without writing what is still waiting."""
        self.stopping = True
        self._stop()

    def _stop(self) -> None:
        if self.writer is not None:
            self.queue.put(None)
            self.writer.join()
            self.writer = None

    def _write_all(self) -> None:
        """The writer: scored batches in order; after a failure, or once cancelled, it
        only takes what comes (cancelling it) so that ``write`` never waits forever."""
        while (future := self.queue.get()) is not None:
            if self.error is not None or self.stopping:
                future.cancel()
                continue
            try:
                scored = future.result()
                assert self.sink is not None
                self.sink.write(scored)
                self.scored += scored.num_rows
            except BaseException as exc:  # raised in the reading thread
                self.error = exc


def predict_files(
    ws: Workspace,
    model: str,
    given: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    workers: int | None = None,
    block_size: int | None = None,
    progress: Progress | None = None,
    engine: str = "local",
    address: str | None = None,
) -> ScoringRun:
    """Score the files ``given`` (a path, a glob, or a list) with ``model``
    (``NAME@VERSION``, ``NAME@ALIAS``, ``models:/...``) into ``output``; ``engine``
    ``"ray"`` scores them on a Ray cluster (``batch/ray_engine.py``, at ``address``)."""
    if engine == "ray":
        from setpoint.batch.ray_engine import predict_files as on_ray

        return on_ray(
            ws,
            model,
            given,
            output,
            workers=workers,
            block_size=block_size,
            progress=progress,
            address=address,
        )
    if engine != "local":
        raise UsageError(f"engine {engine!r}: use local or ray")
    started = time.perf_counter()
    job = prepare(ws, model, given, output)
    target, paths = job.target, job.paths
    n = max(1, workers or os.cpu_count() or 1)
    run = ScoringRun(job.ref, [str(p) for p in paths], str(target), workers=n)
    update = progress or (lambda _step, _fraction: None)
    sizes = [max(p.stat().st_size, 1) for p in paths]
    total = sum(sizes)
    with ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(n, thread_name_prefix="setpoint-score"))
        if len(paths) == 1:
            sinks: list[Callable[[], RowSink]] = [lambda: RowSink(target)]
            final = None
        else:
            final = RowSink(target)
            stack.callback(final.discard)  # a no-op once committed
            parts = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.parts-"))
            stack.callback(shutil.rmtree, parts, ignore_errors=True)
            sinks = [
                lambda i=i: RowSink(parts / f"part-{i}.parquet")  # type: ignore[misc]
                for i in range(len(paths))
            ]
        done = 0
        for path, size, sink_for in zip(paths, sizes, sinks, strict=True):

            def step(fraction: float, done: int = done, size: int = size) -> None:
                update(f"{run.n_rows:,} rows done", (done + size * fraction) / total)

            file = _FileRun(ws, job.ref, job.contract, job.predictor, pool, n, job.pii, job.dataset)
            sink = file.score(path, sink_for, block_size, step, run)
            try:
                sink.commit()
            finally:
                sink.discard()
            if final is not None:
                _append(sink.path, final)
            done += size
        if final is not None:
            final.commit()
    run.seconds = time.perf_counter() - started
    update(f"{run.n_rows:,} rows", 1.0)
    return run


@dataclass
class _FileRun:
    """One input file scored: its batches checked, scored and written to a sink of its
    own, its refused rows quarantined."""

    ws: Workspace
    ref: str
    contract: Contract
    predictor: Predictor
    pool: ThreadPoolExecutor
    workers: int
    pii: PiiPolicy
    dataset: str | None

    def score(
        self,
        path: Path,
        sink_for: Callable[[], RowSink],
        block_size: int | None,
        progress: Callable[[float], None],
        run: ScoringRun,
    ) -> RowSink:
        """The sink holding ``path``'s scored rows, not yet committed."""
        scorer = _ScoringSink(self.pool, self.workers, self.predictor)
        sinks: list[RowSink] = []
        size = max(path.stat().st_size, 1)
        with self.ws.data_store.staging() as rejected:

            def consume(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> FileValidation:
                scorer.cancel()
                for sink in sinks:  # a CSV read again from its start (widened types)
                    sink.discard()
                sinks[:] = [sink_for()]
                scorer.restart(sinks[0])
                counted = _counting(batches, path, size, block_size, progress)
                try:
                    outcome = check_file(
                        self.contract,
                        schema,
                        counted,
                        mode="quarantine",
                        keep_soft=True,
                        limit=20,
                        pii=self.pii,
                        rejected=rejected,
                        accepted=scorer,
                    )
                    if outcome.refused:
                        raise outcome.error(f"the contract of {self.ref} ({path})")
                    scorer.drain()
                except BaseException:
                    scorer.cancel()
                    raise
                return outcome

            try:
                outcome = read_batches(path, consume, block_size=block_size)
            except BaseException:
                for sink in sinks:
                    sink.discard()
                raise
            run.n_rows += outcome.n_rows
            run.n_scored += scorer.scored
            run.n_batches += scorer.batches
            run.n_quarantined += outcome.n_refused
            if outcome.n_refused and self.dataset is not None:
                run.quarantine.append(self._quarantine(outcome, rejected, path))
        return sinks[0]

    def _quarantine(self, outcome: FileValidation, rejected: Path, path: Path) -> QuarantineBatch:
        assert self.dataset is not None
        return record_quarantine(
            self.ws,
            self.dataset,
            outcome.n_rows,
            outcome.n_refused,
            outcome.refused_summary(),
            rejected,
            path,
        )


def record_quarantine(
    ws: Workspace,
    dataset: str,
    n_rows: int,
    n_refused: int,
    summary: list[dict[str, Any]],
    rejected: Path,
    path: Path,
) -> QuarantineBatch:
    """The refused rows of the input ``path`` (staged at ``rejected``) kept in the
    quarantine of ``dataset`` as one batch, with their reasons."""
    artifact = ws.data_store.put_file(rejected)
    version = ws.datasets.get(dataset)
    with ws.db.write() as conn:
        return ws.quarantine.record(
            conn,
            contract_id=ws.datasets.contract_id(conn, version),
            dataset=version.ref,
            n_rows=n_rows,
            n_rejected=n_refused,
            summary=summary,
            artifact=artifact,
            source=str(path),
        )


@dataclass(frozen=True)
class Job:
    """What a run scores, checked before anything is read: the input files, the
    output, the model version with its contract and predictor."""

    target: Path
    paths: list[Path]
    ref: str
    contract: Contract
    predictor: Predictor
    pii: PiiPolicy
    dataset: str | None  # whose quarantine keeps the refused rows


def prepare(
    ws: Workspace, model: str, given: str | Path | Sequence[str | Path], output: str | Path
) -> Job:
    """The run's inputs, output and model, each refused with the fix when unusable
    (the checks both engines make before reading)."""
    target = Path(output).expanduser()
    check_output(target)
    paths = expand(given)
    if any(p.resolve() == target.resolve() for p in paths):
        raise UsageError(f"{target} is also an input; write the scored rows to another file")
    version = ws.model(model)
    if version.contract is None:
        raise NotReadyError(f"{version.ref} has no contract; register it with reference data")
    contract = Contract.from_dict(version.contract)
    predictor = ws.load_model(version.ref)
    clash = [n for n in output_names(predictor) if n in contract.columns]
    if clash:
        raise UsageError(
            f"{version.ref}'s contract has column(s) {', '.join(clash)}, the names of its "
            "outputs; rename them in the data and the contract"
        )
    pii = ws.pii_policy(contract)
    return Job(target, paths, version.ref, contract, predictor, pii, _dataset(version.lineage))


def _dataset(lineage: dict[str, Any]) -> str | None:
    """The dataset version the model was trained on (or registered with), whose
    quarantine keeps the rows its contract refuses."""
    used = lineage.get("datasets") or []
    for role in ("train", "reference"):
        for entry in used:
            if entry.get("role") == role:
                return str(entry["ref"])
    return None


def _append(part: Path, final: RowSink) -> None:
    """The rows of a finished part, batch by batch, onto the output."""
    try:
        file = pq.ParquetFile(part, pre_buffer=False)  # see data/reader.py
        for batch in file.iter_batches(batch_size=1 << 16):
            final.write(pa.Table.from_batches([batch]))
    finally:
        part.unlink(missing_ok=True)


def _counting(
    batches: Iterator[pa.RecordBatch],
    path: Path,
    size: int,
    block_size: int | None,
    progress: Callable[[float], None],
) -> Iterator[pa.RecordBatch]:
    """``batches``, telling ``progress`` the fraction of the file read so far: exact
    for Parquet (rows of the metadata), estimated for CSV (one block per batch)."""
    parquet = path.suffix.lower() != ".csv"
    total_rows = pq.ParquetFile(path).metadata.num_rows if parquet else 0
    rows = 0
    for seen, batch in enumerate(batches, start=1):
        rows += batch.num_rows
        if parquet:
            progress(rows / max(total_rows, 1))
        else:
            progress(min(seen * (block_size or BLOCK_SIZE) / size, 1.0))
        yield batch
