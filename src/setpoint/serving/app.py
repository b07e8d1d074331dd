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

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from setpoint import __version__
from setpoint.errors import NotReadyError, SetpointError
from setpoint.serving import feedback as feedback_codec
from setpoint.serving import mlflow, native, oip, openapi, swagger
from setpoint.serving._hotpath import INTERNAL_ERROR, HotPath, ServingApp
from setpoint.serving._responses import error_response, json_response, read_body
from setpoint.serving.auth import AuthMiddleware, limited_to
from setpoint.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from setpoint.serving.runtime import EndpointRuntime, Log
from setpoint.serving.state import ServingState
from setpoint.ui.app import Dashboard
from setpoint.workspace import Workspace

logger = logging.getLogger("setpoint.serving")


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
            if state.loads != loads:
                state.meter.leave_out()  # loading a model is not serving predictions
                if freeze_heap:
                    _freeze_heap()  # once per model change: the old model's cycles go now

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, state.seed_request_ids)
        await asyncio.get_running_loop().run_in_executor(None, state.refresh)
        if freeze_heap:
            _freeze_heap()
        state.meter.leave_out()  # start-up is not serving predictions
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

    async def answer_native(
        endpoint: str, body: bytes, explain: bool = False, top: int | None = native.TOP
    ) -> tuple[int, bytes, list[Any]]:
        """The native predict route, shared by the Starlette routes (predict, explain)
        and the hot path; ``explain``: with each row's ``top`` contributions."""
        started = time.perf_counter()
        status, version = 500, None
        try:
            runtime = state.runtime(endpoint)
            request = native.decode(body)
            request.explain, request.top = explain, top
            answer = await runtime.predict(request)
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
        # Only a request with query parameters comes here: the hot path takes the rest.
        explain, top = native.explain_options(request.query_params, explain=False)
        body = await read_body(request, state)
        status, payload, _ = await answer_native(
            request.path_params["endpoint"], body, explain, top
        )
        return Response(payload, status_code=status, media_type="application/json")

    async def explain(request: Request) -> Response:
        _, top = native.explain_options(request.query_params, explain=True)
        body = await read_body(request, state)
        status, payload, _ = await answer_native(request.path_params["endpoint"], body, True, top)
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
        Route("/v1/endpoints/{endpoint}/explain", explain, methods=["POST"]),
        Route("/v1/endpoints/{endpoint}/feedback", feedback, methods=["POST"]),
    ]
    routes += oip.routes(state) + mlflow.routes(state)
    routes += openapi.routes(state) + swagger.routes(state)
    routes.append(Dashboard(workspace, state.guard, live=state.metrics.counts).mount())
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
