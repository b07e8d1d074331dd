"""Scoring CSV and Parquet files with a model version, in bounded memory (local engine).

``setpoint predict`` and :meth:`Workspace.predict_files` read each input file as
Arrow record batches (``data/reader.py``), check every batch against the model
version's contract as a server does (``keep_soft``: only what would refuse a row at
serving refuses it here), keep the refused rows in the quarantine with their reasons
(one quarantine batch per input file, as ``data validate --mode quarantine`` does),
and score the accepted rows with the native predictor. The output gets the accepted
rows' columns, the ``keep`` columns (outside the contract: a row id, never
checked), then ``prediction`` and, for a classifier, ``proba_<class>`` per class (the
native response's ``prediction`` and ``probabilities``, as columns). Inputs and the
output are local paths or fsspec URIs (``sources.py``).

The parts that do not depend on the engine are functions the Ray engine calls too
(``steps.py``, re-exported here): :func:`prepare` (the inputs, the output, the
version or endpoint, its contract and predictor: a :class:`Job`, whose ``recording``
records the run), :func:`score_table` (one batch), ``check_file`` (the contract,
``data/filecheck.py``), :func:`quarantine` (a file's refused rows kept), and
:func:`endpoint_log` (the rows logged to an endpoint, ``endpoint_log.py``); the run's
record is ``runs.py``'s, the target (a model or an endpoint) ``target.py``'s.

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
already, by OpenMP), writing Parquet ~1.1 s (0.4 s since the writers stopped trying
a dictionary on every float column, ``data/_sink.py``; since 2026-12-05 the output is
snappy, not zstd: 0.13 against 0.26 CPU-s). So the pipeline overlaps them and the two
cores are full; one worker per core stays the default, where more cores and a
single-threaded model (a linear one) would gain from more workers. LightGBM keeps its
own OpenMP threads: one thread per scoring call (``num_threads=1``) measured no less
CPU time (docs/benchmarks.md, "Batch scoring").

A CSV file whose column types widen part-way is read again from its start
(``read_batches``): each input is written to a part of its own first (the output
itself when there is only one input), so a re-read discards only that part.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from setpoint.batch import sources
from setpoint.batch.endpoint_log import EndpointLog
from setpoint.batch.runs import RunCounts
from setpoint.batch.steps import (
    Scoring,
    endpoint_log,
    output_names,
    predict_arrays,
    prepare_version,
    quarantine,
    record_quarantine,
    score_table,
)
from setpoint.batch.target import resolve
from setpoint.data._sink import PREDICT_COMPRESSION, RowSink
from setpoint.data.contract import Contract
from setpoint.data.filecheck import FileValidation, check_file
from setpoint.data.pii import PiiPolicy
from setpoint.data.quarantine import QuarantineBatch
from setpoint.data.reader import BLOCK_SIZE, read_batches
from setpoint.errors import UsageError
from setpoint.models.predictor import Predictor

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

Progress = Callable[[str, float], None]

__all__ = [
    "Job",
    "Scoring",
    "ScoringRun",
    "endpoint_log",
    "expand",
    "output_names",
    "predict_arrays",
    "predict_files",
    "prepare",
    "prepare_version",
    "quarantine",
    "record_quarantine",
    "score_table",
]


@dataclass
class ScoringRun:
    """What a batch scoring run read, scored, quarantined and wrote; ``id`` is its
    record in ``scoring_runs`` (``batch/runs.py``)."""

    model: str
    inputs: list[str]
    output: str
    workers: int
    id: int | None = None
    endpoint: str | None = None
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
            "id": self.id,
            "model": self.model,
            "endpoint": self.endpoint,
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
    """The local input files: a path, a glob (sorted by name) or a list of either;
    each with a suffix the reader knows, before anything is read (``sources.expand``
    takes URIs too)."""
    found = sources.expand(given)
    remote = [s.uri for s in found if not s.local]
    if remote:
        raise UsageError(f"{remote[0]}: give a local path here")
    return [Path(s.path) for s in found]


MARKS = "_violations"  # check_file(mark_soft=True)'s column


@dataclass(frozen=True)
class _Pending:
    """A batch on the pool, with the soft rules each of its rows broke (or None)."""

    future: Future[pa.Table]
    marks: pa.ChunkedArray | None


class _ScoringSink:
    """What ``check_file`` writes the accepted rows to: each batch is scored on the
    pool, and a writer thread of its own writes the scored batches to ``sink`` in the
    order they came, so reading and checking (this thread), scoring (the pool) and
    writing (the writer: Parquet's encoding and compression release the GIL) overlap.
    At most ``2 * workers`` batches wait for the writer; past that, ``write`` waits."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        workers: int,
        predictor: Predictor,
        log: EndpointLog | None = None,
        passthrough: Sequence[str] = (),
        score: Callable[..., pa.Table] | None = None,
    ) -> None:
        self.pool = pool
        self.score = score
        self.predictor = predictor
        self.log = log
        # Given to score_table only when there are some (it is replaced in tests).
        self.extra: dict[str, Any] = {"passthrough": passthrough} if passthrough else {}
        self.limit = 2 * workers
        self.queue: queue.Queue[_Pending | None] = queue.Queue(self.limit)
        self.writer: threading.Thread | None = None
        self.sink: sources.Sink | None = None
        self.error: BaseException | None = None
        self.stopping = False
        self.batches = 0
        self.scored = 0

    def restart(self, sink: sources.Sink) -> None:
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
        marks = None
        if MARKS in rows.column_names:  # the soft rules each row broke, for the log
            marks = rows.column(MARKS)
            rows = rows.drop_columns([MARKS])
        score: Callable[..., pa.Table] = self.score or score_table  # tests replace it
        future = self.pool.submit(score, self.predictor, rows, **self.extra)
        self.queue.put(_Pending(future, marks))

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
        while (pending := self.queue.get()) is not None:
            future = pending.future
            if self.error is not None or self.stopping:
                future.cancel()
                continue
            try:
                scored = future.result()
                assert self.sink is not None
                self.sink.write(scored)
                if self.log is not None:
                    self.log.append(scored, violations=pending.marks)
                self.scored += scored.num_rows
            except BaseException as exc:  # raised in the reading thread
                self.error = exc


def predict_files(
    ws: Workspace,
    model: str,
    given: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    endpoint: bool | None = None,
    keep: Sequence[str] = (),
    workers: int | None = None,
    block_size: int | None = None,
    progress: Progress | None = None,
    engine: str = "local",
    address: str | None = None,
    compression: str | None = None,
) -> ScoringRun:
    """Score the files ``given`` (a path, a glob, or a list) with ``model`` into
    ``output``, recorded as a scoring run from start to end. A Parquet output is
    written with ``compression`` (default ``PREDICT_COMPRESSION``, snappy: see
    ``data/_sink.py``). ``model`` is a version
    (``NAME@VERSION``, ``NAME@ALIAS``, ``models:/...``) or a bare name: a model's or an
    endpoint's (``endpoint`` True or False says which; see ``batch/target.py``).
    Through an endpoint, the version it serves scores and the rows are logged to it.
    ``keep`` columns (a row id) are left out of the contract check and copied to the
    output beside the predictions. ``engine`` ``"ray"`` scores them on a Ray cluster
    (``batch/ray_engine.py``, at ``address``)."""
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
            endpoint=endpoint,
            keep=keep,
            compression=compression,
        )
    if engine != "local":
        raise UsageError(f"engine {engine!r}: use local or ray")
    started = time.perf_counter()
    job = prepare(ws, model, given, output, endpoint=endpoint, keep=keep, compression=compression)
    files, target, scoring = job.files, job.output, job.scoring
    n = max(1, workers or os.cpu_count() or 1)
    with job.recording("local") as (run_id, counts), ExitStack() as stack:
        run = ScoringRun(
            job.ref,
            [f.uri for f in files],
            target.uri,
            workers=n,
            id=run_id,
            endpoint=job.endpoint,
        )
        log = None
        if job.endpoint is not None:
            log = endpoint_log(ws, job.endpoint, scoring, run_id)
            stack.callback(log.close)
        _score_files(ws, run, counts, files, target, scoring, log, block_size, progress)
    run.seconds = time.perf_counter() - started
    return run


@dataclass(frozen=True)
class Job:
    """What a run scores, checked before anything is read (by every engine): the
    input files, the output, the model version ready to score, and the endpoint
    scored through (if any)."""

    ws: Workspace
    files: list[sources.Source]
    output: sources.Output
    scoring: Scoring
    endpoint: str | None

    @property
    def ref(self) -> str:
        return self.scoring.ref

    @property
    def contract(self) -> Contract:
        return self.scoring.contract

    @property
    def predictor(self) -> Predictor:
        return self.scoring.predictor

    @property
    def pii(self) -> PiiPolicy:
        return self.scoring.pii

    @property
    def dataset(self) -> str | None:
        return self.scoring.dataset

    @property
    def paths(self) -> list[Path]:
        """The inputs as local paths, for an engine that reads only those."""
        remote = [f.uri for f in self.files if not f.local]
        if remote:
            raise UsageError(f"{remote[0]}: this engine reads local files; give a path")
        return [Path(f.path) for f in self.files]

    @property
    def target(self) -> Path:
        """The output as a local path, for an engine that writes only those."""
        if not self.output.local:
            raise UsageError(f"{self.output.uri}: this engine writes local files; give a path")
        return Path(self.output.path)

    def recording(self, engine: str) -> AbstractContextManager[tuple[int, RunCounts]]:
        """The run's record for the block (``ScoringRuns.recording``): ``running`` now,
        ``succeeded`` or ``failed`` at its end, with the inputs' sizes and hashes."""
        return self.ws.scoring_runs.recording(
            model=self.scoring.name,
            version=self.scoring.version,
            endpoint=self.endpoint,
            engine=engine,
            inputs=[f.describe() for f in self.files],
            output=self.output.uri,
        )


def prepare(
    ws: Workspace,
    model: str,
    given: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    endpoint: bool | None = None,
    keep: Sequence[str] = (),
    compression: str | None = None,
) -> Job:
    """The run's inputs, output (written with ``compression``), model version (or
    endpoint) and kept columns, each refused with the fix when unusable: the checks
    every engine makes before reading."""
    target = sources.output(output, compression)
    files = sources.expand(given)
    if any(_same(f, target) for f in files):
        raise UsageError(f"{target.uri} is also an input; write the scored rows to another file")
    chosen = resolve(ws, model, endpoint=endpoint)
    scoring = prepare_version(ws, chosen.version, keep=keep)
    return Job(ws, files, target, scoring, chosen.endpoint)


def _same(source: sources.Source, target: sources.Output) -> bool:
    if source.local and target.local:
        return Path(source.path).resolve() == Path(target.path).resolve()
    return source.uri == target.uri


def _score_files(
    ws: Workspace,
    run: ScoringRun,
    counts: RunCounts,
    files: list[sources.Source],
    target: sources.Output,
    scoring: Scoring,
    log: EndpointLog | None,
    block_size: int | None,
    progress: Progress | None,
) -> None:
    """The local engine: each file read, checked, scored and written in order."""
    update = progress or (lambda _step, _fraction: None)
    sizes = [max(f.size, 1) for f in files]
    total = sum(sizes)
    with ExitStack() as stack:
        pool = stack.enter_context(
            ThreadPoolExecutor(run.workers, thread_name_prefix="setpoint-score")
        )
        if len(files) == 1:
            sinks: list[Callable[[], sources.Sink]] = [target.sink]
            final = None
        else:
            final = target.sink()
            stack.callback(final.discard)  # a no-op once committed
            # Parts beside a local output (same disk, a rename away); else in the temp folder.
            beside = Path(target.path) if target.local else None
            parts = Path(
                tempfile.mkdtemp(
                    dir=None if beside is None else beside.parent,
                    prefix=f".{Path(target.path).name}.parts-",
                )
            )
            stack.callback(shutil.rmtree, parts, ignore_errors=True)
            # Parts are read back once: written as cheaply as the output's default.
            sinks = [
                lambda i=i: RowSink(parts / f"part-{i}.parquet", PREDICT_COMPRESSION)  # type: ignore[misc]
                for i in range(len(files))
            ]
        done = 0
        for index, (path, size, sink_for) in enumerate(zip(files, sizes, sinks, strict=True)):

            def step(fraction: float, done: int = done, size: int = size) -> None:
                update(f"{run.n_rows:,} rows done", (done + size * fraction) / total)

            if log is not None:
                log.begin_file(index)
            file = _FileRun(ws, scoring, pool, run.workers, log)
            sink = file.score(path, sink_for, block_size, step, run)
            try:
                sink.commit()
            finally:
                sink.discard()
            if final is not None:
                assert isinstance(sink, RowSink)
                append_part(sink.path, final)
            done += size
            counts.n_rows, counts.n_scored = run.n_rows, run.n_scored
            counts.n_quarantined = run.n_quarantined
            counts.quarantine = [q.id for q in run.quarantine]
        if final is not None:
            final.commit()
    update(f"{run.n_rows:,} rows", 1.0)


@dataclass
class _FileRun:
    """One input file scored: its batches checked, scored and written to a sink of its
    own, its refused rows quarantined."""

    ws: Workspace
    scoring: Scoring
    pool: ThreadPoolExecutor
    workers: int
    log: EndpointLog | None = None

    def score(
        self,
        source: sources.Source,
        sink_for: Callable[[], sources.Sink],
        block_size: int | None,
        progress: Callable[[float], None],
        run: ScoringRun,
    ) -> sources.Sink:
        """The sink holding ``source``'s scored rows, not yet committed."""
        scoring = self.scoring
        scorer = _ScoringSink(
            self.pool,
            self.workers,
            scoring.predictor,
            self.log,
            passthrough=scoring.keep,
            score=scoring.score,
        )
        sinks: list[sources.Sink] = []
        size = max(source.size, 1)
        path = source.uri
        with self.ws.data_store.staging() as rejected:

            def consume(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> FileValidation:
                missing = [n for n in scoring.keep if n not in schema.names]
                if missing:
                    raise UsageError(
                        f"{path}: no column {missing[0]!r} to keep (--keep); its columns: "
                        + ", ".join(schema.names)
                    )
                scorer.cancel()
                if sinks and self.log is not None:
                    self.log.again()
                for sink in sinks:  # a CSV read again from its start (widened types)
                    sink.discard()
                sinks[:] = [sink_for()]
                scorer.restart(sinks[0])
                counted = _counting(batches, source, size, block_size, progress)
                try:
                    outcome = check_file(
                        scoring.contract,
                        schema,
                        counted,
                        mode="quarantine",
                        keep_soft=True,
                        limit=20,
                        pii=scoring.pii,
                        rejected=rejected,
                        accepted=scorer,
                        passthrough=scoring.keep,
                        mark_soft=self.log is not None,
                    )
                    if outcome.refused:
                        raise outcome.error(f"the contract of {scoring.ref} ({path})")
                    scorer.drain()
                except BaseException:
                    scorer.cancel()
                    raise
                return outcome

            try:
                opener = None if source.local else source.open
                outcome = read_batches(path, consume, block_size=block_size, opener=opener)
            except BaseException:
                for sink in sinks:
                    sink.discard()
                raise
            run.n_rows += outcome.n_rows
            run.n_scored += scorer.scored
            run.n_batches += scorer.batches
            run.n_quarantined += outcome.n_refused
            if outcome.n_refused and self.log is not None:
                self.log.append_refused(rejected)
            if outcome.n_refused and scoring.dataset is not None:
                run.quarantine.append(quarantine(self.ws, scoring, outcome, rejected, path))
        return sinks[0]


def append_part(part: Path, final: sources.Sink) -> None:
    """The rows of a finished part, batch by batch, onto the output."""
    try:
        file = pq.ParquetFile(part, pre_buffer=False)  # see data/reader.py
        for batch in file.iter_batches(batch_size=1 << 16):
            final.write(pa.Table.from_batches([batch]))
    finally:
        part.unlink(missing_ok=True)


def _counting(
    batches: Iterator[pa.RecordBatch],
    source: sources.Source,
    size: int,
    block_size: int | None,
    progress: Callable[[float], None],
) -> Iterator[pa.RecordBatch]:
    """``batches``, telling ``progress`` the fraction of the file read so far: exact
    for Parquet (rows of the metadata), estimated for CSV (one block per batch)."""
    parquet = source.suffix != ".csv"
    total_rows = 0
    if parquet:
        with source.open() as file:
            total_rows = pq.ParquetFile(file).metadata.num_rows
    rows = 0
    for seen, batch in enumerate(batches, start=1):
        rows += batch.num_rows
        if parquet:
            progress(rows / max(total_rows, 1))
        else:
            progress(min(seen * (block_size or BLOCK_SIZE) / size, 1.0))
        yield batch
