"""Scored rows written to an endpoint's logs, as the online server writes them.

A batch scored through an endpoint is that endpoint's traffic: each scored row
becomes a prediction-log record of the same shape as an online one (``request_id``,
``row``, ``ts``, ``endpoint``, ``model``, ``version``, ``route``, ``inputs``,
``outputs``, ``latency_ms``, ``cached``, ``fallback``; see
``serving/lane.py:log_records``), stamped with the time it was scored, and marked
``"source": "batch"`` with its ``scoring_run``, as backfilled rows are marked
``"source": "backfill"``, and on ``route: batch``: drift and quality count them as
traffic, while a rollout's live comparison, which takes the champion's online
answers, leaves them out. Rows the contract refused go to the refused log with their
reasons, as the server's do. ``monitor run`` then reads them as it reads online
traffic. Personal-data columns are hashed or left out as the contract says.

On the Ray engine, each actor encodes its piece's rows with the run's
:class:`LogLines` (what :class:`EndpointLog` encodes with) into a file beside the
piece's part, and the driver appends those files in input order
(:meth:`EndpointLog.append_file`), then each input's refused rows: a run logs the
same records whichever engine scored it, and a piece Ray scored twice is logged once.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from setpoint.data.pii import PiiPolicy
from setpoint.errors import InvalidDataError, StoreError
from setpoint.serving._logformat import dumps
from setpoint.serving._logremote import LogLocation
from setpoint.serving.log import RecordLog

SOURCE = "batch"
_REFUSED_BATCH_ROWS = 1 << 14
_LINES_CHUNK = 8 << 20


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LogLines:
    """A run's scored rows as an endpoint's prediction-log lines (picklable: a Ray
    actor encodes the rows of its pieces, the driver appends the lines).

    ``features``: the contract's columns, what a record's ``inputs`` hold; ``classes``:
    the classifier's classes in the order of its ``proba_<class>`` columns (None for a
    regressor). Request ids are ``scoring-RUN-FILE-BATCH``; ``row`` is the row in it.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        model: str,
        version: int,
        run_id: int,
        features: list[str],
        classes: list[Any] | None,
        pii: PiiPolicy,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self.version = version
        self.run_id = run_id
        self.features = features
        self.classes = classes
        self.proba = None if classes is None else [f"proba_{c}" for c in classes]
        self.pii = pii
        self.clock = clock

    def request_id(self, file: int, batch: int) -> str:
        return f"scoring-{self.run_id}-{file}-{batch}"

    def lines(
        self,
        scored: pa.Table,
        request_id: str,
        now: datetime,
        *,
        violations: pa.ChunkedArray | None = None,
    ) -> tuple[bytes, int]:
        """The prediction-log records of ``scored``, stamped ``now``, as the log's JSON
        lines; a row that broke soft rules is marked with them (``violations``), as the
        server marks it. The fields every row shares are encoded once, and each row adds
        its own (``row``, ``inputs``, ``outputs``): a dict and a check per row cost
        more than the scoring (``docs/benchmarks.md``)."""
        n = scored.num_rows
        if n == 0:
            return b"", 0
        names = [name for name in self.features if name in scored.column_names]
        inputs = self.pii.table(scored.select(names))
        keys = inputs.column_names
        columns = [column.to_pylist() for column in inputs.columns]
        values = zip(*columns, strict=True) if columns else itertools.repeat((), n)
        labels = scored.column("prediction").to_pylist()
        proba: list[list[float]] | None = None
        if self.proba is not None:
            matrix = np.column_stack(
                [scored.column(name).to_numpy(zero_copy_only=False) for name in self.proba]
            )
            proba = matrix.reshape(n, len(self.proba)).tolist()
        marks: list[str | None] | None = None
        if violations is not None and violations.null_count < len(violations):
            marks = violations.to_pylist()
        shared = dumps(
            {
                "request_id": request_id,
                "ts": now,
                "endpoint": self.endpoint,
                "model": self.model,
                "version": self.version,
                # Not "champion": a rollout's live comparison takes the champion's
                # online answers only, and batch rows would skew it.
                "route": "batch",
                "latency_ms": None,
                "cached": False,
                "fallback": False,
                "source": SOURCE,
                "scoring_run": self.run_id,
            }
        )
        head = shared[:-1] + b',"row":'
        lines = []
        for row, given in enumerate(values):
            output: dict[str, Any] = {"prediction": labels[row]}
            if proba is not None:
                output["probabilities"] = proba[row]
            try:
                encoded = dumps(dict(zip(keys, given, strict=True))), dumps(output)
            except orjson.JSONEncodeError as exc:
                raise InvalidDataError(
                    f"row {row} of a scored batch cannot be logged: {exc}"
                ) from exc
            line = b'%s%d,"inputs":%s,"outputs":%s' % (head, row, *encoded)
            if marks is not None and marks[row] is not None:
                line += b',"violations":' + str(marks[row]).encode()
            lines.append(line + b"}\n")
        return b"".join(lines), n


class EndpointLog:
    """The prediction (and refused) log records of one run's scored rows, encoded by
    ``encoder`` and written to the endpoint's logs at ``root``."""

    def __init__(self, root: Path | LogLocation, encoder: LogLines) -> None:
        self.encoder = encoder
        self.predictions = RecordLog(root, kind="predictions")
        self.refused = RecordLog(root, kind="refused")
        self.n_logged = 0
        self.n_refused = 0
        self._file = 0
        self._batch = 0
        self._position = 0  # rows of the current file seen so far in this pass
        self._skip = 0  # rows of the current file logged by an earlier pass

    # -- the order of a file's batches ---------------------------------------------------

    def begin_file(self, index: int) -> None:
        """The batches that follow are those of input file ``index``."""
        self._file, self._batch, self._position, self._skip = index, 0, 0, 0

    def again(self) -> None:
        """The current file is read again from its start (a CSV whose types widened):
        the rows logged already are not logged twice."""
        self._skip = max(self._skip, self._position)
        self._position = 0

    # -- records -----------------------------------------------------------------------

    def append(self, scored: pa.Table, *, violations: pa.ChunkedArray | None = None) -> None:
        """Log a scored batch (the rows of the file, in order, with the outputs);
        ``violations``: per row, the soft contract rules it broke (JSON text
        ``[{column, rule}]``, null where none; ``check_file(mark_soft=True)``)."""
        start, self._position = self._position, self._position + scored.num_rows
        if self._position <= self._skip:
            return
        if start < self._skip:
            scored = scored.slice(self._skip - start)
            if violations is not None:
                violations = violations.slice(self._skip - start)
        encoder = self.encoder
        request_id = encoder.request_id(self._file, self._batch)
        self._batch += 1
        data, count = encoder.lines(scored, request_id, encoder.clock(), violations=violations)
        if count:
            self.predictions.append_lines(data, count)
            self.n_logged += count

    def append_file(self, path: Path) -> None:
        """Log the lines a Ray actor encoded for a piece (a file of the log's JSON
        lines, :meth:`LogLines.lines`), a few MiB at a time; the file is removed."""
        try:
            with open(path, "rb") as file:
                tail = b""
                while chunk := file.read(_LINES_CHUNK):
                    data = tail + chunk
                    end = data.rfind(b"\n") + 1
                    data, tail = data[:end], data[end:]
                    if data:
                        count = data.count(b"\n")
                        self.predictions.append_lines(data, count)
                        self.n_logged += count
        finally:
            path.unlink(missing_ok=True)
        if tail:
            raise StoreError(f"{path} ends in a cut line: the piece's log lines are damaged")

    def append_refused(self, rejected: Path) -> None:
        """Log the rows a contract refused, from the quarantine's file of them (``_row``
        in the file, ``_reasons``; personal data already as the contract says)."""
        encoder = self.encoder
        file = pq.ParquetFile(rejected, pre_buffer=False)
        names = [n for n in encoder.features if n in file.schema_arrow.names]
        for batch in file.iter_batches(
            batch_size=_REFUSED_BATCH_ROWS, columns=[*names, "_row", "_reasons"]
        ):
            now = encoder.clock()
            table = pa.Table.from_batches([batch])
            inputs = table.select(names).to_pylist()
            rows = table.column("_row").to_pylist()
            reasons = table.column("_reasons").to_pylist()
            records = [
                {
                    "request_id": f"scoring-{encoder.run_id}-{self._file}-refused",
                    "ts": now,
                    "endpoint": encoder.endpoint,
                    "row": row,
                    "model": encoder.model,
                    "version": encoder.version,
                    "inputs": values,
                    "reasons": json.loads(why),
                    "source": SOURCE,
                    "scoring_run": encoder.run_id,
                }
                for values, row, why in zip(inputs, rows, reasons, strict=True)
            ]
            if records:
                self.refused.append(records)
                self.n_refused += len(records)

    def close(self) -> None:
        self.predictions.close()
        self.refused.close()
