"""The HTTP server: one Starlette app serving every endpoint of a workspace.

The app loads each endpoint's model at start-up, then follows the workspace: every
``refresh_seconds`` it re-reads the deployments and resolves their model references,
loads a changed model beside the old one and swaps it in between batches, so no
request fails during a change. Errors leave the app only as the one JSON error
shape, with the status the error class carries; a bug is a 500 in the same shape.
Every timestamp the app writes to the prediction, feedback and refused logs comes from
its clock (``create_app(clock=...)``; the system's UTC time by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from setpoint import __version__
from setpoint.data.contract import Contract
from setpoint.errors import (
    ArtifactCorruptedError,
    DependencyMissingError,
    NotFoundError,
    NotReadyError,
    SetpointError,
    StoreError,
)
from setpoint.serving import feedback as feedback_codec
from setpoint.serving import native
from setpoint.serving._hotpath import (
    INTERNAL_ERROR,
    ClientGone,
    HotPath,
    ServingApp,
    error_reply,
)
from setpoint.serving._hotpath import read_body as read_asgi_body
from setpoint.serving._requestids import SEED_WINDOW, RecentIds, seed
from setpoint.serving.auth import AuthMiddleware, Guard, limited_to
from setpoint.serving.deployments import Deployment
from setpoint.serving.lane import utc_clock
from setpoint.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from setpoint.serving.metrics import ServingMetrics
from setpoint.serving.runtime import EndpointRuntime, LoadedModel, Log
from setpoint.workspace import Workspace

logger = logging.getLogger("setpoint.serving")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(error: SetpointError) -> Response:
    status, body, headers = error_reply(error)
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={k.decode(): v.decode() for k, v in headers},
    )


class ServingState:
    """The endpoints a server answers for, kept in step with the workspace."""

    def __init__(
        self,
        workspace: Workspace,
        log: Log,
        async_log: Log | None = None,
        clock: Callable[[], datetime] | None = None,
        refused_log: Log | None = None,
    ) -> None:
        self.workspace = workspace
        self.log = log
        self.async_log = async_log
        self.refused_log = refused_log
        self.clock = utc_clock(clock)  # stamps what is logged
        self.runtimes: dict[str, EndpointRuntime] = {}
        # endpoint -> why it cannot serve: the full message, with paths, for the server
        # log only; callers and probes get ``reasons`` (what failed, no paths)
        self.failures: dict[str, str] = {}
        self.reasons: dict[str, str] = {}
        self.metrics = ServingMetrics(lambda: self.runtimes, log=log)
        self.max_request_bytes = workspace.settings.max_request_bytes
        self.body_timeout = workspace.settings.body_timeout_seconds
        self.guard = Guard(required=workspace.settings.require_keys)
        self.retired: list[EndpointRuntime] = []  # replaced, to be closed on the loop
        self.loads = 0  # models loaded so far
        # endpoint -> the ids its clients chose lately; outlives model changes
        self.request_ids: dict[str, RecentIds] = {}

    def seed_request_ids(self) -> None:
        """Remember the request ids the prediction log holds from the last
        ``SEED_WINDOW``, so an id answered before a restart is still refused."""
        for endpoint, ids in seed(self.workspace.root, self.clock() - SEED_WINDOW).items():
            known = self.request_ids.setdefault(endpoint, RecentIds())
            for request_id in ids:
                known.add(request_id)

    def runtime(self, endpoint: str) -> EndpointRuntime:
        found = self.runtimes.get(endpoint)
        if found is not None:
            return found
        if endpoint in self.failures:
            raise NotReadyError(
                f"endpoint {endpoint!r} cannot serve: {self.reason(endpoint)}",
                details={"endpoints": [self._not_ready(endpoint)]},
            )
        raise NotFoundError(
            f"no endpoint {endpoint!r}; this server has "
            f"{', '.join(sorted(self.runtimes)) or 'none'}; create one with: "
            f"setpoint deploy {endpoint} --model NAME@champion"
        )

    def names(self) -> list[str]:
        """Every endpoint this server answers for, loaded or not, by name."""
        return sorted(set(self.runtimes) | set(self.failures))

    def only_endpoint(self) -> str | None:
        """The endpoint a route naming none (``/invocations``) serves: the only one."""
        names = self.names()
        return names[0] if len(names) == 1 else None

    def refresh(self) -> None:
        """Load new endpoints, changed models and API keys; runs in a worker thread."""
        self.guard.update(
            self.workspace.keys.list(include_revoked=True),
            required=self.workspace.settings.require_keys,
        )
        for deployment in self.workspace.deployments.current():
            try:
                self._follow(deployment)
                self.failures.pop(deployment.endpoint, None)
                self.reasons.pop(deployment.endpoint, None)
            except SetpointError as error:
                self.failures[deployment.endpoint] = error.message
                self.reasons[deployment.endpoint] = public_reason(error)
                logger.error("endpoint %s: %s", deployment.endpoint, error.message)

    def reason(self, endpoint: str) -> str:
        """Why ``endpoint`` cannot serve, as callers may read it: no paths."""
        return self.reasons.get(endpoint, _CANNOT_LOAD + _SEE_LOG)

    def _not_ready(self, endpoint: str) -> dict[str, Any]:
        return {"endpoint": endpoint, "ready": False, "reason": self.reason(endpoint)}

    def not_ready(self) -> NotReadyError | None:
        """What a readiness probe answers while an endpoint cannot serve (or none is
        loaded yet); None when every endpoint is ready."""
        if not self.failures and self.runtimes:
            return None
        if not self.failures:
            return NotReadyError("no endpoint is loaded yet", details={"endpoints": []})
        return NotReadyError(
            f"{len(self.failures)} endpoint(s) cannot serve: "
            + "; ".join(f"{n}: {self.reason(n)}" for n in sorted(self.failures)),
            details={"endpoints": [self._not_ready(n) for n in sorted(self.failures)]},
        )

    def _follow(self, deployment: Deployment) -> None:
        config = deployment.config
        current = self.runtimes.get(deployment.endpoint)
        refs = {
            "champion": config.model,
            "challenger": config.challenger,
            "fallback": config.fallback.model if config.fallback else None,
        }
        if current is None or current.deployment.revision != deployment.revision:
            loaded = (
                {}
                if current is None
                else {lane.model.version.id: lane.model for lane in current.lanes()}
            )
            models = {
                role: None if ref is None else self._resolve(ref, loaded)
                for role, ref in refs.items()
            }
            champion = models["champion"]
            assert champion is not None
            self.runtimes[deployment.endpoint] = EndpointRuntime(
                deployment,
                champion,
                self.log,
                async_log=self.async_log,
                challenger=models["challenger"],
                fallback=models["fallback"],
                events=self.metrics,
                clock=self.clock,
                refused_log=self.refused_log,
                request_ids=self.request_ids.setdefault(deployment.endpoint, RecentIds()),
            )
            if current is not None:
                self.retired.append(current)  # closed on the event loop once idle
            return
        lanes = {
            "champion": current.champion,
            "challenger": current.challenger,
            "fallback": current.fallback,
        }
        for role, ref in refs.items():
            lane = lanes[role]
            if ref is None or lane is None:
                continue
            version = self.workspace.registry.get(ref)
            if lane.model.version.id == version.id:
                continue
            model = self._load(version.ref)
            if role == "champion":
                current.swap(model)
            else:
                lane.model = model
            logger.info("endpoint %s: the %s is now %s", deployment.endpoint, role, version.ref)

    def _resolve(self, ref: str, loaded: dict[int, LoadedModel]) -> LoadedModel:
        version = self.workspace.registry.get(ref)
        return loaded.get(version.id) or self._load(version.ref)

    def _load(self, ref: str) -> LoadedModel:
        self.loads += 1
        version = self.workspace.registry.get(ref)
        predictor = self.workspace.registry.load(version)
        if version.contract is None:
            raise NotReadyError(f"{version.ref} has no contract; register it with reference data")
        contract = Contract.from_dict(version.contract)
        policy = self.workspace.pii_policy(contract)
        return LoadedModel(version, predictor, contract, policy.secret)


_CANNOT_LOAD = "its model could not be loaded"
_SEE_LOG = " (see the server log)"
_REASONS: dict[type[SetpointError], str] = {
    ArtifactCorruptedError: ": an artifact of the model is missing or damaged",
    NotFoundError: ": the model or version it names does not exist",
    DependencyMissingError: ": a library the model needs is not installed",
    StoreError: ": the metadata store cannot be read",
}


def public_reason(error: SetpointError) -> str:
    """What failed, for a probe or a caller: the kind of failure, never the message,
    which may hold file-system paths and URLs (those go to the server log)."""
    detail = next((text for kind, text in _REASONS.items() if isinstance(error, kind)), "")
    return _CANNOT_LOAD + detail + _SEE_LOG


def create_app(
    workspace: Workspace,
    log: Log,
    *,
    feedback_log: Log | None = None,
    async_log: Log | None = None,
    refused_log: Log | None = None,
    refresh_seconds: float | None = None,
    max_request_bytes: int | None = None,
    body_timeout_seconds: float | None = None,
    freeze_heap: bool = False,
    clock: Callable[[], datetime] | None = None,
    background: Callable[[threading.Event], None] | None = None,
) -> Starlette:
    """The app for every endpoint of ``workspace``, recording predictions in ``log``
    (or in ``async_log``, for endpoints deployed with ``log=async``), ground truth
    in ``feedback_log``, and the rows it refuses for their values (with the reasons)
    in ``refused_log``, durably, before the refusal is sent. ``freeze_heap`` (for a
    server process of its own) takes what is loaded out of the garbage collector's
    full passes; see ``_freeze_heap``.

    ``clock`` gives the ``ts`` of every record the app logs — predictions (including
    cached, fallback and shadow answers), feedback and refused rows; default: the system's time in
    UTC. It is read once per batch; a naive datetime is taken as UTC. The demo runs
    this app with a simulated clock, so weeks of traffic take seconds.

    ``background`` runs in a thread for the server's lifetime and is told to stop (its
    event is set) when the server stops: the job worker or the loop, see
    ``setpoint.loop.background``."""
    state = ServingState(workspace, log, async_log, clock, refused_log)
    if max_request_bytes is not None:
        state.max_request_bytes = max_request_bytes
    if body_timeout_seconds is not None:
        state.body_timeout = body_timeout_seconds
    refresh_every = refresh_seconds or workspace.settings.refresh_seconds

    async def follow() -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(refresh_every)
            loads = state.loads
            try:
                await loop.run_in_executor(None, state.refresh)
            except Exception:  # the store may be unreachable for a moment: keep serving
                logger.exception("refreshing the deployments failed; serving what is loaded")
            while state.retired:  # requests already in them finish there
                await state.retired.pop().close()
            if freeze_heap and state.loads != loads:
                _freeze_heap()  # once per model change: the old model's cycles go now

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, state.seed_request_ids)
        await asyncio.get_running_loop().run_in_executor(None, state.refresh)
        if freeze_heap:
            _freeze_heap()
        task = asyncio.ensure_future(follow())
        state.metrics.start()
        stop = threading.Event()
        helper = None
        if background is not None:
            helper = threading.Thread(
                target=background, args=(stop,), name="setpoint-background", daemon=True
            )
            helper.start()
        try:
            yield
        finally:
            stop.set()
            task.cancel()
            for runtime in [*state.runtimes.values(), *state.retired]:
                await runtime.close()  # answer what was accepted
            state.metrics.close()
            await asyncio.get_running_loop().run_in_executor(None, log.close)
            if async_log is not None:
                await asyncio.get_running_loop().run_in_executor(None, async_log.close)
            for other in (feedback_log, refused_log):
                if other is not None:
                    await asyncio.get_running_loop().run_in_executor(None, other.close)
            if helper is not None:  # a job under way is left to its lease
                await asyncio.get_running_loop().run_in_executor(None, helper.join, 5.0)

    async def healthz(_request: Request) -> Response:
        return json_response({"status": "alive", "version": __version__})

    async def readyz(_request: Request) -> Response:
        if state.failures:  # before the first load, no endpoint is ready (200, as before)
            return error_response(state.not_ready())  # type: ignore[arg-type]
        return json_response(
            {
                "status": "ready",
                "endpoints": {n: r.model.version.ref for n, r in state.runtimes.items()},
            }
        )

    async def list_endpoints(request: Request) -> Response:
        only = limited_to(request.scope)  # a key limited to one endpoint sees that one
        return json_response(
            [_describe(r) for n, r in sorted(state.runtimes.items()) if only in (None, n)]
        )

    async def show_endpoint(request: Request) -> Response:
        return json_response(_describe(state.runtime(request.path_params["endpoint"]), schema=True))

    async def answer_native(endpoint: str, body: bytes) -> tuple[int, bytes, list[Any]]:
        """The native predict route, shared by the Starlette route and the hot path."""
        started = time.perf_counter()
        status, version = 500, None
        try:
            runtime = state.runtime(endpoint)
            answer = await runtime.predict(native.decode(body))
            status, version = 200, answer.version
            return 200, native.encode(answer, endpoint=runtime.name), []
        except SetpointError as error:
            status = error.http_status
            raise
        finally:
            if endpoint in state.runtimes:  # no label per unknown name a caller invents
                state.metrics.observe(
                    endpoint, version, "native", status, time.perf_counter() - started
                )

    async def predict(request: Request) -> Response:
        body = await read_body(request, state)
        status, payload, _ = await answer_native(request.path_params["endpoint"], body)
        return Response(payload, status_code=status, media_type="application/json")

    async def feedback(request: Request) -> Response:
        runtime = state.runtime(request.path_params["endpoint"])
        if feedback_log is None:
            raise NotReadyError("this server was started without a feedback log")
        records = feedback_codec.decode(
            await read_body(request, state), runtime.name, now=state.clock()
        )
        await feedback_log.append_async(records)
        return json_response({"endpoint": runtime.name, "accepted": len(records)})

    async def metrics(_request: Request) -> Response:
        return Response(state.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/v1/endpoints", list_endpoints),
        Route("/v1/endpoints/{endpoint}", show_endpoint),
        Route("/v1/endpoints/{endpoint}/predict", predict, methods=["POST"]),
        Route("/v1/endpoints/{endpoint}/feedback", feedback, methods=["POST"]),
    ]
    # The other protocols build on this module's helpers, so they load here, not at the top.
    from setpoint.serving import mlflow, oip, openapi, swagger

    routes += oip.routes(state) + mlflow.routes(state)
    routes += openapi.routes(state) + swagger.routes(state)
    app = ServingApp(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(AuthMiddleware, guard=state.guard, only_endpoint=state.only_endpoint)
        ],
        exception_handlers={
            SetpointError: _setpoint_error,  # type: ignore[dict-item]
            HTTPException: _http_error,  # type: ignore[dict-item]
            Exception: _internal_error,
        },
    )
    app.hot = HotPath(
        answer_native, state.guard, lambda: state.max_request_bytes, lambda: state.body_timeout
    )
    app.state.serving = state
    return app


def _freeze_heap() -> None:
    """Take every object alive now (libraries, loaded models) out of the cyclic garbage
    collector's passes.

    Measured under load (bench/serving.py, docs/benchmarks.md): with a model and its
    libraries loaded, each full collection walked every long-lived object and stalled
    the server for 120-170 ms, several times in ten seconds: that was the p99. Frozen,
    a full collection sees only what requests allocated since. Objects stay reference
    counted; only cycles among frozen objects wait for the next model change, when the
    heap is collected once and frozen again.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def read_body(request: Request, state: ServingState) -> bytes:
    """The body of ``request``, refusing more than the state's ``max_request_bytes``
    (413) and a body slower than its ``body_timeout`` (408)."""
    try:
        return await read_asgi_body(
            request.scope, request.receive, state.max_request_bytes, state.body_timeout
        )
    except ClientGone:
        raise ClientDisconnect from None


def _describe(runtime: EndpointRuntime, *, schema: bool = False) -> dict[str, Any]:
    model, config = runtime.model, runtime.deployment.config
    out: dict[str, Any] = {
        "endpoint": runtime.name,
        "revision": runtime.deployment.revision,
        "model": model.version.name,
        "version": model.version.version,
        "follows": config.model,
        "task": model.version.task,
    }
    if schema:  # ranges and categories only where the deployment shows them
        out["inputs"] = model.contract.redacted(values=config.docs_values).to_dict()
        out["outputs"] = model.predictor.output_schema()
    return out


async def _setpoint_error(_request: Request, error: SetpointError) -> Response:
    return error_response(error)


_HTTP_CODES: dict[int, str] = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, error: HTTPException) -> Response:
    code = _HTTP_CODES.get(error.status_code, "http_error")
    message = (
        f"no route {request.method} {request.url.path}; see /docs for the API"
        if error.status_code == 404
        else f"{request.method} is not allowed on {request.url.path}"
        if error.status_code == 405
        else str(error.detail)
    )
    body = {"error": {"code": code, "message": message, "details": None}}
    return json_response(body, error.status_code, dict(error.headers or {}))


async def _internal_error(_request: Request, error: Exception) -> Response:
    logger.exception("unexpected error", exc_info=error)
    return Response(INTERNAL_ERROR, 500, media_type="application/json")
