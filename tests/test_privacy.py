"""Personal data stays in the dataset store: a scan of everything else a workspace holds.

A served model takes an account number, marked PII, as one of its features. Traffic is
answered (some rows marked, some refused), outcomes are sent back, the logs are
compacted, past traffic is backfilled, a batch is validated into the quarantine, the
monitor runs and writes its report. Then every file under the workspace (Parquet read
back as text) except the dataset versions' own bytes and the secret, and every row of
every table of the metadata store, is searched for any account number that was ever
sent: none may appear in clear.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from privacy_support import SPEC, START, records, text_of, with_accounts
from setpoint.data.pii import SECRET_FILE
from setpoint.demo import lending
from setpoint.monitoring.report import ReportData, write_report
from setpoint.monitoring.settings import MonitorConfig
from setpoint.serving.app import create_app
from setpoint.serving.log import RecordLog, compact
from setpoint.store.schema import metadata
from setpoint.workspace import Workspace


@pytest.mark.slow
def test_no_account_number_leaves_the_dataset_store_in_clear(
    workspace: Workspace, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    history = with_accounts(lending.applications(2_000, start=START, days=30, seed=3), rng)
    workspace.add_dataset("loans", history, pii_columns=["account"])
    version = workspace.train(SPEC)
    assert "account" in (version.contract or {})["columns"]  # a feature of the model
    workspace.promote(version.name, version.version)
    workspace.deploy("credit", model="credit-risk")
    sent: set[int] = set()

    # Live traffic over the app, with real logs: answered, marked and refused rows.
    traffic = with_accounts(lending.applications(300, start=START, days=2, seed=4), rng)
    logs = {kind: RecordLog(workspace.root, kind=kind) for kind in ("predictions", "feedback")}
    refused = RecordLog(workspace.root, kind="refused")
    app = create_app(
        workspace, logs["predictions"], feedback_log=logs["feedback"], refused_log=refused
    )
    with TestClient(app) as client:
        for start in range(0, 300, 10):
            chunk = traffic.iloc[start : start + 10]
            rows = records(chunk)
            if start == 20:
                rows[3]["income"] = "lots"  # refused, with its account number
            if start == 40:
                rows[0]["age"] = 140  # past the range: answered and marked
            sent.update(int(r["account"]) for r in rows)  # type: ignore[call-overload]
            answer = client.post("/v1/endpoints/credit/predict", json={"records": rows})
            assert answer.status_code in (200, 422), answer.text
            if answer.status_code == 200:
                labels = [
                    {"request_id": answer.json()["request_id"], "row": i, "label": int(y)}
                    for i, y in enumerate(chunk[lending.TARGET])
                ]
                given = client.post("/v1/endpoints/credit/feedback", json={"feedback": labels})
                assert given.status_code < 300, given.text
    for log in (*logs.values(), refused):
        log.close()
    for kind in ("predictions", "feedback", "refused"):
        compact(workspace.root, kind=kind)

    # Past traffic backfilled, and a bad batch kept in the quarantine.
    past = with_accounts(lending.applications(200, start=START - timedelta(days=7), days=5), rng)
    sent.update(past["account"].tolist())
    workspace.monitors.backfill(
        "credit", past, time_column=lending.TIME_COLUMN, label_column=lending.TARGET
    )
    batch = with_accounts(lending.applications(50, start=START, days=1, seed=9), rng)
    batch["age"] = batch["age"].astype(object)
    batch.loc[batch.index[:5], "age"] = "unknown"
    sent.update(batch["account"].tolist())
    kept = workspace.validate("loans@1", batch, mode="quarantine")
    assert kept.quarantine is not None

    # A file scored through the endpoint: its rows logged, one refused and quarantined.
    scored = with_accounts(lending.applications(60, start=START, days=1, seed=12), rng)
    scored["age"] = scored["age"].astype(object)
    scored.loc[scored.index[:2], "age"] = "unknown"
    sent.update(scored["account"].tolist())
    scored.to_csv(tmp_path / "to-score.csv", index=False)
    run = workspace.predict_files(
        "credit",
        tmp_path / "to-score.csv",
        tmp_path / "out.csv",
        keep=[lending.TIME_COLUMN, lending.TARGET],
    )
    assert (run.endpoint, run.n_quarantined) == ("credit", 2)

    # The monitor, and its report.
    workspace.monitors.create("credit", MonitorConfig(window="1d", multivariate=False))
    assert workspace.monitors.run("credit", until=START + timedelta(days=3))
    report = workspace.root / "report.html"
    write_report(report, ReportData.from_dict(workspace.monitors.report_data("credit")))

    # Where an account number may be in clear: the dataset versions' bytes, nowhere else.
    allowed = {workspace.data_store.path(v.artifact) for v in workspace.datasets.list()}
    allowed.add(str(workspace.root / SECRET_FILE))
    allowed.add(str(workspace.root / "setpoint.db"))  # read through SQL below
    numbers = {str(n) for n in sent}
    scanned = 0
    for path in workspace.root.rglob("*"):
        if not path.is_file() or str(path) in allowed or path.name.startswith("setpoint.db"):
            continue
        content = text_of(path)
        scanned += 1
        found = [n for n in numbers if n in content]
        assert not found, f"{path} holds account number(s) {found[:3]} in clear"
    assert scanned > 10
    logged = (workspace.root / "logs").rglob("*.parquet")
    assert any("pii:" in text_of(p) for p in logged)  # hashed, not missing
    with workspace.db.read() as conn:
        for table in metadata.sorted_tables:
            content = json.dumps([list(r) for r in conn.execute(sa.select(table))], default=str)
            found = [n for n in numbers if n in content]
            assert not found, f"table {table.name} holds account number(s) {found[:3]}"
