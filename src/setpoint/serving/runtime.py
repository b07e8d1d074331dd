"""One endpoint at run time: which lane answers a request, and what happens when it cannot.

The runtime holds the champion's lane and, as the deployment says, a challenger's
(shadow or canary) and a fallback model's (see ``serving/lane.py``). For each
request it checks the column set, tries the cache, picks the lane (canary share,
sticky by a column), refuses work the lane could not finish within the latency
budget (503), skips a lane whose circuit is open, and lets the fallback answer when
the model fails or is late. A canary request the canary cannot answer (its model
raised or its circuit is open) is answered by the champion instead, logged as
``route="canary", fallback=True``: a failing canary never fails a request. Shadow
copies go to the challenger after the caller's answer is settled, off the caller's
path. Every record is stamped by the runtime's clock. Rows refused for their values
(a missing or undeclared column here, a hard or enforced violation in a lane) go to
the refused log before the refusal is sent. The design is in docs/architecture.md,
"Routes, cache and resilience".
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import zlib
from collections.abc import Iterable
from typing import Any, Protocol

from setpoint.errors import (
    ContractViolationError,
    ModelUnavailableError,
    NotExplainableError,
    OverloadedError,
    SetpointError,
)
from setpoint.serving._requestids import RecentIds
from setpoint.serving.cache import Cached, PredictionCache
from setpoint.serving.deployments import Deployment
from setpoint.serving.lane import (
    Answer,
    Clock,
    Lane,
    LoadedModel,
    Log,
    PredictRequest,
    Route,
    log_records,
    new_request_id,
    refused_records,
    utc_clock,
)
from setpoint.serving.meter import Meter

__all__ = [
    "Answer",
    "EndpointRuntime",
    "LoadedModel",
    "Log",
    "PredictRequest",
    "new_request_id",
]

# Shadow copies waiting for the challenger, in batches' worth: beyond this the
# challenger has fallen behind and copies are dropped (and counted), not queued.
_SHADOW_BACKLOG_BATCHES = 4

logger = logging.getLogger("setpoint.serving")


class Events(Protocol):
    """What the runtime reports to the metrics (``serving.metrics.ServingMetrics``)."""

    def cache(self, endpoint: str, hit: bool) -> None: ...

    def fallback(self, endpoint: str, reason: str) -> None:
        """``reason``: circuit_open, model_error, latency_budget (the fallback answered)
        or canary_error (the champion answered for a failed canary)."""

    def shed(self, endpoint: str) -> None: ...

    def routed(self, endpoint: str, route: str, n: int = 1) -> None: ...


class _Silent:
    def cache(self, endpoint: str, hit: bool) -> None:
        pass

    def fallback(self, endpoint: str, reason: str) -> None:
        pass

    def shed(self, endpoint: str) -> None:
        pass

    def routed(self, endpoint: str, route: str, n: int = 1) -> None:
        pass


class _Late(Exception):
    """The answer missed the latency budget; the fallback answers instead."""


class EndpointRuntime:
    def __init__(
        self,
        deployment: Deployment,
        model: LoadedModel,
        log: Log,
        *,
        async_log: Log | None = None,
        challenger: LoadedModel | None = None,
        fallback: LoadedModel | None = None,
        events: Events | None = None,
        clock: Clock | None = None,
        refused_log: Log | None = None,
        request_ids: RecentIds | None = None,
        meter: Meter | None = None,
    ) -> None:
        """``clock`` stamps every record this endpoint logs (default: the system's
        UTC time); it is read once per batch. ``refused_log`` keeps the rows refused
        for their values (none are kept without it). ``request_ids`` holds the ids
        clients chose that the endpoint answered (kept by the server across model
        changes); a repeat is refused with 409. ``meter`` stamps each logged record
        with what it cost (``serving/meter.py``)."""
        self.deployment = deployment
        self._clock = utc_clock(clock)
        self._refused_log = refused_log
        self._meter = meter
        # An endpoint deployed with log=async trades durability for latency, when the
        # server has an async log to give it; otherwise it gets the durable one.
        self._log = async_log if deployment.config.log == "async" and async_log else log
        self.events: Events = events or _Silent()
        config = deployment.config
        self.budget_s = config.latency_budget_ms / 1000.0
        self.champion = self._lane(model)
        self.challenger = None if challenger is None else self._lane(challenger)
        self.fallback = None if fallback is None else self._lane(fallback)
        self.cache = (
            PredictionCache(config.cache.size, config.cache.ttl_s) if config.cache.enabled else None
        )
        self.request_ids = request_ids if request_ids is not None else RecentIds()
        self.shadow_dropped = 0
        self._background: set[asyncio.Future[Any]] = set()

    def _lane(self, model: LoadedModel) -> Lane:
        config = self.deployment.config
        return Lane(
            self.name,
            model,
            self._log,
            max_batch_size=config.batching.max_batch_size,
            max_wait_ms=config.batching.max_wait_ms,
            on_error=config.on_error,
            budget_s=self.budget_s,
            routed=self.events.routed,
            clock=self._clock,
            refused_log=self._refused_log,
            meter=self._meter,
        )

    # -- what the server reads -------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.deployment.endpoint

    @property
    def model(self) -> LoadedModel:
        """The champion's model: what the endpoint serves."""
        return self.champion.model

    @property
    def batcher(self) -> Any:
        return self.champion.batcher

    def lanes(self) -> Iterable[Lane]:
        return [lane for lane in (self.champion, self.challenger, self.fallback) if lane]

    def circuit_state(self) -> int:
        """The champion's circuit: 0 closed, 1 half-open, 2 open."""
        return int(self.champion.breaker.state)

    def swap(self, model: LoadedModel) -> None:
        """Serve ``model`` from the next batch on; cached answers of the old one go."""
        self.champion.model = model
        if self.cache is not None:
            self.cache.clear()

    async def close(self) -> None:
        """Answer what was accepted, finish shadow work, stop the worker threads."""
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        for lane in self.lanes():
            await lane.batcher.drain()
        if self._background:  # shadow copies of the last answers
            await asyncio.gather(*list(self._background), return_exceptions=True)
        for lane in self.lanes():
            await lane.batcher.drain()
            lane.batcher.close()

    # -- a request -------------------------------------------------------------------------

    def check_columns(self, request: PredictRequest) -> None:
        """The cheap per-request check: a missing or undeclared column fails this request
        alone, before it joins a batch with others. The spec's sensitive columns are
        declared too: they are measured (kept in the log), not model inputs."""
        model = self.model
        given = request.names()
        if model.required <= given and (
            model.contract.unknown_columns != "reject" or given <= model.accepted
        ):
            return  # the usual case, in two set comparisons
        contract = model.contract
        missing = [n for n, r in contract.columns.items() if r.required and n not in given]
        unknown = (
            [n for n in given if n not in model.accepted]
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
        if not request.chosen:
            return await self._predict(request)
        self.request_ids.claim(request.request_id, self.name)
        try:
            return await self._predict(request)
        except SetpointError:  # refused: nothing was logged under the id
            self.request_ids.release(request.request_id)
            raise

    async def _predict(self, request: PredictRequest) -> Answer:
        try:
            self.check_columns(request)
        except ContractViolationError as error:
            await self._keep_refused(request, error)
            raise
        key = None
        if self.cache is not None and not request.explain:  # a hit has no explanation
            model = self.champion.model
            key = PredictionCache.key(model.version.id, model.names, request.columns)
            hit = None if key is None else self.cache.get(key)
            self.events.cache(self.name, hit is not None)
            if hit is not None:
                return await self._cached(request, hit)
        if self.challenger is None:
            lane, route = self.champion, "champion"
        else:
            lane, route = self._route(request)
            request.route = route
            if route == "canary":
                return await self._canary(lane, request)
        answer = await self._answer(lane, request, request)
        if answer.route == "fallback":
            return answer
        if (
            key is not None
            and self.cache is not None
            and not answer.errors
            and not answer.warnings  # a hit would not carry them
            and route == "champion"
        ):
            self.cache.put(
                key,
                Cached(
                    answer.model,
                    answer.version,
                    answer.predictions,
                    answer.probabilities,
                    answer.classes,
                ),
            )
        if self.challenger is not None and self.deployment.config.mode == "shadow":
            self._shadow(request)
        return answer

    async def _keep_refused(self, request: PredictRequest, error: ContractViolationError) -> None:
        """Every row of a request refused for its columns, with the reasons, to the
        refused log (before the caller hears of it)."""
        if self._refused_log is None:
            return
        violations = (error.details or {}).get("violations", [])
        reasons = [{"column": v["column"], "rule": v["rule"], "value": None} for v in violations]
        records = refused_records(
            self.name,
            request,
            dict.fromkeys(range(request.n_rows), reasons),
            self.model,
            self._clock(),
        )
        await self._refused_log.append_async(records, checked=True)

    def _route(self, request: PredictRequest) -> tuple[Lane, Route]:
        config = self.deployment.config
        if self.challenger is None or config.mode != "canary":
            return self.champion, "champion"
        sticky = config.sticky_key
        values = request.columns.get(sticky) if sticky else None
        # The same key always takes the same route; without one, a coin flip.
        draw = zlib.crc32(str(values[0]).encode()) / 2**32 if values else random.random()
        if draw < config.share:
            return self.challenger, "canary"
        return self.champion, "champion"

    async def _canary(self, lane: Lane, request: PredictRequest) -> Answer:
        """The canary's answer; when its model raises or its circuit is open, the
        champion's (its natural fallback), logged as ``route="canary", fallback=True``
        with the champion's model, so the log gives the canary's error rate. A
        contract violation is the caller's error, not retried; a canary past the
        latency budget goes to the endpoint's fallback like the champion would."""
        self._shed_if_full(lane, request)
        if lane.breaker.allow():
            try:
                answer = await self._ask(lane, request)
            except _Late:
                return await self._fall_back(request, "latency_budget")
            except SetpointError:
                raise
            except Exception:  # the canary failed on this batch: the champion answers
                logger.exception(
                    "endpoint %s: canary %s failed on a batch", self.name, lane.model.version.ref
                )
            else:
                if answer.error is not None:
                    raise answer.error
                return answer
        self.events.fallback(self.name, "canary_error")
        return await self._answer(self.champion, request.copy("canary", fallback=True), request)

    async def _answer(self, lane: Lane, asked: PredictRequest, request: PredictRequest) -> Answer:
        """``lane``'s answer to ``asked``; the endpoint's fallback answers ``request``
        (the caller's) when the lane's circuit is open, it fails, or it is late."""
        self._shed_if_full(lane, asked)
        if not lane.breaker.allow():
            return await self._fall_back(request, "circuit_open", lane.breaker.retry_after())
        try:
            answer = await self._ask(lane, asked)
        except _Late:
            return await self._fall_back(request, "latency_budget")
        except SetpointError:
            raise
        except Exception as exc:  # the model failed on this batch
            logger.exception(
                "endpoint %s: model %s failed on a batch", self.name, lane.model.version.ref
            )
            return await self._fall_back(request, "model_error", cause=exc)
        if answer.error is not None:
            raise answer.error
        return answer

    def _shed_if_full(self, lane: Lane, request: PredictRequest) -> None:
        """Refuse work that would wait longer than the latency budget to be predicted:
        the batches ahead of it (and the one being predicted) at the recent batch time."""
        batcher = lane.batcher
        if not batcher.busy:
            return
        config = self.deployment.config
        queued = batcher.queued_rows + request.n_rows
        batches = math.ceil(queued / config.batching.max_batch_size) + 1
        expected = batches * batcher.stats.batch_seconds
        if queued > config.max_queue_rows or expected > self.budget_s:
            self.events.shed(self.name)
            raise OverloadedError(
                f"endpoint {self.name!r} is at capacity: {queued:,} rows are waiting "
                f"(about {expected * 1000:.0f} ms of work, budget "
                f"{config.latency_budget_ms:g} ms); retry shortly or add workers",
                retry_after=1,
            )

    async def _ask(self, lane: Lane, request: PredictRequest) -> Answer:
        """The lane's answer; with a fallback to turn to, no later than the budget."""
        if request.explain:  # refused alone, before it joins others' batch
            lane.model.explainer_or_default().check()
        if self.fallback is None and self.deployment.config.fallback is None:
            return await lane.batcher.submit(request)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Answer] = loop.create_future()
        pending = asyncio.ensure_future(lane.predict(request))

        def settle(done: asyncio.Future[Answer]) -> None:
            if outcome.done():
                if not done.cancelled():
                    done.exception()  # retrieved: an abandoned request's error is no news
                return
            if done.cancelled():
                outcome.cancel()
            elif done.exception() is not None:
                outcome.set_exception(done.exception())  # type: ignore[arg-type]
            else:
                outcome.set_result(done.result())

        def late() -> None:
            if not outcome.done() and not request.committing:
                request.abandoned = True  # the model's answer, if it comes, is not logged
                outcome.set_exception(_Late())

        pending.add_done_callback(settle)
        remaining = self.budget_s - (time.perf_counter() - request.received)
        timer = loop.call_later(max(0.0, remaining), late)
        try:
            return await outcome
        finally:
            timer.cancel()

    # -- answers not from the chosen lane ----------------------------------------------------

    def _stamp(self, records: list[dict[str, Any]]) -> None:
        if self._meter is not None:
            self._meter.stamp(self.name, records)

    async def _cached(self, request: PredictRequest, hit: Cached) -> Answer:
        answer = Answer(
            request.request_id,
            hit.model,
            hit.version,
            hit.predictions,
            hit.probabilities,
            hit.classes,
            [],
            cached=True,
        )
        records = log_records(self.name, request, answer, self.model.pii, now=self._clock())
        self._stamp(records)
        await self._log.append_async(records)
        self.events.routed(self.name, "cache")
        return answer

    async def _fall_back(
        self,
        request: PredictRequest,
        reason: str,
        retry_after: int = 1,
        cause: BaseException | None = None,
    ) -> Answer:
        config = self.deployment.config
        if self.fallback is None and config.fallback is None:
            why = {
                "circuit_open": "its circuit is open after repeated failures",
                # The exception's type only: its text may hold paths or input values;
                # the server log has it (logged where it was caught).
                "model_error": f"the model failed on this batch ({type(cause).__name__}; "
                "the server log has the details)",
                "latency_budget": "it missed the latency budget",
            }[reason]
            raise ModelUnavailableError(
                f"endpoint {self.name!r} cannot answer: {why}; it has no fallback "
                "(setpoint deploy ... --fallback-model REF or --fallback-value VALUE)",
                retry_after=retry_after,
            ) from cause
        self.events.fallback(self.name, reason)
        copy = request.copy("fallback", fallback=True)
        if self.fallback is not None:
            if not self.fallback.breaker.allow():
                raise ModelUnavailableError(
                    f"endpoint {self.name!r}: both the model and its fallback model are failing",
                    retry_after=max(retry_after, self.fallback.breaker.retry_after()),
                )
            if copy.explain:
                self.fallback.model.explainer_or_default().check()
            answer = await self.fallback.predict(copy)
            if answer.error is not None:
                raise answer.error
        else:
            assert config.fallback is not None
            if request.explain:
                raise NotExplainableError(
                    f"endpoint {self.name!r}: the model could not answer and the fallback "
                    "is a constant value, which has no explanation; retry, or predict "
                    "without explain"
                )
            answer = Answer(
                request.request_id,
                self.model.version.name,
                self.model.version.version,
                [config.fallback.value] * request.n_rows,
                None,
                None,
                [],
                route="fallback",
                fallback=True,
            )
            records = log_records(self.name, copy, answer, self.model.pii, now=self._clock())
            self._stamp(records)
            await self._log.append_async(records)
            self.events.routed(self.name, "fallback")
        return answer

    def _shadow(self, request: PredictRequest) -> None:
        """Queue a copy for the challenger; the caller does not wait for it."""
        assert self.challenger is not None
        batcher = self.challenger.batcher
        backlog = _SHADOW_BACKLOG_BATCHES * self.deployment.config.batching.max_batch_size
        if batcher.queued_rows >= backlog or not self.challenger.breaker.allow():
            self.shadow_dropped += 1
            return
        copy = PredictRequest(
            request.columns, request.n_rows, request_id=request.request_id, route="shadow"
        )
        task = asyncio.ensure_future(self.challenger.predict(copy))
        self._background.add(task)
        task.add_done_callback(self._shadow_done)

    def _shadow_done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if task.cancelled() or task.exception() is not None:
            self.shadow_dropped += 1
