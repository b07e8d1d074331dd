"""Scoring CSV and Parquet files on a Ray cluster (``setpoint predict --engine ray``).

The unit of work is the local engine's (``batch/score.py``): the reader's batches,
``check_file`` against the model version's contract, ``score_table``. What changes is
who runs it. The driver checks the run as the local engine does (``prepare``), reads
the first batch of each input (a file the contract refuses whole is refused before
any work is sent out), and cuts the inputs into *pieces*: a Parquet file every
``PIECE_BATCHES`` reader batches (131,072 rows; a piece reads only the row groups
that hold its rows), a CSV file whole (Arrow cannot start a CSV part-way, and its
types are widened over the whole file: split a large CSV, or convert it to Parquet,
to score it in parallel). A piece is cut where the local engine's batches are, so a
model is given the same rows at a time by both engines: the same values, to the bit
(a linear model's BLAS sums in another order for another batch).

A Ray Data pipeline (``from_items`` over the pieces, ``map_batches`` on a pool of
actors) scores them: each actor opens the workspace from the driver's settings (the
database URL and the artifact URI; the driver's ``AWS_*`` variables go along, for an
object store), loads the model version once, and for each piece writes
the scored rows to ``part-<piece>.parquet`` and the refused rows, with their
reasons, to ``rejected-<piece>.parquet``, in a staging folder beside the output; it
returns the piece's counts. A file is written under a temporary name and renamed when
whole, so a piece scored twice (a task retried after its node was lost, or an actor
restarted) replaces its own part, never adds a second: the output is complete and
without duplicates after the loss of a worker node.

The inputs are read by the actors rather than by Ray Data's ``read_parquet`` and
``read_csv`` so that a piece is exactly what the local engine reads: the same
normalised types, a CSV's types widened over the whole file, and each refused row's
number in its file (the quarantine's ``_row``), which a piece knows from its first row.

At the end the driver appends the parts in input order to the one output file, a
batch at a time (the local engine's ``_append``), and keeps each input's refused rows
as one quarantine batch, as the local engine does: the same rows, columns, values and
order. That last pass is sequential, on the driver.

On more than one machine every node must reach the workspace (PostgreSQL and shared
artifact storage: a cluster on several machines is refused otherwise) and the input
and output files (a shared file system).
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setpoint.batch.score import (
    Job,
    Progress,
    ScoringRun,
    _append,
    prepare,
    record_quarantine,
    score_table,
)
from setpoint.data import io, reader
from setpoint.data._sink import RowSink
from setpoint.data.contract import Contract
from setpoint.data.filecheck import FileValidation, check_file
from setpoint.data.pii import PiiPolicy
from setpoint.data.reader import read_batches
from setpoint.errors import ConfigError, SetpointError, UsageError
from setpoint.models.predictor import Predictor

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

PIECE_BATCHES = 2  # reader batches (of 65,536 rows) in a piece of a Parquet file
INSTALL = "pip install 'setpoint[ray]'"


@dataclass(frozen=True)
class Piece:
    """A part of one input that one task scores."""

    index: int  # its place in the run: its output part is named after it
    path: str
    first_row: int  # its first row's number in the file
    stop: int | None  # the row after its last (Parquet); None: to the end (CSV)
    batch_rows: int  # the reader's batch, so that the batches are the local engine's
    weight: float  # the bytes of input it stands for (progress)


def plan(paths: Sequence[Path]) -> list[Piece]:
    """The pieces of ``paths``, in input order: a CSV file whole, a Parquet file cut
    every ``PIECE_BATCHES`` reader batches (the batches the local engine scores, so
    that both engines give a model the same rows at a time, and so the same values)."""
    batch_rows = reader.PARQUET_BATCH_ROWS
    piece_rows = PIECE_BATCHES * batch_rows
    pieces: list[Piece] = []
    for path in paths:
        size = max(path.stat().st_size, 1)
        if path.suffix.lower() == ".csv":
            pieces.append(Piece(len(pieces), str(path), 0, None, batch_rows, size))
            continue
        rows = pq.ParquetFile(path).metadata.num_rows
        for first in range(0, rows, piece_rows):
            stop = min(first + piece_rows, rows)
            weight = size * (stop - first) / rows
            pieces.append(Piece(len(pieces), str(path), first, stop, batch_rows, weight))
    return pieces


def predict_files(
    ws: Workspace,
    model: str,
    given: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    workers: int | None = None,
    block_size: int | None = None,
    progress: Progress | None = None,
    address: str | None = None,
) -> ScoringRun:
    """Score the files ``given`` with ``model`` into ``output`` on the Ray cluster at
    ``address`` (default: ``$RAY_ADDRESS``, else a local cluster started for the run;
    a driver already connected uses its cluster), on ``workers`` actors (default:
    one per CPU of the cluster)."""
    ray = _import_ray()
    started = time.perf_counter()
    job = prepare(ws, model, given, output)
    for path in job.paths:
        _first_batch(job, path, block_size)
    pieces = plan(job.paths)
    update = progress or (lambda _step, _fraction: None)
    update("starting Ray", 0.0)
    ours = _connect(ray, address)
    try:
        check_cluster(_machines(ray), ws)
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        run = ScoringRun(
            job.ref, [str(p) for p in job.paths], str(job.target), workers=n, engine="ray"
        )
        staging = _staging(job.target)
        try:
            done = _score(ws, job, pieces, staging, n, block_size, update)
            _finish(ws, job, pieces, done, staging, run)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if ours:
            ray.shutdown()
    run.seconds = time.perf_counter() - started
    update(f"{run.n_rows:,} rows", 1.0)
    return run


def _staging(target: Path) -> Path:
    """A hidden folder beside the output for the pieces' files (on a cluster of
    several machines, the output's folder must be one they all see)."""
    try:
        return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.ray-"))
    except OSError as exc:
        raise UsageError(f"cannot write beside {target} ({exc.strerror})") from None


def check_cluster(machines: set[str], ws: Workspace) -> None:
    """Refuse a cluster on several machines that cannot all reach the workspace."""
    if len(machines) < 2:
        return
    local = []
    if ws.db.is_sqlite:
        local.append("database_url (a PostgreSQL URL; SETPOINT_DATABASE_URL)")
    for name, store in (("artifacts_uri", ws.artifacts), ("data_uri", ws.data_store)):
        if store._local:
            local.append(f"{name} (shared storage, e.g. s3://...; SETPOINT_{name.upper()})")
    if local:
        raise ConfigError(
            f"the Ray cluster spans {len(machines)} machines, which cannot reach this "
            f"workspace's local files; set {' and '.join(local)} in setpoint.toml, or "
            "score on one machine with --engine local"
        )


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise UsageError(
            f"the Ray engine needs Ray ({exc}); install it with: {INSTALL}, "
            "or score on this machine with --engine local"
        ) from None
    return ray


def _connect(ray: Any, address: str | None) -> bool:
    """Connect this process to the cluster; whether it started Ray for this run."""
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address or os.environ.get("RAY_ADDRESS") or None,
            logging_level=logging.WARNING,
            log_to_driver=False,
            include_dashboard=False,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or os.environ.get("RAY_ADDRESS")
        raise UsageError(
            f"cannot reach the Ray cluster at {where} ({exc}); check --address "
            "(or RAY_ADDRESS), or leave both unset to start a local cluster"
        ) from None
    return True


def _machines(ray: Any) -> set[str]:
    return {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}


def _first_batch(job: Job, path: Path, block_size: int | None) -> None:
    """Read the first batch of ``path`` on the driver: a bad file, or a file whose
    columns the contract refuses, is refused before anything is sent out."""

    def check(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
        first = next(batches)  # the reader says so for a file without rows
        outcome = check_file(
            job.contract, schema, iter([first]), mode="quarantine", keep_soft=True, limit=20
        )
        if outcome.refused:
            raise outcome.error(f"the contract of {job.ref} ({path})")

    read_batches(path, check, block_size=block_size)


def _score(
    ws: Workspace,
    job: Job,
    pieces: list[Piece],
    staging: Path,
    workers: int,
    block_size: int | None,
    update: Progress,
) -> dict[int, dict[str, Any]]:
    """Every piece scored on the cluster: its counts, by piece."""
    from ray.data import ActorPoolStrategy, DataContext, from_items

    with warnings.catch_warnings():
        # Ray Data's first context sets options of its own that it deprecates (with
        # a DeprecationWarning each): nothing a user can change.
        warnings.simplefilter("ignore", DeprecationWarning)
        context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    items = from_items(
        [{"piece": pickle.dumps(p)} for p in pieces], override_num_blocks=len(pieces)
    )
    scored = items.map_batches(
        Scorer,
        batch_size=1,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=min(workers, len(pieces))),
        num_cpus=1,
        runtime_env=_store_access(),
        fn_constructor_kwargs={
            "root": str(ws.root),
            "settings": ws.settings.to_dict(),
            "ref": job.ref,
            "contract": job.contract,
            "pii": job.pii,
            "staging": str(staging),
            "block_size": block_size,
        },
    )
    total = sum(p.weight for p in pieces)
    done: dict[int, dict[str, Any]] = {}
    rows, weight = 0, 0.0
    for result in scored.iter_rows():
        if result["error"] is not None:  # a mistake in the data, said as itself
            raise pickle.loads(result["error"])
        index = int(result["piece"])
        if index not in done:  # a piece is one row, once: said twice, counted once
            done[index] = result
            rows += int(result["n_rows"])
            weight += pieces[index].weight
            update(f"{rows:,} rows done", weight / total)
    missing = [p.index for p in pieces if p.index not in done]
    if missing:  # Ray Data answers each input once; a gap would be its bug, not ours
        raise RuntimeError(f"Ray returned no result for piece(s) {missing[:10]}")
    return done


def _store_access() -> dict[str, Any] | None:
    """The driver's ``AWS_*`` variables for the actors: with the workspace's settings
    they are how it reaches an object store (endpoint, credentials, region), so the
    actors reach the same store as the driver, as the same identity."""
    found = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    return {"env_vars": found} if found else None


class Scorer:
    """The actor's callable: the model version loaded once, then pieces (pickled
    :class:`Piece`, one per call) scored, each written to files named after it."""

    def __init__(
        self,
        root: str,
        settings: dict[str, Any],
        ref: str,
        contract: Contract,
        pii: PiiPolicy,
        staging: str,
        block_size: int | None,
    ) -> None:
        from setpoint.settings import Settings
        from setpoint.workspace import Workspace

        self.ref, self.contract, self.pii = ref, contract, pii
        self.staging, self.block_size = Path(staging), block_size
        # A workspace this node cannot reach is said by the first piece, as the
        # error itself: an actor dying in its constructor would be retried.
        self.failure: SetpointError | None = None
        try:
            # The driver's settings as they are, not this machine's environment's.
            given = Settings.resolve(None, settings, environ={})
            with Workspace(Path(root), given) as ws:
                self.predictor = ws.load_model(ref)
        except SetpointError as exc:
            self.failure = exc

    def __call__(self, batch: pa.Table) -> pa.Table:
        results = []
        for given in batch.column("piece").to_pylist():
            piece: Piece = pickle.loads(given)
            try:
                if self.failure is not None:
                    raise self.failure
                results.append(self.score(piece))
            except SetpointError as exc:  # Ray would keep only its text
                results.append({"piece": piece.index, "error": pickle.dumps(exc)})
        return pa.Table.from_pylist(results, schema=RESULT)

    def score(self, piece: Piece) -> dict[str, Any]:
        """Score ``piece`` into ``part-<index>.parquet`` (and its refused rows into
        ``rejected-<index>.parquet``): its counts."""
        path = Path(piece.path)
        scored = _Scored(self.predictor, self.staging / part_name(piece.index))
        rejected = self.staging / f".{uuid.uuid4().hex}.rejected"

        def consume(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> FileValidation:
            scored.restart()  # a CSV read again from its start (widened types)
            rejected.unlink(missing_ok=True)
            outcome = check_file(
                self.contract,
                schema,
                batches,
                mode="quarantine",
                keep_soft=True,
                limit=20,
                pii=self.pii,
                rejected=rejected,
                accepted=scored,
            )
            if outcome.refused:
                raise outcome.error(f"the contract of {self.ref} ({path})")
            return outcome

        try:
            if piece.stop is None:
                outcome = read_batches(path, consume, block_size=self.block_size)
            else:
                outcome = consume(*_rows(path, piece.first_row, piece.stop, piece.batch_rows))
            scored.commit()
            if rejected.exists():
                os.replace(rejected, self.staging / rejected_name(piece.index))
        finally:
            scored.discard()
            rejected.unlink(missing_ok=True)
        return {
            "piece": piece.index,
            "n_rows": outcome.n_rows,
            "n_scored": scored.rows,
            "n_refused": outcome.n_refused,
            "n_batches": scored.batches,
            "summary": pickle.dumps(outcome.refused_summary()),
            "node": _node_id(),
            "error": None,
        }


RESULT = pa.schema(
    [
        ("piece", pa.int64()),
        ("n_rows", pa.int64()),
        ("n_scored", pa.int64()),
        ("n_refused", pa.int64()),
        ("n_batches", pa.int64()),
        ("summary", pa.binary()),
        ("node", pa.string()),
        ("error", pa.binary()),  # a SetpointError, pickled
    ]
)


def part_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


def rejected_name(index: int) -> str:
    return f"rejected-{index:06d}.parquet"


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


class _Scored:
    """What ``check_file`` writes a piece's accepted rows to: each batch scored and
    written to the piece's part (under a temporary name until ``commit``)."""

    def __init__(self, predictor: Predictor, path: Path) -> None:
        self.predictor, self.path = predictor, path
        self.sink: RowSink | None = None
        self.rows = self.batches = 0

    def restart(self) -> None:
        self.discard()
        self.sink = RowSink(self.path)
        self.rows = self.batches = 0

    def write(self, rows: pa.Table) -> None:
        assert self.sink is not None
        scored = score_table(self.predictor, rows)
        self.sink.write(scored)
        self.rows += scored.num_rows
        self.batches += 1

    def commit(self) -> None:
        assert self.sink is not None
        self.sink.commit()

    def discard(self) -> None:
        if self.sink is not None:
            self.sink.discard()


def _rows(
    path: Path, start: int, stop: int, batch_rows: int
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Rows ``start`` to ``stop`` of a Parquet file, as the reader gives the whole
    file: normalised batches of ``batch_rows`` rows counted from the file's start
    (``start`` is a multiple of ``batch_rows``). Only the row groups holding them are
    read."""
    file = pq.ParquetFile(path, pre_buffer=False)  # see data/reader.py
    schema = io.normalise_schema(file.schema_arrow)
    groups: list[int] = []
    offset = position = 0
    for group in range(file.metadata.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        if offset < stop and offset + rows > start:
            position = offset if not groups else position
            groups.append(group)
        offset += rows

    def sliced() -> Iterator[pa.RecordBatch]:
        at = position
        for batch in file.iter_batches(batch_size=batch_rows, row_groups=groups):
            low, high = max(start - at, 0), min(stop - at, batch.num_rows)
            at += batch.num_rows
            if high > low:
                yield io.normalise_batch(batch.slice(low, high - low), schema)

    return schema, io.rechunk(sliced(), schema, batch_rows)


def _finish(
    ws: Workspace,
    job: Job,
    pieces: list[Piece],
    done: dict[int, dict[str, Any]],
    staging: Path,
    run: ScoringRun,
) -> None:
    """The parts appended in input order to the output; each input's refused rows
    kept as one quarantine batch; the counts added up into ``run``."""
    for path in job.paths:
        mine = [p for p in pieces if p.path == str(path)]
        n_rows = sum(int(done[p.index]["n_rows"]) for p in mine)
        n_refused = sum(int(done[p.index]["n_refused"]) for p in mine)
        run.n_rows += n_rows
        run.n_quarantined += n_refused
        if n_refused and job.dataset is not None:
            rejected = _rejected(mine, staging)
            summary = merged_summary([pickle.loads(done[p.index]["summary"]) for p in mine])
            batch = record_quarantine(ws, job.dataset, n_rows, n_refused, summary, rejected, path)
            run.quarantine.append(batch)
    final = RowSink(job.target)
    try:
        # The header, even when no row is accepted: the first part's columns.
        final.write(pq.read_schema(staging / part_name(0)).empty_table())
        for piece in pieces:
            result = done[piece.index]
            run.n_scored += int(result["n_scored"])
            run.n_batches += int(result["n_batches"])
            _append(staging / part_name(piece.index), final)
        final.commit()
    finally:
        final.discard()


def _rejected(pieces: list[Piece], staging: Path) -> Path:
    """One file of the refused rows of an input's ``pieces``, each ``_row`` its
    number in the file."""
    target = staging / f"rejected-{uuid.uuid4().hex}.parquet"
    writer: pq.ParquetWriter | None = None
    try:
        for piece in pieces:
            part = staging / rejected_name(piece.index)
            if not part.exists():
                continue
            rows = pq.read_table(part)
            index = rows.column_names.index("_row")
            rows = rows.set_column(index, "_row", pc.add(rows.column("_row"), piece.first_row))
            if writer is None:
                writer = pq.ParquetWriter(target, rows.schema, compression="zstd")
            writer.write_table(rows.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return target


def merged_summary(summaries: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The refused rows' reasons over an input's pieces: counts added per (column,
    rule), the first piece's example kept, most frequent first (as for one file)."""
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    for summary in summaries:
        for s in summary:
            entry = kept.setdefault((s["column"], s["rule"]), {**s, "count": 0})
            entry["count"] += s["count"]
    return sorted(kept.values(), key=lambda s: (-s["count"], s["column"], s["rule"]))
