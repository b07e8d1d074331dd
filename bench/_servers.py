"""The two baselines of bench/serving.py, as uvicorn app factories.

- ``constant_app``: a bare Starlette endpoint that reads the body and returns a
  constant: the cost of HTTP, uvicorn and Starlette alone.
- ``bare_predict_app``: a bare Starlette endpoint that parses the JSON body and calls
  the same registered model's ``predict_proba`` for each request: what a hand-written
  model server does, without validation, batching, logging, auth or metrics.
"""

from __future__ import annotations

import os

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_CONSTANT = orjson.dumps({"predictions": [0], "probabilities": [[0.9, 0.1]]})


def constant_app() -> Starlette:
    async def handle(request: Request) -> Response:
        await request.body()
        return Response(_CONSTANT, media_type="application/json")

    return Starlette(routes=[Route("/predict", handle, methods=["POST"])])


def bare_predict_app() -> Starlette:
    from setpoint.workspace import Workspace

    workspace = Workspace.open(os.environ["SETPOINT_WORKSPACE"])
    predictor = workspace.load_model(os.environ["BENCH_MODEL"])

    async def handle(request: Request) -> Response:
        records = orjson.loads(await request.body())["records"]
        proba = predictor.predict_proba(records)
        body = {"probabilities": proba.tolist() if proba is not None else None}
        return Response(orjson.dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/predict", handle, methods=["POST"])])
