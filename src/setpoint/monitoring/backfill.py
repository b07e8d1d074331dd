"""Backfill: historical traffic written into an endpoint's logs at the data's own time.

A team that adopts setpoint has months of traffic already: a table of the inputs the
model saw, when it saw them, and often the outcomes that came later. Backfilling
writes those rows into the endpoint's prediction log as if the server had answered
them at their own time (and their outcomes into the feedback log), so ``monitor run``
computes windows on the data's time, and alerts, reports and the loop see the history
as they would have seen it live.

Each row is checked against the model's contract as a request would be: rows that
break a hard rule (a value of the wrong type, a missing required value) or any rule of
a column with ``enforce: reject`` are kept in the refused log with the violations
that refused them; rows outside the ranges or categories the model saw are scored
and marked. The model's answers are the
ones it gives now, unless the table holds the answers given then
(``prediction_column``). Request ids are derived from the table's content, and a
backfill of the same table is refused a second time (it would count every row
twice) unless forced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from setpoint.data._batch import to_table
from setpoint.data.contract import Contract
from setpoint.data.io import content_hash
from setpoint.data.pii import PiiPolicy
from setpoint.data.validation import ValidationReport
from setpoint.errors import ConflictError, InvalidDataError, UsageError
from setpoint.serving.lane import predict_rows
from setpoint.serving.log import RecordLog
from setpoint.store import audit
from setpoint.store.schema import endpoints

if TYPE_CHECKING:
    from setpoint.models.predictor import Predictor
    from setpoint.monitoring._sources import Sources

_BATCH_ROWS = 20_000
_BEGIN, _DONE = "monitor.backfill.begin", "monitor.backfill"  # audit actions
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BackfillResult:
    endpoint: str
    model: str  # NAME@VERSION whose answers were logged
    rows: int  # rows in the table
    scored: int  # logged as predictions
    refused: int  # a hard or enforced rule: kept in the refused log with the reasons
    marked: int  # scored, outside what the model saw (a soft rule)
    labels: int  # outcomes written to the feedback log
    first: datetime | None
    last: datetime | None
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "model": self.model,
            "rows": self.rows,
            "scored": self.scored,
            "refused": self.refused,
            "marked": self.marked,
            "labels": self.labels,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "digest": self.digest,
        }


def backfill(
    sources: Sources,
    endpoint: str,
    data: Any,
    *,
    time_column: str,
    label_column: str | None = None,
    prediction_column: str | None = None,
    model: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> BackfillResult:
    """Write ``data`` (a table of past requests) into ``endpoint``'s logs at the times
    in ``time_column``; outcomes in ``label_column`` become feedback given at the same
    time. ``model`` (NAME@VERSION) is the model that served then (default: the one the
    endpoint serves now)."""
    deployment = sources.deployments.get(endpoint)
    version = sources.model(model or deployment.config.model)
    if version.contract is None:
        raise UsageError(f"model {version.ref} has no input contract to check the rows against")
    contract = Contract.from_dict(version.contract)
    pii = sources.pii_policy(contract)
    table = to_table(data)
    named = {"time_column": time_column, "label_column": label_column}
    named["prediction_column"] = prediction_column
    for option, name in named.items():
        if name is not None and name not in table.column_names:
            raise UsageError(
                f"{option} {name!r} is not a column of the table; it has: "
                + ", ".join(table.column_names)
            )
    if table.num_rows == 0:
        raise InvalidDataError("the table has no rows to backfill")
    digest = content_hash(table)
    times = _times(table.column(time_column), time_column)
    features = [name for name in contract.columns if name in table.column_names]
    loaded = sources.load_model(version.ref)
    if prediction_column is not None:
        _check_answers(table.column(prediction_column), prediction_column, loaded, version.ref)
    predictor = None if prediction_column else loaded

    _begin(sources, endpoint, digest, table.num_rows, force)
    counts = {"scored": 0, "refused": 0, "marked": 0, "labels": 0}
    predictions = RecordLog(sources.logs, kind="predictions")
    feedback = RecordLog(sources.logs, kind="feedback")
    refused_log = RecordLog(sources.logs, kind="refused")
    refusals: list[dict[str, Any]] = []
    try:
        for start in range(0, table.num_rows, _BATCH_ROWS):
            batch = table.slice(start, _BATCH_ROWS)
            ids = [f"bf-{digest[:12]}-{start + i:09d}" for i in range(batch.num_rows)]
            when = times[start : start + batch.num_rows]
            inputs = batch.select(features)
            report = contract.validate(inputs)
            refusing, _ = report.split()
            refused = _refusing(refusing, batch.num_rows)
            answers = _answers(predictor, inputs, batch, prediction_column, refused)
            records = _prediction_records(
                endpoint, version.name, version.version, pii, inputs, ids, when, answers
            )
            broken, why = _broken(report), _broken(refusing)
            kept = []
            for i, (record, bad) in enumerate(zip(records, refused, strict=True)):
                if bad:  # kept with the violations that refused it, as the server does
                    refusals.append({**record, "reasons": why[i]})
                    continue
                if i in broken:  # scored, outside what the model saw
                    record["violations"] = [
                        {"column": v["column"], "rule": v["rule"]} for v in broken[i]
                    ]
                    counts["marked"] += 1
                kept.append(record)
            predictions.append(kept)
            refused_log.append([_refusal(r) for r in refusals])
            refusals.clear()
            counts["scored"] += len(kept)
            counts["refused"] += int(refused.sum())
            if label_column is not None:
                labels = _feedback_records(endpoint, batch.column(label_column), ids, when, refused)
                feedback.append(labels)
                counts["labels"] += len(labels)
            if progress is not None:
                progress(min(start + _BATCH_ROWS, table.num_rows), table.num_rows)
    finally:
        predictions.close()
        feedback.close()
        refused_log.close()
    result = BackfillResult(
        endpoint=endpoint,
        model=version.ref,
        rows=table.num_rows,
        first=min(times),
        last=max(times),
        digest=digest,
        **counts,
    )
    with sources.db.write() as conn:
        audit.record(
            conn,
            actor=sources.actor,
            action=_DONE,
            entity_type="monitor",
            entity=endpoint,
            after=result.to_dict(),
        )
    return result


def _begin(sources: Sources, endpoint: str, digest: str, rows: int, force: bool) -> None:
    """Record that this table's backfill begins, unless it began before: checked and
    recorded in one transaction (the endpoint's row locked), so two backfills of one
    table cannot both pass, and one that died half-way is not repeated silently."""
    with sources.db.write() as conn:
        locked = sa.select(endpoints.c.id).where(endpoints.c.name == endpoint)
        conn.execute(locked if sources.db.is_sqlite else locked.with_for_update())
        began = [
            event
            for event in audit.events(
                conn, entity_type="monitor", entity=endpoint, action=_BEGIN, limit=None
            )
            if (event.after or {}).get("digest") == digest
        ]
        if began and not force:
            finished = any(
                (event.after or {}).get("digest") == digest
                for event in audit.events(
                    conn, entity_type="monitor", entity=endpoint, action=_DONE, limit=None
                )
            )
            when = f"{began[0].at:%Y-%m-%d %H:%M} UTC"
            raise ConflictError(
                f"this table was backfilled into {endpoint} already ({when}); its rows "
                "would count twice. Pass --force to add them again"
                if finished
                else f"a backfill of this table into {endpoint} began at {when} and did not "
                "finish: some of its rows may be in the logs already. Pass --force to write "
                "them all again"
            )
        audit.record(
            conn,
            actor=sources.actor,
            action=_BEGIN,
            entity_type="monitor",
            entity=endpoint,
            after={"digest": digest, "rows": rows},
        )


def _times(column: pa.ChunkedArray, name: str) -> list[datetime]:
    """The column as UTC datetimes (naive ones taken as UTC); every value must read."""
    values = pd.to_datetime(column.to_pandas(), utc=True, errors="coerce", format="mixed")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        shown = ", ".join(str(i) for i in bad[:5])
        raise InvalidDataError(
            f"time column {name!r} has {len(bad)} value(s) that are not times "
            f"(rows {shown}{', ...' if len(bad) > 5 else ''}); give ISO 8601 times such as "
            "2026-03-01T12:00:00Z"
        )
    # The log keeps microseconds.
    return [t.floor("us").to_pydatetime().astimezone(UTC) for t in values]


def _refusing(refusing: ValidationReport, n: int) -> np.ndarray:
    """A mask of the rows the server would refuse (a hard rule, or any rule of a column
    with ``enforce: reject``; the rest, ranges and categories, are scored and marked):
    the rows of the report's refusing violations."""
    mask = np.zeros(n, dtype=bool)
    mask[refusing.invalid_rows] = True  # every row for a batch-level violation
    return mask


def _broken(report: ValidationReport) -> dict[int, list[dict[str, Any]]]:
    """Each row's violations (column, rule, value), by row."""
    found: dict[int, list[dict[str, Any]]] = {}
    whole = []
    for v in report.violations.to_pylist():
        reason = {"column": v["column"], "rule": v["rule"], "value": v["value"]}
        if v["row"] is None:
            whole.append(reason)
        else:
            found.setdefault(int(v["row"]), []).append(reason)
    if whole:
        return {row: whole + found.get(row, []) for row in range(report.n_rows)}
    return found


def _refusal(record: dict[str, Any]) -> dict[str, Any]:
    """A refused row as the refused log keeps it: what was sent and why not."""
    keep = ("request_id", "ts", "endpoint", "row", "model", "version", "inputs", "reasons")
    return {name: record[name] for name in keep}


def _check_answers(column: pa.ChunkedArray, name: str, model: Predictor, ref: str) -> None:
    """The answers given then must be answers the model can give: one of its classes,
    or a number for a regressor; anything else would make every later window's
    realized performance meaningless."""
    values = [v for v in column.to_pylist() if v is not None]
    if model.task == "regression":
        wrong = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)]
        expected = "numbers"
    else:
        classes = set(model.classes or [])
        wrong = [v for v in values if v not in classes]
        expected = f"one of its classes ({', '.join(map(repr, model.classes or []))})"
    if wrong:
        shown = ", ".join(repr(v) for v in list(dict.fromkeys(wrong))[:5])
        raise UsageError(
            f"prediction_column {name!r} holds {len(wrong):,} value(s) that are not answers "
            f"of {ref}, which answers {expected}: {shown}; name the column of the answers "
            "it gave (labels, not scores), or leave the option out to score the rows now"
        )


def _answers(
    predictor: Predictor | None,
    inputs: pa.Table,
    batch: pa.Table,
    prediction_column: str | None,
    refused: np.ndarray,
) -> list[dict[str, Any] | None]:
    """Each row's outputs as the log stores them; None for a refused row."""
    if predictor is None:
        assert prediction_column is not None
        given = batch.column(prediction_column).to_pylist()
        return [None if bad else {"prediction": v} for v, bad in zip(given, refused, strict=True)]
    answers: list[dict[str, Any] | None] = [None] * inputs.num_rows
    scored = np.flatnonzero(~refused)
    if not len(scored):
        return answers
    labels, proba = predict_rows(predictor, inputs.take(pa.array(scored)))
    for j, i in enumerate(scored.tolist()):
        output: dict[str, Any] = {"prediction": labels[j]}
        if proba is not None:
            output["probabilities"] = proba[j]
        answers[i] = output
    return answers


def _prediction_records(
    endpoint: str,
    model: str,
    version: int,
    pii: PiiPolicy,
    inputs: pa.Table,
    ids: list[str],
    when: list[datetime],
    answers: list[dict[str, Any] | None],
) -> list[dict[str, Any]]:
    rows = inputs.to_pylist()
    records = []
    for raw, request_id, ts, output in zip(rows, ids, when, answers, strict=True):
        row = pii.record(raw)
        records.append(
            {
                "request_id": request_id,
                "row": 0,
                "ts": ts,
                "endpoint": endpoint,
                "model": model,
                "version": version,
                "route": "champion",
                "inputs": {k: _plain(v) for k, v in row.items()},
                "outputs": output,
                "latency_ms": None,
                "cached": False,
                "fallback": False,
                "source": "backfill",
            }
        )
    return records


def _feedback_records(
    endpoint: str,
    labels: pa.ChunkedArray,
    ids: list[str],
    when: list[datetime],
    refused: np.ndarray,
) -> list[dict[str, Any]]:
    """Outcomes as feedback given at the row's own time; rows without one give none."""
    return [
        {"request_id": request_id, "row": 0, "ts": ts, "endpoint": endpoint, "label": _plain(y)}
        for request_id, ts, y, bad in zip(ids, when, labels.to_pylist(), refused, strict=True)
        if y is not None and not bad and _plain(y) is not None
    ]


def _plain(value: Any) -> Any:
    """A value as JSON has it: NaN is missing; times as ISO 8601 text."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value
