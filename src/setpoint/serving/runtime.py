"""One endpoint at run time: its loaded model, its micro-batcher, and what a batch does.

A batch is validated against the model's contract once, with Arrow, and each
violation is traced back to the request (and the row within it) it came from. The
valid rows are predicted in one call; the records of what was answered go to the
prediction log before anyone is answered. The loaded model is swapped as a whole
(`swap`) between batches, so a batch is never split across two versions.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from setpoint.data._batch import to_table
from setpoint.data._fastcheck import FastCheck
from setpoint.data.contract import Contract
from setpoint.errors import ContractViolationError, SetpointError
from setpoint.models.predictor import Predictor
from setpoint.models.registry import ModelVersion
from setpoint.serving.batcher import MicroBatcher
from setpoint.serving.deployments import Deployment

PII_MASK = "***"

# Request ids: a random prefix per process and a counter. Unique across workers and
# restarts like a UUID, at a fraction of uuid4's cost on the hot path.
_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


class Log(Protocol):
    """Where answered predictions go (``serving.log.RecordLog``)."""

    async def append_async(self, records: Sequence[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    predictor: Predictor
    contract: Contract

    @cached_property
    def names(self) -> list[str]:
        return list(self.contract.columns)

    @cached_property
    def pii(self) -> frozenset[str]:
        return frozenset(n for n, rule in self.contract.columns.items() if rule.pii)

    @cached_property
    def fast_check(self) -> FastCheck:
        return FastCheck(self.contract)


@dataclass
class PredictRequest:
    """What a protocol decoded: column -> values, all columns the same length."""

    columns: dict[str, list[Any]]
    n_rows: int
    request_id: str = field(default_factory=lambda: new_request_id())
    received: float = field(default_factory=time.perf_counter)


@dataclass
class Answer:
    request_id: str
    model: str
    version: int
    predictions: list[Any]  # None where a row was rejected (per-row mode)
    probabilities: list[list[float]] | None
    classes: list[Any] | None
    errors: list[dict[str, Any]]  # violations, rows relative to the request
    error: SetpointError | None = None  # the request failed whole
    records: list[dict[str, Any]] = field(default_factory=list)  # for the log


class EndpointRuntime:
    def __init__(self, deployment: Deployment, model: LoadedModel, log: Log) -> None:
        self.deployment = deployment
        self.model = model
        self._log = log
        config = deployment.config
        self.batcher: MicroBatcher[PredictRequest, Answer] = MicroBatcher(
            self._run,
            max_rows=config.batching.max_batch_size,
            max_wait_ms=config.batching.max_wait_ms,
            size=lambda request: request.n_rows,
            after=self._commit,
        )

    @property
    def name(self) -> str:
        return self.deployment.endpoint

    def swap(self, model: LoadedModel | None = None, deployment: Deployment | None = None) -> None:
        """Serve ``model`` (and/or ``deployment``) from the next batch on."""
        if model is not None:
            self.model = model
        if deployment is not None:
            self.deployment = deployment

    def check_columns(self, request: PredictRequest) -> None:
        """The cheap per-request check: a missing or undeclared column fails this request
        alone, before it joins a batch with others."""
        contract = self.model.contract
        missing = [
            n for n, r in contract.columns.items() if r.required and n not in request.columns
        ]
        unknown = (
            [n for n in request.columns if n not in contract.columns]
            if contract.unknown_columns == "reject"
            else []
        )
        if missing or unknown:
            details = [
                {"row": None, "column": n, "rule": "missing_column", "value": None} for n in missing
            ] + [
                {"row": None, "column": n, "rule": "unknown_column", "value": None} for n in unknown
            ]
            parts = []
            if missing:
                parts.append(f"missing column(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"column(s) {', '.join(unknown)} that the model does not take")
            raise ContractViolationError(
                f"the request has {' and '.join(parts)}; the model takes "
                f"{', '.join(contract.columns)}",
                details={"violations": details},
            )

    async def predict(self, request: PredictRequest) -> Answer:
        self.check_columns(request)
        answer = await self.batcher.submit(request)
        if answer.error is not None:
            raise answer.error
        return answer

    # -- in the worker thread -------------------------------------------------------------

    def _run(self, requests: Sequence[PredictRequest]) -> list[Answer]:
        model = self.model
        names = model.names
        combined: dict[str, list[Any]] = {name: [] for name in names}
        for request in requests:
            for name in names:
                combined[name].extend(request.columns.get(name) or [None] * request.n_rows)
        starts = [0]
        for request in requests:
            starts.append(starts[-1] + request.n_rows)
        now = datetime.now(UTC)
        if model.fast_check.clean(combined):  # the usual case: no Arrow round trip
            predictions, proba = _predict(model.predictor, combined)
            return [
                self._answer(model, request, starts[i], None, predictions, proba, [], now)
                for i, request in enumerate(requests)
            ]
        return self._run_checked(model, requests, combined, np.asarray(starts), now)

    def _run_checked(
        self,
        model: LoadedModel,
        requests: Sequence[PredictRequest],
        combined: dict[str, list[Any]],
        starts: np.ndarray,
        now: datetime,
    ) -> list[Answer]:
        """A batch with a value the quick check was not sure of: the contract finds
        every violation, and each is traced back to its request and row."""
        table = to_table(combined)
        report = model.contract.validate(table)
        bad_rows = report.invalid_rows
        owner = np.searchsorted(starts, bad_rows, side="right") - 1
        on_error = self.deployment.config.on_error
        rejected_requests = set(owner.tolist()) if on_error == "reject" else set()
        valid = np.ones(table.num_rows, dtype=bool)
        valid[bad_rows] = False
        for index in rejected_requests:
            valid[starts[index] : starts[index + 1]] = False

        predictions: list[Any] | None = None
        proba: list[list[float]] | None = None
        if valid.any():
            predictions, proba = _predict(model.predictor, table.filter(pa.array(valid)))
        # Index into predictions for each valid row, -1 for a rejected one.
        position = np.where(valid, np.cumsum(valid) - 1, -1).tolist()

        by_request: dict[int, list[dict[str, Any]]] = {}
        for v in report.violations.to_pylist() if not report.ok else []:
            index = int(np.searchsorted(starts, v["row"], side="right") - 1)
            by_request.setdefault(index, []).append({**v, "row": v["row"] - int(starts[index])})

        answers = []
        version = model.version
        for index, request in enumerate(requests):
            errors = by_request.get(index, [])
            if index in rejected_requests:
                error = ContractViolationError(
                    f"{len(errors)} contract violation(s) in the request; every one is "
                    "listed in details (rows count from 0)",
                    details={"violations": errors},
                )
                answers.append(
                    Answer(
                        request.request_id,
                        version.name,
                        version.version,
                        [],
                        None,
                        None,
                        errors,
                        error=error,
                    )
                )
                continue
            start = int(starts[index])
            answers.append(
                self._answer(
                    model,
                    request,
                    start,
                    position[start : start + request.n_rows],
                    predictions,
                    proba,
                    errors,
                    now,
                )
            )
        return answers

    def _answer(
        self,
        model: LoadedModel,
        request: PredictRequest,
        start: int,
        positions: list[int] | None,
        predictions: list[Any] | None,
        proba: list[list[float]] | None,
        errors: list[dict[str, Any]],
        now: datetime,
    ) -> Answer:
        """The answer to ``request``, whose rows start at ``start`` in the batch.
        ``positions`` maps its rows into ``predictions`` (-1: rejected row); None
        when every row of the batch was predicted in order."""
        version = model.version
        if positions is None:
            positions = list(range(start, start + request.n_rows))
        preds: list[Any] = []
        probs: list[list[float]] | None = [] if proba is not None else None
        records = []
        latency_ms = (time.perf_counter() - request.received) * 1000.0
        pii = model.pii
        inputs = [(n, values) for n, values in request.columns.items() if n not in pii] + [
            (n, [PII_MASK] * request.n_rows) for n in request.columns if n in pii
        ]
        for offset, at in enumerate(positions):
            if at < 0 or predictions is None:
                preds.append(None)
                if probs is not None:
                    probs.append([])
                continue
            prediction = predictions[at]
            preds.append(prediction)
            output: dict[str, Any] = {"prediction": prediction}
            if probs is not None and proba is not None:
                row_proba = proba[at]
                probs.append(row_proba)
                output["probabilities"] = row_proba
            records.append(
                {
                    "request_id": request.request_id,
                    "row": offset,
                    "ts": now,
                    "endpoint": self.name,
                    "model": version.name,
                    "version": version.version,
                    "route": "champion",
                    "inputs": {n: values[offset] for n, values in inputs},
                    "outputs": output,
                    "latency_ms": latency_ms,
                    "cached": False,
                    "fallback": False,
                }
            )
        return Answer(
            request.request_id,
            version.name,
            version.version,
            preds,
            probs,
            model.predictor.classes,
            errors,
            records=records,
        )

    async def _commit(self, answers: Sequence[Answer]) -> None:
        records = [r for a in answers for r in a.records]
        if records:
            await self._log.append_async(records)


# Flavors whose predicted label is by construction the most probable class: one
# booster call gives both (a scikit-learn model's predict may differ from the argmax).
_ARGMAX_FLAVORS = frozenset({"lightgbm", "xgboost"})


def _predict(predictor: Predictor, rows: Any) -> tuple[list[Any], list[list[float]] | None]:
    """Labels and class probabilities (None for a regressor) of ``rows``, as lists."""
    if predictor.task == "classification" and predictor.flavor in _ARGMAX_FLAVORS:
        proba = predictor.predict_proba(rows)
        if proba is not None and predictor.classes is not None:
            labels = np.asarray(predictor.classes)[np.argmax(proba, axis=1)]
            return labels.tolist(), proba.tolist()
    proba = predictor.predict_proba(rows)
    return np.asarray(predictor.predict(rows)).tolist(), None if proba is None else proba.tolist()
