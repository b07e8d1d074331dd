"""The hot path writes nothing to the metadata database: predictions, their log and
feedback go to log files, so a replica's database load does not grow with traffic
(docs/scaling.md counts on it). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import sqlalchemy as sa
from serving_support import MemoryLog, requests_of
from starlette.testclient import TestClient

from setpoint.serving.app import create_app
from setpoint.workspace import Workspace

WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT")


def test_predictions_write_nothing_to_the_metadata_database(
    served: Workspace, history: pd.DataFrame
) -> None:
    _, key = served.keys.create("predict", note="hot path")
    _, labeller = served.keys.create("feedback", note="hot path")
    statements: Counter[str] = Counter()

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements[statement.lstrip().split(None, 1)[0].upper()] += 1

    rows = requests_of(history.head(20))
    app = create_app(served, MemoryLog(), feedback_log=MemoryLog(), refresh_seconds=0.01)
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        client.post("/v1/endpoints/credit/predict", json={"records": rows[:1]}, headers=auth)
        sa.event.listen(served.db.engine, "before_cursor_execute", count)
        try:
            for i, row in enumerate(rows * 5):
                native = client.post(
                    "/v1/endpoints/credit/predict", json={"records": [row]}, headers=auth
                )
                assert native.status_code == 200, native.text
                mlflow = client.post(
                    "/invocations", json={"dataframe_records": [row]}, headers=auth
                )
                assert mlflow.status_code == 200, mlflow.text
                feedback = client.post(
                    "/v1/endpoints/credit/feedback",
                    json={"request_id": native.json()["request_id"], "label": i % 2},
                    headers={"Authorization": f"Bearer {labeller}"},
                )
                assert feedback.status_code == 200, feedback.text
        finally:
            sa.event.remove(served.db.engine, "before_cursor_execute", count)
    assert statements["SELECT"] > 0  # the server did follow the deployments meanwhile
    assert not {s: n for s, n in statements.items() if s in WRITES}, statements
