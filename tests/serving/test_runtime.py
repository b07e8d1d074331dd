"""Routes and resilience through the app: cache, canary, shadow, breaker, fallback,
latency budget and load shedding.

Models that must be slow or failing are the real trained model behind a gate (a
threading.Event the test opens) or a switch that makes it raise: what the runtime
does is then decided by the test, not by timing.
"""

from __future__ import annotations

import dataclasses
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pytest
from serving_support import SPEC, MemoryLog, assert_error_shape, requests_of
from starlette.testclient import TestClient

from setpoint.serving.app import create_app
from setpoint.serving.config import Fallback
from setpoint.serving.lane import LoadedModel
from setpoint.serving.runtime import EndpointRuntime
from setpoint.workspace import Workspace

# Routing and resilience in the server, not the stores: on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database

PREDICT = "/v1/endpoints/credit/predict"


class Gated:
    """A predictor that waits for ``gate`` (and raises while ``failing``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.failing = False
        self.error: Exception = RuntimeError("the model broke")
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _pass(self) -> None:
        self.calls += 1
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        if self.failing:
            raise self.error

    def predict(self, data: Any) -> Any:
        self._pass()
        return self.inner.predict(data)

    def predict_proba(self, data: Any) -> Any:
        return self.inner.predict_proba(data)


def gate(runtime: EndpointRuntime, role: str = "champion") -> Gated:
    lane = getattr(runtime, role)
    model = lane.model
    gated = Gated(model.predictor)
    lane.model = LoadedModel(model.version, gated, model.contract)  # type: ignore[arg-type]
    return gated


@pytest.fixture
def rows(history: pd.DataFrame) -> list[dict[str, Any]]:
    return requests_of(history.head(50))


def serve(workspace: Workspace, log: MemoryLog) -> TestClient:
    return TestClient(create_app(workspace, log, refresh_seconds=3600))


def runtime_of(client: TestClient) -> EndpointRuntime:
    runtime: EndpointRuntime = client.app.state.serving.runtimes["credit"]  # type: ignore[attr-defined]
    return runtime


def post(client: TestClient, row: dict[str, Any]) -> Any:
    return client.post(PREDICT, json={"records": [row]})


# -- cache --------------------------------------------------------------------------------


def test_repeated_inputs_are_answered_from_the_cache_and_still_logged(
    served: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    served.deploy("credit", cache_enabled=True)
    with serve(served, memory_log) as client:
        first = post(client, rows[0]).json()
        reordered = dict(reversed(list(rows[0].items())))  # column order does not matter
        second = post(client, reordered).json()
        other = post(client, rows[1]).json()
        assert first["flags"]["cached"] is False
        assert second["flags"]["cached"] is True
        assert other["flags"]["cached"] is False
        assert second["probabilities"] == first["probabilities"]
        assert second["request_id"] != first["request_id"]
        logged = {r["request_id"]: r for r in memory_log.records}
        assert logged[second["request_id"]]["cached"] is True
        assert logged[first["request_id"]]["cached"] is False
        metrics = client.get("/metrics").text
        assert 'setpoint_cache_requests_total{endpoint="credit",result="hit"} 1.0' in metrics
        assert 'setpoint_cache_requests_total{endpoint="credit",result="miss"} 2.0' in metrics

        runtime = runtime_of(client)
        assert runtime.cache is not None
        assert len(runtime.cache) == 2
        runtime.swap(runtime.model)  # a new version is served: old answers go
        assert len(runtime.cache) == 0
        assert post(client, rows[0]).json()["flags"]["cached"] is False


# -- columns measured, not used ------------------------------------------------------------


def test_the_specs_sensitive_columns_are_taken_and_logged_but_other_columns_refused(
    served: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    with serve(served, memory_log) as client:
        lane = runtime_of(client).champion
        model = lane.model
        fairness = {"sensitive": ["region"], "max_disparity": 0.1}
        version = dataclasses.replace(model.version, spec={**SPEC, "fairness": fairness})
        lane.model = LoadedModel(version, model.predictor, model.contract)
        plain = post(client, rows[0]).json()
        answer = post(client, {**rows[0], "region": "south"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["probabilities"] == plain["probabilities"]  # not a model input
        logged = {r["request_id"]: r for r in memory_log.records}
        assert logged[answer.json()["request_id"]]["inputs"]["region"] == "south"
        other = post(client, {**rows[0], "nickname": "x"})
        assert other.status_code == 422
        assert "nickname that the model does not take" in other.json()["error"]["message"]


# -- canary and shadow --------------------------------------------------------------------


@pytest.fixture
def challenged(served: Workspace) -> Workspace:
    spec = {**SPEC, "estimator": {**SPEC["estimator"], "params": {"max_iter": 500, "C": 0.01}}}
    served.train(spec)  # version 2, not promoted
    return served


def test_a_canary_answers_its_share_and_a_sticky_key_keeps_its_route(
    challenged: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    challenged.deploy("credit", challenger="credit-risk@2", mode="canary", share=0.3)
    n = 400
    with serve(challenged, memory_log) as client:
        versions = [post(client, rows[i % len(rows)]).json()["version"] for i in range(n)]
        canary = versions.count(2)
        # Binomial(400, 0.3): mean 120, sd 9.2; 4 sd either side.
        assert 83 <= canary <= 157, canary
        routes = {r["request_id"]: r["route"] for r in memory_log.records}
        assert sorted(set(routes.values())) == ["canary", "champion"]
        assert list(routes.values()).count("canary") == canary

    challenged.deploy("credit", sticky_key="purpose")
    with serve(challenged, memory_log) as client:
        by_purpose: dict[str, set[int]] = {}
        for i in range(120):
            row = rows[i % len(rows)]
            by_purpose.setdefault(row["purpose"], set()).add(post(client, row).json()["version"])
        assert all(len(seen) == 1 for seen in by_purpose.values()), by_purpose


def test_shadow_copies_are_logged_and_the_caller_does_not_wait_for_them(
    challenged: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    challenged.deploy("credit", challenger="credit-risk@2", mode="shadow")
    with serve(challenged, memory_log) as client:
        runtime = runtime_of(client)
        shadow = gate(runtime, "challenger")
        shadow.gate.clear()  # the challenger cannot finish anything
        answers = [post(client, rows[i]).json() for i in range(5)]
        # Every caller was answered by the champion while the shadow was stuck.
        assert [a["version"] for a in answers] == [1] * 5
        assert shadow.entered.wait(10)
        assert {r["route"] for r in memory_log.records} == {"champion"}
        shadow.gate.set()
    # Leaving the app drains the shadow work: each request has both records.
    by_id: dict[str, dict[str, Any]] = {}
    for record in memory_log.records:
        by_id.setdefault(record["request_id"], {})[record["route"]] = record
    assert set(by_id) == {a["request_id"] for a in answers}
    for routes in by_id.values():
        assert set(routes) == {"champion", "shadow"}
        assert (routes["champion"]["version"], routes["shadow"]["version"]) == (1, 2)


# -- breaker and fallback -----------------------------------------------------------------


def test_a_failing_model_opens_its_circuit_and_the_fallback_answers(
    served: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    served.deploy("credit", fallback=Fallback(value=0))
    with serve(served, memory_log) as client:
        runtime = runtime_of(client)
        model = gate(runtime)
        model.failing = True
        answers = [post(client, rows[i]) for i in range(8)]
        assert all(a.status_code == 200 for a in answers), answers[0].text
        bodies = [a.json() for a in answers]
        assert all(b["flags"]["fallback"] for b in bodies)
        assert all(b["predictions"] == [0] for b in bodies)
        threshold = runtime.champion.breaker.threshold
        assert model.calls == threshold  # once open, the model is not called any more
        assert runtime.circuit_state() == 2
        assert {r["route"] for r in memory_log.records} == {"fallback"}
        assert all(r["fallback"] for r in memory_log.records)
        metrics = client.get("/metrics").text
        assert 'setpoint_circuit_state{endpoint="credit",model="credit-risk"} 2.0' in metrics
        assert 'reason="circuit_open"' in metrics
        assert 'reason="model_error"' in metrics

        # After the cool-down a trial goes through; the model works again: closed.
        model.failing = False
        runtime.champion.breaker.cooldown_s = 0.0
        healed = post(client, rows[0]).json()
        assert healed["flags"]["fallback"] is False
        assert runtime.circuit_state() == 0


def test_without_a_fallback_a_failing_model_is_a_503_with_retry_after(
    served: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    with serve(served, memory_log) as client:
        gate(runtime_of(client)).failing = True
        for i in range(7):
            response = post(client, rows[i])
            assert_error_shape(response, 503, "model_unavailable")
            assert int(response.headers["retry-after"]) >= 1
        assert memory_log.records == []  # nothing was answered, nothing is logged


def test_an_answer_past_the_latency_budget_comes_from_the_fallback_model(
    challenged: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    challenged.deploy("credit", fallback=Fallback(model="credit-risk@2"), latency_budget_ms=50)
    with serve(challenged, memory_log) as client:
        model = gate(runtime_of(client))
        model.gate.clear()
        body = post(client, rows[0]).json()
        assert body["flags"]["fallback"] is True
        assert body["version"] == 2
        model.gate.set()
    # The late answer of the champion is not logged: the caller got the fallback's.
    assert [(r["route"], r["version"]) for r in memory_log.records] == [("fallback", 2)]


# -- load shedding ------------------------------------------------------------------------


def test_beyond_the_queue_bound_requests_are_shed_with_503_and_the_accepted_are_answered(
    served: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    served.deploy("credit", max_queue_rows=4, max_batch_size=2)
    with serve(served, memory_log) as client:
        model = gate(runtime_of(client))
        model.gate.clear()
        with ThreadPoolExecutor(12) as pool:
            first = pool.submit(post, client, rows[0])
            assert model.entered.wait(10)  # the model is busy with the first batch
            rest = [pool.submit(post, client, rows[i]) for i in range(1, 12)]
            shed = _wait_for_shed(rest, expected=7)
            model.gate.set()
            answers = [first.result(), *[f.result() for f in rest]]
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(ok) == 5
    assert len(refused) == 7 == shed
    for response in refused:
        assert_error_shape(response, 503, "overloaded")
        assert response.headers["retry-after"] == "1"
    assert len(memory_log.records) == 5


def _wait_for_shed(futures: list[Any], expected: int) -> int:
    """Wait (with a deadline) until ``expected`` of ``futures`` are done: the shed ones."""
    import concurrent.futures

    done: set[Any] = set()
    pending = set(futures)
    while len(done) < expected:
        finished, pending = concurrent.futures.wait(
            pending, timeout=10, return_when=concurrent.futures.FIRST_COMPLETED
        )
        assert finished, f"only {len(done)} requests were shed"
        done |= finished
    return len(done)


# -- a failing canary ---------------------------------------------------------------------


def canary_rows(rows: list[dict[str, Any]], share: float) -> list[dict[str, Any]]:
    """The rows whose ``purpose`` (the sticky key) routes them to the canary."""
    routed = [r for r in rows if zlib.crc32(str(r["purpose"]).encode()) / 2**32 < share]
    assert routed, "no purpose in the rows routes to the canary; pick another share"
    return routed


def test_a_failing_canary_is_answered_by_the_champion_and_logged_as_its_failure(
    challenged: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    challenged.deploy("credit", challenger="credit-risk@2", mode="canary", share=0.5)
    n = 100
    with serve(challenged, memory_log) as client:
        runtime = runtime_of(client)
        canary = gate(runtime, "challenger")
        canary.failing = True  # raises on every predict
        answers = [post(client, rows[i % len(rows)]) for i in range(n)]
        assert all(a.status_code == 200 for a in answers), answers[0].text
        bodies = [a.json() for a in answers]
        metrics = client.get("/metrics").text
        # Its circuit opened after a few failed batches; the champion kept answering.
        assert canary.calls == runtime.challenger.breaker.threshold  # type: ignore[union-attr]
        assert runtime.challenger.breaker.state == 2  # type: ignore[union-attr]
        assert runtime.circuit_state() == 0
    assert {b["version"] for b in bodies} == {1}
    routes = [(r["route"], r["fallback"], r["model"], r["version"]) for r in memory_log.records]
    assert len(routes) == n
    failed = routes.count(("canary", True, "credit-risk", 1))
    # Binomial(100, 0.5): mean 50, sd 5; 5 sd either side.
    assert 25 <= failed <= 75, failed
    assert routes.count(("champion", False, "credit-risk", 1)) == n - failed
    assert not [r for r in memory_log.records if r["route"] == "canary" and not r["fallback"]]
    assert sum(b["flags"]["fallback"] for b in bodies) == failed
    assert f'setpoint_fallbacks_total{{endpoint="credit",reason="canary_error"}} {failed}.0' in (
        metrics
    )
    assert 'route="canary"} ' in metrics


def test_a_canary_whose_circuit_is_open_keeps_answering_through_the_champion(
    challenged: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    share = 0.5
    challenged.deploy(
        "credit",
        challenger="credit-risk@2",
        mode="canary",
        share=share,
        sticky_key="purpose",
        fallback=Fallback(value=0),
    )
    routed = canary_rows(rows, share)
    with serve(challenged, memory_log) as client:
        runtime = runtime_of(client)
        assert runtime.challenger is not None
        canary = gate(runtime, "challenger")
        canary.failing = True
        for i in range(runtime.challenger.breaker.threshold + 10):
            response = post(client, routed[i % len(routed)])
            assert response.status_code == 200, response.text
            body = response.json()
            # The champion answers, not the endpoint's fallback (a constant 0).
            assert (body["version"], body["flags"]["fallback"]) == (1, True)
        assert runtime.challenger.breaker.state == 2
        assert canary.calls == runtime.challenger.breaker.threshold

        # Healed, the canary answers again after its cool-down.
        canary.failing = False
        runtime.challenger.breaker.cooldown_s = 0.0
        body = post(client, routed[0]).json()
        assert (body["version"], body["flags"]["fallback"]) == (2, False)
    records = [(r["route"], r["fallback"], r["version"]) for r in memory_log.records]
    assert records == [("canary", True, 1)] * (len(records) - 1) + [("canary", False, 2)]


def test_when_the_champion_fails_too_the_usual_fallback_answers(
    challenged: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    share = 0.5
    challenged.deploy(
        "credit", challenger="credit-risk@2", mode="canary", share=share, sticky_key="purpose"
    )
    routed = canary_rows(rows, share)
    with serve(challenged, memory_log) as client:
        runtime = runtime_of(client)
        gate(runtime, "challenger").failing = True
        gate(runtime).failing = True
        assert_error_shape(post(client, routed[0]), 503, "model_unavailable")
        assert memory_log.records == []

    challenged.deploy("credit", fallback=Fallback(value=0))
    with serve(challenged, memory_log) as client:
        runtime = runtime_of(client)
        gate(runtime, "challenger").failing = True
        gate(runtime).failing = True
        body = post(client, routed[0]).json()
        assert (body["predictions"], body["flags"]["fallback"]) == ([0], True)
        metrics = client.get("/metrics").text
        assert 'reason="canary_error"} 1.0' in metrics
        assert 'reason="model_error"} 1.0' in metrics
    assert [(r["route"], r["fallback"]) for r in memory_log.records] == [("fallback", True)]


def test_a_bad_request_routed_to_the_canary_is_not_retried_on_the_champion(
    challenged: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    share = 0.5
    challenged.deploy(
        "credit", challenger="credit-risk@2", mode="canary", share=share, sticky_key="purpose"
    )
    bad = {**canary_rows(rows, share)[0], "income": "lots"}
    with serve(challenged, memory_log) as client:
        runtime = runtime_of(client)
        champion = gate(runtime)
        assert_error_shape(post(client, bad), 422, "contract_violation")
        assert champion.calls == 0
        assert runtime.challenger is not None
        assert runtime.challenger.breaker.state == 0  # the caller's error, not the model's
        assert "canary_error" not in client.get("/metrics").text
    assert memory_log.records == []


def test_a_canary_past_the_latency_budget_goes_to_the_fallback_as_before(
    challenged: Workspace, memory_log: MemoryLog, rows: list[dict[str, Any]]
) -> None:
    share = 0.5
    challenged.deploy(
        "credit",
        challenger="credit-risk@2",
        mode="canary",
        share=share,
        sticky_key="purpose",
        fallback=Fallback(value=0),
        latency_budget_ms=50,
    )
    with serve(challenged, memory_log) as client:
        canary = gate(runtime_of(client), "challenger")
        canary.gate.clear()
        body = post(client, canary_rows(rows, share)[0]).json()
        assert (body["predictions"], body["flags"]["fallback"]) == ([0], True)
        canary.gate.set()
    assert [(r["route"], r["fallback"]) for r in memory_log.records] == [("fallback", True)]


def test_a_failing_model_tells_the_caller_what_failed_and_the_log_why(
    served: Workspace,
    memory_log: MemoryLog,
    rows: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve(served, memory_log) as client:
        model = gate(runtime_of(client))
        model.failing = True
        model.error = FileNotFoundError("[Errno 2] No such file: '/srv/models/w.bin' for 'x@y'")
        response = post(client, rows[0])
    assert_error_shape(response, 503, "model_unavailable")
    message = response.json()["error"]["message"]
    assert "FileNotFoundError" in message
    assert "/srv" not in response.text
    assert "x@y" not in response.text
    assert "/srv/models/w.bin" in caplog.text  # the server log has the details
