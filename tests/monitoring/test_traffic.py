"""Reading an endpoint's traffic from the logs: typed inputs, outputs and labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from setpoint.monitoring.traffic import parse_json_column, read_traffic
from setpoint.serving.log import RecordLog

KINDS: dict[str, Any] = {"income": "numeric", "term": "integer", "grade": "categorical"}
START = datetime(2026, 6, 1, tzinfo=UTC)


def prediction(i: int, inputs: dict[str, Any], route: str = "champion") -> dict[str, Any]:
    p = (i % 10) / 10
    return {
        "request_id": f"r{i}",
        "row": 0,
        "ts": START + timedelta(minutes=i),
        "endpoint": "credit",
        "model": "credit-risk",
        "version": 1,
        "route": route,
        "inputs": inputs,
        "outputs": {"prediction": int(p >= 0.5), "probabilities": [1 - p, p]},
        "latency_ms": 1.5,
        "cached": False,
        "fallback": False,
    }


def label(request_id: str, value: Any, minutes: int) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "row": 0,
        "ts": START + timedelta(days=1, minutes=minutes),
        "endpoint": "credit",
        "label": value,
    }


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    predictions = RecordLog(tmp_path, kind="predictions")
    predictions.append(
        [prediction(i, {"income": 1000.0 * i, "term": 36, "grade": "AB"[i % 2]}) for i in range(6)]
        + [prediction(6, {"income": None, "grade": "C", "extra": [1, 2]})]  # term absent
        + [prediction(7, {"income": 5.0, "term": 12, "grade": "A"}, route="shadow")]
    )
    predictions.close()
    feedback = RecordLog(tmp_path, kind="feedback")
    feedback.append([label("r1", 1, 0), label("r2", 0, 1), label("r1", 0, 2)])  # r1 corrected
    feedback.close()
    return tmp_path


def test_traffic_is_typed_in_order_without_shadow_copies(logged: Path) -> None:
    traffic = read_traffic(logged, "credit", KINDS)
    assert traffic.num_rows == 7
    assert traffic.inputs.schema.types == [pa.float64(), pa.float64(), pa.string()]
    assert traffic.inputs["income"].to_pylist() == [
        0.0,
        1000.0,
        2000.0,
        3000.0,
        4000.0,
        5000.0,
        None,
    ]
    assert traffic.inputs["term"].to_pylist()[-1] is None  # a key the row lacks
    assert traffic.predictions.to_pylist() == [0, 0, 0, 0, 0, 1, 1]
    assert traffic.probabilities is not None
    np.testing.assert_allclose(traffic.probabilities[3], [0.7, 0.3])
    assert traffic.labels is not None
    assert traffic.label_ts is not None
    # The latest label given wins; predictions without feedback have none.
    assert traffic.labels.to_pylist() == [None, 0, 0, None, None, None, None]
    assert traffic.label_ts.to_pylist()[1] == START + timedelta(days=1, minutes=2)


def test_a_window_reads_only_its_time_span(logged: Path) -> None:
    traffic = read_traffic(
        logged,
        "credit",
        KINDS,
        since=START + timedelta(minutes=2),
        until=START + timedelta(minutes=4),
    )
    assert traffic.log["request_id"].to_pylist() == ["r2", "r3"]
    assert read_traffic(logged, "other", KINDS).num_rows == 0


def test_numbers_sent_as_text_are_read_as_numbers() -> None:
    column = pa.array(
        ['{"income": "12.5", "term": 36, "grade": "A"}', '{"income": 3, "flag": "yes"}', None]
    )
    table = parse_json_column(column, {**KINDS, "flag": "boolean"})
    assert table["income"].to_pylist() == [12.5, 3.0, None]
    assert table["flag"].to_pylist() == [False, True, False]
    assert table["grade"].to_pylist() == ["A", None, None]


def test_marks_and_refused_rows_are_read_beside_the_answers(tmp_path: Path) -> None:
    marked = prediction(1, {"income": 9e9, "term": 36, "grade": "Z"})
    marked["violations"] = [
        {"column": "income", "rule": "max"},
        {"column": "grade", "rule": "category"},
    ]
    with RecordLog(tmp_path, kind="predictions") as log:
        log.append([prediction(0, {"income": 1.0, "term": 36, "grade": "A"}), marked])
    with RecordLog(tmp_path, kind="refused") as log:
        log.append(
            [
                {
                    "request_id": f"x{i}",
                    "ts": START + timedelta(minutes=i),
                    "endpoint": "credit",
                    "row": 0,
                    "model": "credit-risk",
                    "version": 1,
                    "inputs": {"income": value, "term": 36, "grade": "B"},
                    "reasons": [{"column": "income", "rule": "type", "value": str(value)}],
                }
                for i, value in enumerate(["lots", 7.0, "none"])
            ]
        )

    traffic = read_traffic(tmp_path, "credit", KINDS)
    assert traffic.violations is not None
    assert [v is not None for v in traffic.violations.to_pylist()] == [False, True]
    refused = traffic.refused
    assert refused is not None
    assert refused.num_rows == 3
    assert refused.inputs["income"].to_pylist() == [None, 7.0, None]  # not numbers: missing
    assert refused.inputs["grade"].to_pylist() == ["B"] * 3
    later = refused.between(START + timedelta(minutes=1), START + timedelta(minutes=3))
    assert later.inputs["income"].to_pylist() == [7.0, None]
    assert read_traffic(tmp_path, "credit", KINDS, with_refused=False).refused is None
    # An endpoint whose every row was refused still has its refusals read.
    assert read_traffic(tmp_path, "credit", KINDS, since=START + timedelta(minutes=2)).num_rows == 0
    alone = read_traffic(tmp_path, "credit", KINDS, since=START + timedelta(minutes=2)).refused
    assert alone is not None
    assert alone.num_rows == 1
