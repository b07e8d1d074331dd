"""Rows answered outside the contract's soft rules are marked alike in every protocol:
native JSON (``warnings``), OIP v2 (the response's ``parameters.warnings``, JSON text)
and MLflow scoring (a ``warnings`` key beside the predictions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pandas as pd
import pytest
from serving_support import MemoryLog, requests_of
from starlette.testclient import TestClient

from setpoint.workspace import Workspace

_DATATYPES = {"integer": "INT64", "numeric": "FP64", "categorical": "BYTES"}


def native(client: TestClient, rows: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    body = client.post("/v1/endpoints/credit/predict", json={"records": rows}).json()
    return body["predictions"], body.get("warnings")


def mlflow(client: TestClient, rows: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    body = client.post("/invocations", json={"dataframe_records": rows}).json()
    return body["predictions"], body.get("warnings")


def oip(client: TestClient, rows: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    kinds = client.get("/v1/endpoints/credit").json()["inputs"]["columns"]
    inputs = [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": _DATATYPES[kinds[name]["kind"]],
            "data": [r[name] for r in rows],
        }
        for name in rows[0]
    ]
    body = client.post("/v2/models/credit/infer", json={"inputs": inputs}).json()
    (predictions,) = [o["data"] for o in body["outputs"] if o["name"] == "predictions"]
    warnings = (body.get("parameters") or {}).get("warnings")
    return [int(p) for p in predictions], None if warnings is None else orjson.loads(warnings)


PROTOCOLS: dict[str, Callable[[TestClient, list[dict[str, Any]]], tuple[list[Any], Any]]] = {
    "native": native,
    "oip": oip,
    "mlflow": mlflow,
}


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_every_protocol_answers_and_marks_rows_past_the_training_range(
    client: TestClient,
    served: Workspace,
    history: pd.DataFrame,
    memory_log: MemoryLog,
    protocol: str,
) -> None:
    contract = served.registry.get("credit-risk@champion").contract
    assert contract is not None
    rows = [r for r in requests_of(history.head(40)) if None not in r.values()][:4]
    rows[1]["loan_amount"] = contract["columns"]["loan_amount"]["max"] * 1.25
    rows[3]["age"] = contract["columns"]["age"]["max"] + 5
    ask = PROTOCOLS[protocol]

    predictions, warnings = ask(client, rows)

    assert len(predictions) == 4
    assert None not in predictions
    assert [(w["row"], w["column"], w["rule"]) for w in warnings] == [
        (1, "loan_amount", "max"),
        (3, "age", "max"),
    ]
    marked = sorted(r["row"] for r in memory_log.records if r.get("violations"))
    assert marked == [1, 3]
    assert ask(client, [rows[0]])[1] is None  # a clean request carries no warnings
