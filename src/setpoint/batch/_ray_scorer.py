"""The actor of a Ray run (``batch/ray_engine.py``): the model version loaded once,
then each piece read (a local file, or through fsspec: ``_pieces.opener``), checked
against the contract and scored with the local engine's functions, its rows written
to files named after it in the run's staging folder or prefix (``_staging.py``).

Nothing here imports Ray at import time: the driver imports this module to name the
class to Ray Data, whatever the engine.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from setpoint.batch._pieces import (
    Piece,
    log_name,
    opener,
    part_name,
    piece_rows,
    rejected_name,
)
from setpoint.batch._staging import Staging
from setpoint.batch.endpoint_log import LogLines
from setpoint.batch.score import MARKS, score_table
from setpoint.data._sink import PREDICT_COMPRESSION, RowSink
from setpoint.data.contract import Contract
from setpoint.data.filecheck import FileValidation, check_file
from setpoint.data.pii import PiiPolicy
from setpoint.data.reader import read_batches
from setpoint.errors import SetpointError
from setpoint.models.predictor import Predictor


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
        keep: tuple[str, ...] = (),
        log: LogLines | None = None,
    ) -> None:
        from setpoint.settings import Settings
        from setpoint.workspace import Workspace

        self.ref, self.contract, self.pii = ref, contract, pii
        self.keep, self.log = keep, log
        self.staging, self.block_size = Staging(staging), block_size
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
        path = piece.path
        here = self.staging.scratch  # the staging folder, or this node's for a store
        scored = _Scored(self.predictor, here / part_name(piece.index), self.keep)
        if self.log is not None:  # lines for the endpoint's log, appended by the driver
            # A piece starts at a reader batch: its batches are numbered as the local
            # engine numbers the file's.
            first = piece.first_row // piece.batch_rows
            lines = here / f".{uuid.uuid4().hex}.log"  # published as log_name(index)
            scored.logging(self.log, lines, piece.file, first)
        rejected = here / f".{uuid.uuid4().hex}.rejected"
        open_ = opener(piece.path)

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
                passthrough=self.keep,
                mark_soft=self.log is not None,
            )
            if outcome.refused:
                raise outcome.error(f"the contract of {self.ref} ({path})")
            return outcome

        try:
            if piece.stop is None:
                outcome = read_batches(path, consume, block_size=self.block_size, opener=open_)
            else:
                with ExitStack() as stack:
                    file = path if open_ is None else stack.enter_context(open_())
                    rows = piece_rows(file, piece.first_row, piece.stop, piece.batch_rows)
                    outcome = consume(*rows)
            scored.commit()
            self.staging.publish(scored.path, part_name(piece.index))
            if scored.log_path is not None:
                self.staging.publish(scored.log_path, log_name(piece.index))
            if rejected.exists():
                self.staging.publish(rejected, rejected_name(piece.index))
        finally:
            scored.discard()
            rejected.unlink(missing_ok=True)
            if scored.log_path is not None:  # published (moved) unless it failed
                scored.log_path.unlink(missing_ok=True)
        return {
            "piece": piece.index,
            "n_rows": outcome.n_rows,
            "n_scored": scored.rows,
            "n_refused": outcome.n_refused,
            "n_batches": scored.batches,
            "n_logged": scored.logged,
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
        ("n_logged", pa.int64()),
        ("summary", pa.binary()),
        ("node", pa.string()),
        ("error", pa.binary()),  # a SetpointError, pickled
    ]
)


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


class _Scored:
    """What ``check_file`` writes a piece's accepted rows to: each batch scored and
    written to the piece's part (under a temporary name until ``commit``), and with
    :meth:`logging`, its rows' prediction-log lines to a file of their own."""

    def __init__(self, predictor: Predictor, path: Path, keep: tuple[str, ...] = ()) -> None:
        self.predictor, self.path, self.keep = predictor, path, keep
        self.sink: RowSink | None = None
        self.rows = self.batches = self.logged = 0
        self.log: LogLines | None = None
        self.log_path: Path | None = None
        self._lines: BinaryIO | None = None
        self._file = self._first_batch = 0

    def logging(self, log: LogLines, path: Path, file: int, first_batch: int) -> None:
        """Also write each scored batch's log lines to ``path``: batch ``first_batch``
        onwards of input ``file``."""
        self.log, self.log_path = log, path
        self._file, self._first_batch = file, first_batch

    def restart(self) -> None:
        self.discard()
        self.sink = RowSink(self.path, PREDICT_COMPRESSION)  # read back once by the driver
        self.rows = self.batches = self.logged = 0
        if self.log_path is not None:
            self._lines = open(self.log_path, "wb")  # noqa: SIM115 (closed in commit/discard)

    def write(self, rows: pa.Table) -> None:
        assert self.sink is not None
        marks = None
        if MARKS in rows.column_names:  # the soft rules each row broke, for the log
            marks = rows.column(MARKS)
            rows = rows.drop_columns([MARKS])
        scored = score_table(self.predictor, rows, passthrough=self.keep)
        self.sink.write(scored)
        if self.log is not None and self._lines is not None:
            request_id = self.log.request_id(self._file, self._first_batch + self.batches)
            data, count = self.log.lines(scored, request_id, self.log.clock(), violations=marks)
            self._lines.write(data)
            self.logged += count
        self.rows += scored.num_rows
        self.batches += 1

    def commit(self) -> None:
        assert self.sink is not None
        self.sink.commit()
        if self._lines is not None:
            self._lines.close()
            self._lines = None

    def discard(self) -> None:
        if self.sink is not None:
            self.sink.discard()
        if self._lines is not None:
            self._lines.close()
            self._lines = None
