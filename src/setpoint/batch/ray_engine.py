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

A Ray Data pipeline (``from_items`` over the pieces, ``_pieces.py``; ``map_batches``
on a pool of actors, ``_ray_scorer.py``) scores them: each actor opens the workspace
from the driver's settings (the database URL and the artifact URI; the driver's
``AWS_*`` variables go along, for an object store), loads the model version once,
and for each piece writes the scored rows to ``part-<piece>.parquet`` and the
refused rows, with their reasons, to ``rejected-<piece>.parquet``, in a staging
folder beside the output (``_staging.py``: for an output in an object store, a
hidden prefix beside it in the same store); it returns the piece's counts. A file
appears whole or not at all (renamed when whole, or uploaded in one piece to a
store), so a piece scored twice (a task retried after its node was lost, or an
actor restarted) replaces its own part, never adds a second: the output is complete
and without duplicates after the loss of a worker node.

The inputs are read by the actors rather than by Ray Data's ``read_parquet`` and
``read_csv`` so that a piece is exactly what the local engine reads: the same
normalised types, a CSV's types widened over the whole file, and each refused row's
number in its file (the quarantine's ``_row``), which a piece knows from its first row.
An input is a local path or an fsspec URI (``s3://...``), opened by the actors
through fsspec as the local engine opens it (``_pieces.opener``).

At the end the driver appends the parts in input order to the one output, a batch at
a time (the local engine's ``append_part``, into the local engine's sink: a file, or
an object uploaded as it is written), and keeps each input's refused rows as one
quarantine batch, as the local engine does: the same rows, columns, values and
order. That last pass is sequential, on the driver, and reads each part once (from
a store, a download). The staging folder or prefix is removed at the end, also
after a failure.

Through an endpoint, each actor also writes its piece's prediction-log lines
(``endpoint_log.LogLines``) to ``log-<piece>.jsonl`` beside its part, numbering its
batches as the local engine numbers the file's; the driver appends them to the
endpoint's log in input order, then each input's refused rows. A piece scored twice
replaced its own file, so its rows are logged once. ``--keep`` columns ride along as
locally.

On more than one machine every node must reach the workspace (PostgreSQL and shared
artifact storage: a cluster on several machines is refused otherwise) and the inputs
and the output: a shared file system, or an object store (the driver's ``AWS_*``
variables go to the actors). A store the output cannot be written to (a missing
bucket, no credentials, no answer) is said, with the fix, before any work is sent out.
"""

from __future__ import annotations

import logging
import pickle
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setpoint import _ray
from setpoint.batch._pieces import Piece, log_name, part_name, plan, rejected_name
from setpoint.batch._ray_scorer import Scorer
from setpoint.batch._staging import Staging
from setpoint.batch.endpoint_log import EndpointLog
from setpoint.batch.score import (
    Job,
    Progress,
    ScoringRun,
    append_part,
    endpoint_log,
    prepare,
    record_quarantine,
)
from setpoint.batch.sources import Source
from setpoint.data.filecheck import check_file
from setpoint.data.reader import read_batches
from setpoint.errors import UsageError

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

INSTEAD = "score on this machine with --engine local"


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
    endpoint: bool | None = None,
    keep: Sequence[str] = (),
    compression: str | None = None,
) -> ScoringRun:
    """Score the files ``given`` with ``model`` into ``output`` on the Ray cluster at
    ``address`` (default: ``$RAY_ADDRESS``, else a local cluster started for the run;
    a driver already connected uses its cluster), on ``workers`` actors (default:
    one per CPU of the cluster). ``endpoint``, ``keep`` and ``compression`` are the
    local engine's."""
    ray = _ray.import_ray("data", instead=INSTEAD)
    started = time.perf_counter()
    job = prepare(ws, model, given, output, endpoint=endpoint, keep=keep, compression=compression)
    for source in job.files:
        _first_batch(job, source, block_size)
    pieces = plan(job.files)
    update = progress or (lambda _step, _fraction: None)
    update("starting Ray", 0.0)
    ours = _ray.connect(ray, address)
    try:
        _ray.check_shared(ws, _ray.machines(ray), instead=INSTEAD)
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        with job.recording("ray") as (run_id, counts):  # the run's record, as locally
            run = ScoringRun(
                job.ref,
                [f.uri for f in job.files],
                job.output.uri,
                workers=n,
                engine="ray",
                id=run_id,
                endpoint=job.endpoint,
            )
            log = None
            if job.endpoint is not None:
                log = endpoint_log(ws, job.endpoint, job.scoring, run_id)
            staging = Staging.beside(job.output)
            try:
                done = _score(ws, job, pieces, staging, n, block_size, update, log)
                _finish(ws, job, pieces, done, staging, run, log)
            finally:
                staging.remove()
                if log is not None:
                    log.close()
            counts.n_rows, counts.n_scored = run.n_rows, run.n_scored
            counts.n_quarantined = run.n_quarantined
            counts.quarantine = [q.id for q in run.quarantine]
    finally:
        if ours:
            ray.shutdown()
    run.seconds = time.perf_counter() - started
    update(f"{run.n_rows:,} rows", 1.0)
    return run


def _first_batch(job: Job, source: Source, block_size: int | None) -> None:
    """Read the first batch of ``source`` on the driver: a bad file, or a file whose
    columns the contract refuses, is refused before anything is sent out."""
    path = source.uri

    def check(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
        first = next(batches)  # the reader says so for a file without rows
        missing = [n for n in job.scoring.keep if n not in schema.names]
        if missing:  # as the local engine says it
            raise UsageError(
                f"{path}: no column {missing[0]!r} to keep (--keep); its columns: "
                + ", ".join(schema.names)
            )
        outcome = check_file(
            job.contract,
            schema,
            iter([first]),
            mode="quarantine",
            keep_soft=True,
            limit=20,
            passthrough=job.scoring.keep,
        )
        if outcome.refused:
            raise outcome.error(f"the contract of {job.ref} ({path})")

    opener = None if source.local else source.open
    read_batches(path, check, block_size=block_size, opener=opener)


def _score(
    ws: Workspace,
    job: Job,
    pieces: list[Piece],
    staging: Staging,
    workers: int,
    block_size: int | None,
    update: Progress,
    log: EndpointLog | None,
) -> dict[int, dict[str, Any]]:
    """Every piece scored on the cluster: its counts, by piece. With ``log`` (scoring
    through an endpoint), each actor also encodes its rows' log lines."""
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
        runtime_env={"env_vars": _ray.environment()},
        fn_constructor_kwargs={
            "root": str(ws.root),
            "settings": ws.settings.to_dict(),
            "ref": job.ref,
            "contract": job.contract,
            "pii": job.pii,
            "staging": staging.where,
            "block_size": block_size,
            "keep": tuple(job.scoring.keep),
            "log": None if log is None else log.encoder,
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


def _finish(
    ws: Workspace,
    job: Job,
    pieces: list[Piece],
    done: dict[int, dict[str, Any]],
    staging: Staging,
    run: ScoringRun,
    log: EndpointLog | None,
) -> None:
    """The parts appended in input order to the output (the local engine's sink: a
    file, or an object uploaded as it is written); each input's refused rows kept as
    one quarantine batch; with ``log``, each piece's log lines appended to the
    endpoint's log in input order, then each input's refused rows, as the local engine
    logs them; the counts added up into ``run``."""
    for number, source in enumerate(job.files):
        mine = [p for p in pieces if p.file == number]
        n_rows = sum(int(done[p.index]["n_rows"]) for p in mine)
        n_refused = sum(int(done[p.index]["n_refused"]) for p in mine)
        run.n_rows += n_rows
        run.n_quarantined += n_refused
        if log is not None:
            log.begin_file(number)
            for piece in mine:
                if int(done[piece.index]["n_logged"]):
                    log.append_file(staging.fetch(log_name(piece.index)))
        if n_refused and (job.dataset is not None or log is not None):
            refused = [p for p in mine if int(done[p.index]["n_refused"])]
            summary = merged_summary([pickle.loads(done[p.index]["summary"]) for p in mine])
            with ws.data_store.staging() as rejected:  # as the local engine's
                _rejected(refused, staging, rejected)
                if log is not None:
                    log.append_refused(rejected)
                if job.dataset is not None:
                    batch = record_quarantine(
                        ws, job.dataset, n_rows, n_refused, summary, rejected, source.uri
                    )
                    run.quarantine.append(batch)
    final = job.output.sink()  # with the compression asked for
    try:
        for piece in pieces:
            result = done[piece.index]
            run.n_scored += int(result["n_scored"])
            run.n_batches += int(result["n_batches"])
            part = staging.fetch(part_name(piece.index))
            if piece.index == 0:
                # The header, even when no row is accepted: the first part's columns.
                final.write(pq.read_schema(part).empty_table())
            append_part(part, final)  # and removes the part (or its download)
        final.commit()
    finally:
        final.discard()


def _rejected(pieces: list[Piece], staging: Staging, target: Path) -> None:
    """The refused rows of an input's ``pieces`` (those that refused rows) into the
    local file ``target``, each ``_row`` its number in the file."""
    writer: pq.ParquetWriter | None = None
    try:
        for piece in pieces:
            part = staging.fetch(rejected_name(piece.index))
            rows = pq.read_table(part)
            if not staging.local:
                part.unlink()
            index = rows.column_names.index("_row")
            rows = rows.set_column(index, "_row", pc.add(rows.column("_row"), piece.first_row))
            if writer is None:
                writer = pq.ParquetWriter(target, rows.schema, compression="zstd")
            writer.write_table(rows.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()


def merged_summary(summaries: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The refused rows' reasons over an input's pieces: counts added per (column,
    rule), the first piece's example kept, most frequent first (as for one file)."""
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    for summary in summaries:
        for s in summary:
            entry = kept.setdefault((s["column"], s["rule"]), {**s, "count": 0})
            entry["count"] += s["count"]
    return sorted(kept.values(), key=lambda s: (-s["count"], s["column"], s["rule"]))
