"""The OpenAPI document against the server itself, with schemathesis: every operation,
generated valid and invalid requests, all of schemathesis's checks (no server error,
status codes, content types, response schemas and headers, valid data accepted,
invalid data refused, auth not ignored, unsupported methods).

The app is served in-process (ASGI) with a trained model, API keys required, and an
admin key sent on every request, including the one that reads the document from
``/openapi.json``. Hypothesis is derandomized and bounded, so a run is
reproducible and takes a few minutes at most. The operations are driven from the test
(``operation.as_strategy``) rather than by ``schema.parametrize``: the schema is made
from a workspace the test builds, and schemathesis's lazy pytest loader does not
work with this pytest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from serving_support import SPEC, MemoryLog
from starlette.testclient import TestClient

from setpoint.demo import lending
from setpoint.serving import openapi
from setpoint.serving.app import create_app
from setpoint.workspace import Workspace

EXAMPLES = 100  # per operation and mode
# Bodies of model data: their schema cannot state every rule the server checks (columns
# of one length, a tensor's data matching its shape, the model's own limits), so a body
# valid by the schema may get 400 or 422. Every other check applies to them.
MODEL_DATA = ("/predict", "/explain", "/infer", "/invocations")


@pytest.mark.slow
def test_the_server_does_what_its_document_says(tmp_path: Path) -> None:
    workspace = Workspace.init(tmp_path / "ws", actor="test")
    history = lending.applications(600, start=datetime(2026, 1, 1, tzinfo=UTC), seed=3)
    workspace.add_dataset("loans", history)
    version = workspace.train(SPEC)
    workspace.promote(version.name, version.version)
    workspace.deploy("credit", model="credit-risk")
    _, token = workspace.keys.create("admin")
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(workspace, MemoryLog(), feedback_log=MemoryLog(), refused_log=MemoryLog())
    state = app.state.serving
    state.refresh()  # the document is made from the loaded endpoints
    served = TestClient(app).get("/openapi.json", headers=auth)  # as a client reads it
    assert served.status_code == 200, served.text
    assert served.json() == openapi.document(state)
    schema = schemathesis.openapi.from_dict(served.json())
    schema.app = app
    load_all_checks()
    checks = CHECKS.get_all()
    failures: list[str] = []
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            # Model data: the document cannot state every contract rule (valid-looking
            # data may be refused), and the contract reads a number or true/false sent
            # for a text column by its text form (a zip code sent as 2100), which the
            # document's "type: string" does not say. Open: issue 15's note.
            excluded = (
                [positive_data_acceptance, negative_data_rejection]
                if operation.path.endswith(MODEL_DATA)
                else []
            )
            for mode in GenerationMode:
                try:
                    _exercise(operation, mode, checks, excluded, auth)
                except Unsatisfiable:  # nothing in the operation can be made invalid
                    continue
                except (Exception, BaseExceptionGroup) as error:  # every operation's findings
                    failures.append(f"{operation.label} ({mode}):\n{error}")
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan, started by schemathesis
        workspace.close()
    assert not failures, "\n\n".join(failures)


def _exercise(
    operation: Any, mode: GenerationMode, checks: list[Any], excluded: list[Any], auth: Any
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        case.call_and_validate(checks=checks, excluded_checks=excluded, headers=auth)

    exercise()
