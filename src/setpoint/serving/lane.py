"""A model lane: one loaded model, its micro-batcher and its circuit breaker.

An endpoint has a lane for its champion and, when configured, for a challenger and a
fallback model. A lane turns a batch of requests into answers: the batch is checked
against the model's contract (a quick check for clean batches of plain values, the
Arrow validation otherwise, with each violation traced back to its request and row),
the rows that can be scored are predicted in one call, and the records of what was
answered go to the prediction log before anyone is answered. A row that breaks only
soft rules of columns not enforced (past a bound, an unseen category) is answered and
marked: its violations in the answer's ``warnings`` and in its record. A row with a
hard or enforced violation is refused (with its request, under ``on_error: reject``),
and kept with its reasons in the refused log, durably, before the refusal is sent.
The model is swapped as a whole (``swap``) between batches, so a batch is never split
across two versions.

The records' ``ts`` comes from the server's clock (``Clock``, read once per batch): the
system's UTC time, or one a caller sets (the demo runs weeks of traffic in seconds).
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, KeysView, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from operator import itemgetter
from typing import Any, Literal, Protocol, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from setpoint.data._batch import to_table
from setpoint.data._fastcheck import FastCheck
from setpoint.data.contract import Contract
from setpoint.data.pii import PiiPolicy
from setpoint.data.validation import ValidationReport
from setpoint.errors import ContractViolationError, SetpointError
from setpoint.models.background import Explainer
from setpoint.models.explain import Explanation
from setpoint.models.predictor import ARGMAX_FLAVORS, Predictor
from setpoint.models.registry import ModelVersion
from setpoint.serving.batcher import MicroBatcher
from setpoint.serving.breaker import CircuitBreaker
from setpoint.serving.meter import Meter, ThreadClock

_NONE = [None]  # a one-row column that is absent
Route = Literal["champion", "canary", "shadow", "fallback"]
Clock = Callable[[], datetime]

# Request ids: a random prefix per process and a counter. Unique across workers and
# restarts like a UUID, at a fraction of uuid4's cost on the hot path.
logger = logging.getLogger(__name__)

_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


# The system's clock, in UTC: the server's clock unless it is given another.
utc_now: Clock = partial(datetime.now, UTC)


class _UTCClock:
    """A caller's clock whose times are turned into UTC (naive ones are taken as UTC),
    as the prediction log stores them."""

    __slots__ = ("_clock",)

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def __call__(self) -> datetime:
        now = self._clock()
        if now.tzinfo is UTC:
            return now
        if now.tzinfo is None:
            return now.replace(tzinfo=UTC)
        return now.astimezone(UTC)


def utc_clock(clock: Clock | None) -> Clock:
    """``clock`` as a clock of UTC datetimes; None is the system's (``utc_now``)."""
    if clock is None or clock is utc_now or isinstance(clock, _UTCClock):
        return clock or utc_now
    return _UTCClock(clock)


class Log(Protocol):
    """Where answered predictions go (``serving.log.RecordLog``)."""

    async def append_async(
        self, records: Sequence[Mapping[str, Any]], *, checked: bool = False
    ) -> None:
        """``checked``: the records were built by the server with the log's field types."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    predictor: Predictor
    contract: Contract
    pii_secret: bytes = b""  # the workspace's (``data/pii.py``); the server always gives it
    # What requests that ask for explanations are explained by (``models/background.py``);
    # None: one without a background sample (enough for the tree flavors).
    explainer: Explainer | None = None

    def explainer_or_default(self) -> Explainer:
        return self.explainer or Explainer(self.predictor, None, ref=self.version.ref)

    @cached_property
    def names(self) -> list[str]:
        return list(self.contract.columns)

    @cached_property
    def measured(self) -> frozenset[str]:
        """Columns a request may carry beside the model's inputs: the sensitive columns
        of the spec's fairness settings, kept in the log for the monitor and the loop's
        fairness gate and never given to the model."""
        fairness = (self.version.spec or {}).get("fairness") or {}
        return frozenset(fairness.get("sensitive") or ()) - self.contract.columns.keys()

    @cached_property
    def accepted(self) -> frozenset[str]:
        """Every column a request may carry when the contract refuses unknown ones."""
        return frozenset(self.contract.columns) | self.measured

    @cached_property
    def required(self) -> frozenset[str]:
        return frozenset(n for n, rule in self.contract.columns.items() if rule.required)

    @cached_property
    def pii(self) -> PiiPolicy:
        """How the contract's personal-data columns are kept in the logs."""
        return PiiPolicy.of(self.contract, self.pii_secret)

    @cached_property
    def fast_check(self) -> FastCheck:
        return FastCheck(self.contract)


class PredictRequest:
    """What a protocol decoded: column -> values, all columns the same length.

    A one-row request may be given as its record instead (``row``, column -> value, as
    decoded; never modified): the batch and the log read it directly, and the columns
    are made from it only if something asks for them (the cache, a canary key, a
    copy for the shadow or the fallback).
    """

    __slots__ = (
        "_columns",
        "abandoned",
        "chosen",
        "committing",
        "explain",
        "fallback",
        "n_rows",
        "received",
        "request_id",
        "route",
        "row",
        "top",
    )

    def __init__(
        self,
        columns: dict[str, list[Any]] | None,
        n_rows: int = 1,
        request_id: str | None = None,
        *,
        row: dict[str, Any] | None = None,
        received: float | None = None,
        route: Route = "champion",
        fallback: bool = False,
        explain: bool = False,
        top: int | None = None,
    ) -> None:
        if columns is None and row is None:
            raise ValueError("a PredictRequest needs its columns or its one row")
        self._columns = columns
        self.row = row
        self.n_rows = n_rows
        self.request_id = request_id or new_request_id()
        self.chosen = request_id is not None  # by the client: checked for repeats
        self.received = time.perf_counter() if received is None else received
        self.route = route
        self.fallback = fallback  # answered by other than the model its route names
        # Answer with each row's explanation: its ``top`` contributions (None: all).
        self.explain = explain
        self.top = top
        # Set on the event loop: the answer is being logged (it will be given), or the
        # caller was answered otherwise (by the fallback) and this answer must not be
        # logged.
        self.committing = False
        self.abandoned = False

    @property
    def columns(self) -> dict[str, list[Any]]:
        columns = self._columns
        if columns is None:
            assert self.row is not None
            columns = self._columns = {name: [value] for name, value in self.row.items()}
        return columns

    def names(self) -> KeysView[str]:
        """The request's column names (without making the columns of a row)."""
        if self._columns is None and self.row is not None:
            return self.row.keys()
        return self.columns.keys()

    def copy(self, route: Route, *, fallback: bool) -> PredictRequest:
        """The same request (id, inputs, time received) for another lane to answer."""
        return PredictRequest(
            self._columns,
            self.n_rows,
            self.request_id,
            row=self.row,
            received=self.received,
            route=route,
            fallback=fallback,
            explain=self.explain,
            top=self.top,
        )


@dataclass
class Answer:
    request_id: str
    model: str
    version: int
    predictions: list[Any]  # None where a row was rejected (per-row mode)
    probabilities: list[list[float]] | None
    classes: list[Any] | None
    errors: list[dict[str, Any]]  # violations of refused rows, rows relative to the request
    error: SetpointError | None = None  # the request failed whole
    records: list[dict[str, Any]] = field(default_factory=list)  # for the log
    route: Route = "champion"
    cached: bool = False
    # Not answered by the model the route names: the fallback's answer (route
    # "fallback"), or the champion's for a canary request the canary failed (route
    # "canary").
    fallback: bool = False
    # Soft violations of rows that were answered, rows relative to the request.
    warnings: Sequence[dict[str, Any]] = ()
    # Records for the refused log: the rows refused for their values, with the reasons.
    refused: Sequence[dict[str, Any]] = ()
    # Asked for: each row's explanation (``Explanation.row_dict``), None for a refused row.
    explanations: list[dict[str, Any] | None] | None = None


def log_records(
    endpoint: str,
    request: PredictRequest,
    answer: Answer,
    pii: PiiPolicy,
    rows: Sequence[int] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The prediction-log records of ``answer``'s ``rows`` (default: all), with the
    personal-data columns kept as ``pii`` says (hashed or left out), stamped ``now``
    (a UTC datetime; default: the system's time)."""
    now = now or utc_now()
    latency_ms = (time.perf_counter() - request.received) * 1000.0
    probs = answer.probabilities
    explained = answer.explanations

    def record(row: int, inputs: dict[str, Any]) -> dict[str, Any]:
        output: dict[str, Any] = {"prediction": answer.predictions[row]}
        if probs is not None:
            output["probabilities"] = probs[row]
        if explained is not None:
            output["explanation"] = explained[row]
        return {
            "request_id": request.request_id,
            "row": row,
            "ts": now,
            "endpoint": endpoint,
            "model": answer.model,
            "version": answer.version,
            "route": answer.route,
            "inputs": inputs,
            "outputs": output,
            "latency_ms": latency_ms,
            "cached": answer.cached,
            "fallback": answer.fallback,
        }

    personal = not pii.columns.isdisjoint(request.names())
    if request.n_rows == 1 and rows is None and not personal:  # the usual
        row = request.row
        if row is None:
            row = {n: values[0] for n, values in request.columns.items()}
        return [record(0, row)]
    columns = request.columns
    keep = pii.record if personal else dict
    return [
        record(row, keep({n: values[row] for n, values in columns.items()}))
        for row in (range(request.n_rows) if rows is None else rows)
    ]


def refused_records(
    endpoint: str,
    request: PredictRequest,
    reasons: Mapping[int, list[dict[str, Any]]],
    model: LoadedModel,
    now: datetime,
) -> list[dict[str, Any]]:
    """The refused-log records of ``request``'s rows in ``reasons`` (row -> the
    violations that refused it, ``{column, rule, value}``), personal data kept as the
    contract says (hashed or left out)."""
    columns, pii, version = request.columns, model.pii, model.version
    return [
        {
            "request_id": request.request_id,
            "ts": now,
            "endpoint": endpoint,
            "row": row,
            "model": version.name,
            "version": version.version,
            "inputs": pii.record({n: values[row] for n, values in columns.items()}),
            "reasons": why,
        }
        for row, why in reasons.items()
    ]


class Lane:
    """``model`` behind a micro-batcher; answers are logged before they are given (and
    rows refused for their values to ``refused_log``, when given), stamped with
    ``clock``'s time (read once per batch)."""

    def __init__(
        self,
        endpoint: str,
        model: LoadedModel,
        log: Log,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        on_error: str = "reject",
        budget_s: float = 1.0,
        routed: Callable[[str, str, int], None] | None = None,
        clock: Clock | None = None,
        refused_log: Log | None = None,
        meter: Meter | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self.on_error = on_error
        self.budget_s = budget_s
        self.breaker = CircuitBreaker()
        self._log = log
        self._refused_log = refused_log
        self._routed = routed  # (endpoint, route, answers): counted once per batch
        self._clock = utc_clock(clock)
        self._meter = meter
        self._model_cpu = ThreadClock()  # the batch being predicted (one at a time)
        self.batcher: MicroBatcher[PredictRequest, Answer] = MicroBatcher(
            self._run,
            max_rows=max_batch_size,
            max_wait_ms=max_wait_ms,
            size=lambda request: request.n_rows,
            after=self._commit,
            failed=self._failed,
        )

    async def predict(self, request: PredictRequest) -> Answer:
        return await self.batcher.submit(request)

    # -- in the worker thread -------------------------------------------------------------

    def _run(self, requests: Sequence[PredictRequest]) -> list[Answer]:
        model = self.model
        names = model.names
        combined = _transpose([r.row for r in requests], names)
        if combined is None:
            combined = _combine(requests, names)
        now = self._clock()
        self._model_cpu = ThreadClock()
        if model.fast_check.clean(combined):  # the usual case: no Arrow round trip
            answers = self._run_clean(model, requests, combined, now)
        else:
            starts = [0]
            for request in requests:
                starts.append(starts[-1] + request.n_rows)
            answers = self._run_checked(model, requests, combined, np.asarray(starts), now)
        _share_model_cpu(answers, self._model_cpu.seconds)
        return answers

    def _run_clean(
        self,
        model: LoadedModel,
        requests: Sequence[PredictRequest],
        combined: dict[str, list[Any]],
        now: datetime,
    ) -> list[Answer]:
        """A batch with no violation: every row is predicted, in order."""
        with self._model_cpu:
            predictions, proba = predict_rows(model.predictor, combined)
            explained = _explain_clean(model, requests, combined)
        version, classes, pii = model.version, model.predictor.classes, model.pii
        answers = []
        start = 0
        for index, request in enumerate(requests):
            end = start + request.n_rows
            answer = Answer(
                request.request_id,
                version.name,
                version.version,
                predictions[start:end],
                None if proba is None else proba[start:end],
                classes,
                [],
                route=request.route,
                fallback=request.fallback,
                explanations=explained[index],
            )
            answer.records = log_records(self.endpoint, request, answer, pii, None, now)
            answers.append(answer)
            start = end
        return answers

    def _run_checked(
        self,
        model: LoadedModel,
        requests: Sequence[PredictRequest],
        combined: dict[str, list[Any]],
        starts: np.ndarray,
        now: datetime,
    ) -> list[Answer]:
        """A batch with a value the quick check was not sure of: the contract finds
        every violation, and each is traced back to its request and row. Rows with a
        refusing violation are refused; rows with only soft ones are answered, marked."""
        table = to_table(combined)
        report = model.contract.validate(table)
        predictions, proba, valid, refuses, rejected_requests = self._score(
            model, table, report, starts
        )
        explained = None
        if predictions is not None and any(r.explain for r in requests):
            with self._model_cpu:
                explained = model.explainer_or_default().explain(table.filter(pa.array(valid)))
        # Index into predictions for each valid row, -1 for a refused one.
        position = np.where(valid, np.cumsum(valid) - 1, -1).tolist()

        # Each request's violations (rows relative to it), and whether each refuses.
        by_request: dict[int, list[tuple[dict[str, Any], bool]]] = {}
        if not report.ok:
            found = zip(report.violations.to_pylist(), refuses.tolist(), strict=True)
            for v, refuses in found:
                index = int(np.searchsorted(starts, v["row"], side="right") - 1)
                relative = {**v, "row": v["row"] - int(starts[index])}
                by_request.setdefault(index, []).append((relative, refuses))

        answers = []
        version = model.version
        for index, request in enumerate(requests):
            found_here = by_request.get(index, [])
            reasons: dict[int, list[dict[str, Any]]] = {}
            for v, refusing in found_here:
                if refusing:
                    reason = {"column": v["column"], "rule": v["rule"], "value": v["value"]}
                    reasons.setdefault(v["row"], []).append(reason)
            refused = reasons.keys()
            # A shadow copy's refusal is nobody's answer: the caller had the champion's.
            kept = (
                refused_records(self.endpoint, request, reasons, model, now)
                if reasons and request.route != "shadow"
                else ()
            )
            if index in rejected_requests:
                errors = [v for v, _ in found_here]
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
                        refused=kept,
                    )
                )
                continue
            start = int(starts[index])
            answer = self._answer(
                model,
                request,
                position[start : start + request.n_rows],
                predictions,
                proba,
                [v for v, _ in found_here if v["row"] in refused],
                [v for v, _ in found_here if v["row"] not in refused],
                now,
                explained if request.explain else None,
            )
            answer.refused = kept
            answers.append(answer)
        return answers

    def _score(
        self, model: LoadedModel, table: pa.Table, report: ValidationReport, starts: np.ndarray
    ) -> tuple[list[Any] | None, list[list[float]] | None, np.ndarray, np.ndarray, set[int]]:
        """Predict the rows that can be scored: the answers and probabilities, which rows
        were predicted, which violations refuse their row, and the requests refused
        whole (``on_error: reject``).

        Rows outside what the model saw are scored with the rest; a model that cannot
        take them (an encoder that raises on an unseen category) would fail everyone's
        batch with them. Then the rows with an unseen category are refused, with their
        violations as the reasons, and the batch is predicted again without them; if
        it still fails, without every row outside the contract. One caller's odd row
        costs that caller, not the batch, and does not count against the model's
        circuit breaker; a batch that fails on rows inside the contract fails."""
        refuses = np.asarray(report.refuses, dtype=bool)
        # Each violation's row; -1 for one of the whole batch.
        rows = pc.fill_null(report.violations.column("row"), -1).to_numpy(zero_copy_only=False)
        soft = ~refuses & (rows >= 0)
        unseen = soft & (
            report.violations.column("rule").to_numpy(zero_copy_only=False) == "category"
        )
        fallbacks = [unseen, soft]
        while True:
            valid = np.ones(table.num_rows, dtype=bool)
            refused_rows = np.unique(rows[refuses])
            if (refused_rows < 0).any():
                valid[:] = False
            valid[refused_rows[refused_rows >= 0]] = False
            owner = np.searchsorted(starts, refused_rows[refused_rows >= 0], side="right") - 1
            rejected = set(owner.tolist()) if self.on_error == "reject" else set()
            if (refused_rows < 0).any() and self.on_error == "reject":
                rejected = set(range(len(starts) - 1))
            for index in rejected:
                valid[starts[index] : starts[index + 1]] = False
            if not valid.any():
                return None, None, valid, refuses, rejected
            try:
                # Rows past the training range may hold values far out (1e308): numpy's
                # overflow warnings about them inside the model are not a failed batch.
                with np.errstate(over="ignore", invalid="ignore"), self._model_cpu:
                    predictions, proba = predict_rows(
                        model.predictor, table.filter(pa.array(valid))
                    )
            except Exception:
                while fallbacks:
                    candidates = np.unique(rows[fallbacks.pop(0)])
                    candidates = candidates[valid[candidates]]
                    if len(candidates):
                        break
                else:
                    raise
                logger.warning(
                    "%s: the model failed on a batch holding %d row(s) outside its contract's "
                    "ranges or categories; refusing those rows and predicting the rest",
                    self.endpoint,
                    len(candidates),
                    exc_info=True,
                )
                refuses = refuses | np.isin(rows, candidates)
                continue
            return predictions, proba, valid, refuses, rejected

    def _answer(
        self,
        model: LoadedModel,
        request: PredictRequest,
        positions: list[int],
        predictions: list[Any] | None,
        proba: list[list[float]] | None,
        errors: list[dict[str, Any]],
        warnings: list[dict[str, Any]],
        now: datetime,
        explained: Explanation | None = None,
    ) -> Answer:
        """The answer to ``request`` in a batch with violations: ``positions`` maps its
        rows into ``predictions`` and ``explained`` (-1: a refused row); ``warnings``
        (soft violations of answered rows) mark the answer and those rows' records."""
        version = model.version
        preds: list[Any] = []
        probs: list[list[float]] | None = [] if proba is not None else None
        answered: list[int] = []
        for offset, at in enumerate(positions):
            if at < 0 or predictions is None:
                preds.append(None)
                if probs is not None:
                    probs.append([])
                continue
            answered.append(offset)
            preds.append(predictions[at])
            if probs is not None and proba is not None:
                probs.append(proba[at])
        answer = Answer(
            request.request_id,
            version.name,
            version.version,
            preds,
            probs,
            model.predictor.classes,
            errors,
            route=request.route,
            fallback=request.fallback,
            warnings=warnings,
        )
        if explained is not None:
            answer.explanations = [
                None if at < 0 else explained.row_dict(at, request.top) for at in positions
            ]
        answer.records = log_records(self.endpoint, request, answer, model.pii, answered, now)
        if warnings:
            marks: dict[int, list[dict[str, str]]] = {}
            for v in warnings:
                marks.setdefault(v["row"], []).append({"column": v["column"], "rule": v["rule"]})
            for record in answer.records:
                if record["row"] in marks:
                    record["violations"] = marks[record["row"]]
        return answer

    # -- on the event loop ------------------------------------------------------------------

    async def _commit(self, answers: Sequence[Answer], requests: Sequence[PredictRequest]) -> None:
        """Log the batch's records (not those of callers already answered otherwise),
        refused rows first."""
        records = []
        refused: list[dict[str, Any]] = []
        routes: dict[str, int] = {}
        for answer, request in zip(answers, requests, strict=True):
            if not request.abandoned:
                request.committing = True
                records.extend(answer.records)
                if answer.refused:
                    refused.extend(answer.refused)
                if answer.error is None:
                    routes[request.route] = routes.get(request.route, 0) + 1
        stats = self.batcher.stats
        if stats.last_batch_seconds > self.budget_s:
            self.breaker.failure()  # too slow counts as failing
        else:
            self.breaker.success()
        if self._routed is not None:
            for route, n in routes.items():
                self._routed(self.endpoint, route, n)
        if refused and self._refused_log is not None:
            await self._refused_log.append_async(refused, checked=True)
        if records:
            if self._meter is not None:
                self._meter.stamp(self.endpoint, records)
            await self._log.append_async(records, checked=True)

    def _failed(self, error: BaseException) -> None:
        if not isinstance(error, SetpointError):  # a caller's bad input is not the model failing
            self.breaker.failure()


def _share_model_cpu(answers: Sequence[Answer], seconds: float) -> None:
    """Each answered row's share of the model CPU its batch took, on its log record."""
    n = sum(len(answer.records) for answer in answers)
    if not n:
        return
    each = seconds * 1000 / n
    for answer in answers:
        for record in answer.records:
            record["model_cpu_ms"] = each


def _explain_clean(
    model: LoadedModel, requests: Sequence[PredictRequest], combined: dict[str, list[Any]]
) -> list[list[dict[str, Any] | None] | None]:
    """Per request, its rows' explanations if it asked for them (else None): the rows of
    every request that asked, explained in one call."""
    wanted = [r.explain for r in requests]
    if not any(wanted):
        return [None] * len(requests)
    rows = combined
    if not all(wanted):
        ends = np.cumsum([r.n_rows for r in requests]).tolist()
        spans = zip(wanted, [0, *ends], ends, strict=False)
        take = [i for asked, start, end in spans if asked for i in range(start, end)]
        rows = {name: [values[i] for i in take] for name, values in combined.items()}
    explained = model.explainer_or_default().explain(rows)
    out: list[list[dict[str, Any] | None] | None] = []
    at = 0
    for request in requests:
        if not request.explain:
            out.append(None)
            continue
        out.append([explained.row_dict(at + i, request.top) for i in range(request.n_rows)])
        at += request.n_rows
    return out


def _combine(requests: Sequence[PredictRequest], names: list[str]) -> dict[str, list[Any]]:
    """Column -> values of the batch, None where a request left an optional column out."""
    if all(r.n_rows == 1 for r in requests):  # single rows: one pass per column
        return {name: [(r.columns.get(name) or _NONE)[0] for r in requests] for name in names}
    combined: dict[str, list[Any]] = {name: [] for name in names}
    for request in requests:
        for name in names:
            combined[name].extend(request.columns.get(name) or [None] * request.n_rows)
    return combined


def _transpose(rows: list[dict[str, Any] | None], names: list[str]) -> dict[str, list[Any]] | None:
    """Column -> values of one-row requests' records that all have every one of
    ``names``; else None."""
    if None in rows:
        return None
    records = cast(list[dict[str, Any]], rows)
    try:
        if len(names) == 1:
            return {names[0]: [record[names[0]] for record in records]}
        columns = zip(*map(itemgetter(*names), records), strict=True)
        return dict(zip(names, map(list, columns), strict=True))
    except KeyError:  # an optional column left out: the general way
        return None


def predict_rows(predictor: Predictor, rows: Any) -> tuple[list[Any], list[list[float]] | None]:
    """Labels and class probabilities (None for a regressor) of ``rows``, as lists."""
    if predictor.task == "classification" and predictor.flavor in ARGMAX_FLAVORS:
        proba = predictor.predict_proba(rows)
        if proba is not None and predictor.classes is not None:
            labels = np.asarray(predictor.classes)[np.argmax(proba, axis=1)]
            return labels.tolist(), proba.tolist()
    proba = predictor.predict_proba(rows)
    return np.asarray(predictor.predict(rows)).tolist(), None if proba is None else proba.tolist()
