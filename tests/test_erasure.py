"""Erasure: one subject's rows gone from every file and table, everyone else's intact.

The subject is one account number (a PII feature of the model): it is in the training
data, answered over the app, labelled by feedback, refused once, backfilled and
quarantined. ``setpoint erase --where account=N`` must leave neither the number nor its
keyed hash anywhere under the workspace (Parquet read back as text, the dataset files
included) nor in any table, while every other account's rows stay and the monitor
still computes its windows.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from typer.testing import CliRunner

from privacy_support import SPEC, START, records, text_of, text_of_bytes, with_accounts
from s3_support import outside
from setpoint.cli.main import app
from setpoint.demo import lending
from setpoint.errors import ConflictError, GoneError, NotFoundError, UsageError
from setpoint.monitoring.settings import MonitorConfig
from setpoint.serving._logtables import read_log
from setpoint.serving.app import create_app
from setpoint.serving.log import RecordLog, compact
from setpoint.store.schema import metadata
from setpoint.workspace import Workspace


def cli(ws: Workspace, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["-w", str(ws.root), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else " ".join(result.output.split())


def everywhere(ws: Workspace) -> str:
    """Every file under the workspace, every object in its stores and every table, as
    text."""
    parts = [text_of(p) for p in ws.root.rglob("*") if p.is_file() and "setpoint.db" not in p.name]
    for uri in (ws.artifacts.uri, ws.data_store.uri, ws.logs.uri):
        if uri.startswith("s3://"):
            fs, base = outside(uri)  # a fresh look: no cached listing
            parts += [text_of_bytes(fs.cat_file(p)) for p in fs.find(base)]
    with ws.db.read() as conn:
        for table in metadata.sorted_tables:
            parts.append(json.dumps([list(r) for r in conn.execute(sa.select(table))], default=str))
    return "\n".join(parts)


def serve(ws: Workspace, frame: pd.DataFrame, *, refuse: int | None = None) -> int:
    """Send ``frame`` over the app in requests of five, with its outcomes; how many
    rows were answered. Row ``refuse`` is sent with a value of the wrong type."""
    logs = {kind: RecordLog(ws.logs, kind=kind) for kind in ("predictions", "feedback", "refused")}
    answered = 0
    application = create_app(
        ws, logs["predictions"], feedback_log=logs["feedback"], refused_log=logs["refused"]
    )
    with TestClient(application) as client:
        for start in range(0, len(frame), 5):
            chunk = frame.iloc[start : start + 5]
            rows = records(chunk)
            if refuse is not None and start <= refuse < start + 5:
                rows[refuse - start]["income"] = "lots"
            answer = client.post("/v1/endpoints/credit/predict", json={"records": rows})
            if answer.status_code != 200:
                continue
            answered += len(rows)
            labels = [
                {"request_id": answer.json()["request_id"], "row": i, "label": int(y)}
                for i, y in enumerate(chunk[lending.TARGET])
            ]
            assert client.post(
                "/v1/endpoints/credit/feedback", json={"feedback": labels}
            ).is_success
    for log in logs.values():
        log.close()
    return answered


@pytest.mark.slow
@pytest.mark.every_store  # and with the log shipped to a store (conftest.py)
def test_erasure_leaves_no_trace_of_the_subject_and_keeps_everyone_else(
    workspace: Workspace,
) -> None:
    rng = np.random.default_rng(8)
    history = with_accounts(lending.applications(1_500, start=START, days=30, seed=1), rng)
    subject = int(history["account"].iloc[10])
    workspace.add_dataset("loans", history, pii_columns=["account"])
    workspace.promote("credit-risk", workspace.train(SPEC).version)
    workspace.deploy("credit", model="credit-risk")
    hashed = workspace.pii_policy(workspace.contract("loans@1")).hash(subject)
    assert hashed is not None

    # The subject's traffic: answered (and labelled), and refused once.
    traffic = with_accounts(lending.applications(40, start=START, days=1, seed=2), rng)
    traffic.loc[traffic.index[[3, 17]], "account"] = subject
    assert serve(workspace, traffic, refuse=17) == 35  # the refused request's 5 rows
    compact(workspace.logs, kind="predictions")  # some in Parquet, some in segments
    serve(workspace, traffic.iloc[:10].assign(account=traffic["account"].iloc[:10] + 1))
    past = with_accounts(lending.applications(30, start=START - timedelta(days=3), days=2), rng)
    past.loc[past.index[0], "account"] = subject
    workspace.monitors.backfill("credit", past, time_column=lending.TIME_COLUMN)
    batch = history.iloc[5:25].copy()
    batch["age"] = batch["age"].astype(object)
    batch.loc[batch.index[5], "age"] = "old"  # the subject's row, quarantined
    assert workspace.validate("loans@1", batch, mode="quarantine").quarantine is not None
    workspace.monitors.create("credit", MonitorConfig(window="1d", multivariate=False))
    before = {
        kind: read_log(workspace.logs, kind=kind).num_rows
        for kind in ("predictions", "feedback", "refused")
    }
    text = everywhere(workspace)
    assert str(subject) in text
    assert hashed in text

    planned = json.loads(
        cli(workspace, "erase", "--where", f"account={subject}", "--dry-run", "--json")
    )
    assert planned["logs"] == {"predictions": 2, "refused": 1, "feedback": 1}
    assert planned["quarantine"][0]["rows"] == 1
    assert planned["datasets"] == [{"version": "loans@1", "rows": 1}]
    assert planned["models_trained_on_erased_data"] == ["credit-risk@1"]
    assert str(subject) in everywhere(workspace)  # a dry run changes nothing

    done = json.loads(cli(workspace, "erase", "--where", f"account={subject}", "--json"))
    assert done["rows"] == planned["rows"] == 6
    assert done["datasets"] == [{"version": "loans@1", "rows": 1, "replaced_by": "loans@2"}]
    text = everywhere(workspace)
    assert str(subject) not in text
    assert hashed not in text

    # Everyone else is intact.
    after = {
        kind: read_log(workspace.logs, kind=kind).num_rows
        for kind in ("predictions", "feedback", "refused")
    }
    assert after == {
        "predictions": before["predictions"] - 2,
        "feedback": before["feedback"] - 1,
        "refused": before["refused"] - 1,
    }
    replacement = workspace.load_dataset("loans@2")
    assert replacement.num_rows == 1_499
    assert replacement.column("account").to_pylist() == [
        a for a in history["account"].tolist() if a != subject
    ]
    assert workspace.contract("loans@2") == workspace.contract("loans@1")
    erased = workspace.dataset("loans@1")
    assert (erased.erased_rows, erased.replaced_by) == (1, "loans@2")
    with pytest.raises(GoneError, match="use loans@2"):
        workspace.load_dataset("loans@1")
    with pytest.raises(ConflictError, match="erased"):
        workspace.add_dataset("loans", history)  # the erased content again
    [event] = workspace.audit(action="erase")
    assert event.entity == "account"
    assert event.after["logs"] == {"predictions": 2, "refused": 1, "feedback": 1}
    # The monitor still computes its windows.
    windows = workspace.monitors.run("credit", until=START + timedelta(days=1))
    # (The backfilled days: traffic served over the app is stamped with today's time.)
    assert sum(w.n_rows for w in windows) == len(past) - 1


def test_mistakes_are_named(workspace: Workspace) -> None:
    history = lending.applications(200, start=START, days=5)
    workspace.add_dataset("loans", history)
    assert "give COLUMN=VALUE" in cli(workspace, "erase", "--where", "account", code=2)
    with pytest.raises(UsageError, match="give the value"):
        workspace.erase("account", "")
    assert "no endpoint" in cli(workspace, "erase", "--where", "a=1", "--endpoint", "nope", code=3)
    with pytest.raises(UsageError, match=r"column 'account'.*known columns: "):
        workspace.erase("account", 1)
    nothing: dict[str, Any] = workspace.erase("age", 1000).to_dict()
    assert nothing["rows"] == 0


def people(ws: Workspace) -> None:
    """A small dataset whose columns name a subject: ``name`` and ``acct``."""
    ws.add_dataset(
        "people",
        pd.DataFrame({"name": ["Ann", "Bo"], "acct": [1.0, 2.0], "city": ["Oslo", "Rome"]}),
    )


def logged(ws: Workspace, inputs: list[dict[str, Any]]) -> None:
    """One prediction record per ``inputs``, as the server writes them."""
    with RecordLog(ws.root, kind="predictions") as log:
        log.append(
            [
                {
                    "request_id": f"r{i}",
                    "ts": START,
                    "endpoint": "credit",
                    "row": 0,
                    "model": "credit-risk",
                    "version": 1,
                    "route": "champion",
                    "latency_ms": 1.0,
                    "cached": False,
                    "fallback": False,
                    "inputs": row,
                    "outputs": {"p": 0.5},
                }
                for i, row in enumerate(inputs)
            ]
        )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("name", 'O"Brien'),  # JSON escapes the quote
        ("name", "Zoë\\x"),  # and the backslash
        ("name", "line\nbreak"),  # and the newline
        ("acct", "1e20"),  # the log spells it 1e20 as a number
        ("acct", "100000000000000000000"),  # the same number, spelled out
        ("acct", "100000000000000000000.0"),
    ],
)
def test_values_the_log_spells_otherwise_are_found(
    workspace: Workspace, column: str, value: str
) -> None:
    people(workspace)
    logged(
        workspace,
        [
            {"name": 'O"Brien', "acct": 1.0},
            {"name": "Zoë\\x", "acct": 2.0},
            {"name": "line\nbreak", "acct": 3.0},
            {"name": "Dee", "acct": 1e20},
            {"name": "Eve", "acct": 2e20},
        ],
    )
    found = workspace.erase(column, value, dry_run=True)
    assert found.logs["predictions"] == 1
    done = workspace.erase(column, value)
    assert done.logs["predictions"] == 1
    assert workspace.erase(column, value, dry_run=True).rows == 0
    assert read_log(workspace.root, kind="predictions").num_rows == 4


def test_erasing_by_a_column_not_marked_pii_leaves_no_value_in_the_metadata_store(
    workspace: Workspace,
) -> None:
    frame = pd.DataFrame(
        {
            "id": list(range(40)),
            "city": ["Oslo", "Rome", "Lima", "Kyiv"] * 10,
            "income": [1000.0 + 10 * i for i in range(40)],
        }
    )
    frame.loc[7, ["city", "income"]] = ["Secretville", 987654.25]  # the subject's row
    workspace.add_dataset("loans", frame)
    edited = workspace.contract("loans@1")
    workspace.attach_contract(
        "loans@1", edited.model_copy(update={"unknown_columns": "allow"}), note="a person's edit"
    )
    batch = frame.iloc[5:12].copy()
    batch.loc[7, "income"] = 12345678.5  # the subject's quarantined row
    batch.loc[9, "income"] = 23456789.5  # someone else's
    assert workspace.validate("loans@1", batch, mode="quarantine").quarantine is not None
    text = everywhere(workspace)
    for value in ("Secretville", "987654.25", "12345678.5"):
        assert value in text, value

    report = workspace.erase("city", "Secretville")
    assert report.datasets == [{"version": "loans@1", "rows": 1, "replaced_by": "loans@2"}]
    assert any("not marked PII" in note for note in report.notes)
    text = everywhere(workspace)
    for value in ("Secretville", "987654.25", "12345678.5"):
        assert value not in text, value
    contract = workspace.contract("loans@2")
    assert contract.columns["city"].categories == ("Kyiv", "Lima", "Oslo", "Rome")
    assert contract.unknown_columns == "allow"  # the person's edit stays
    [batch_after] = workspace.quarantine.list("loans")
    assert batch_after.summary == [
        {"column": "income", "rule": "max", "count": 1, "example": "23456789.5"}
    ]


def test_a_fraction_matches_the_float_that_stands_for_it(workspace: Workspace) -> None:
    people(workspace)
    logged(workspace, [{"name": "Ann", "acct": 0.1}, {"name": "Bo", "acct": 0.10000000000000002}])
    assert workspace.erase("acct", "0.1", dry_run=True).logs["predictions"] == 1


def test_every_argument_is_checked_before_anything_changes(workspace: Workspace) -> None:
    history = with_accounts(
        lending.applications(120, start=START, days=5), np.random.default_rng(3)
    )
    workspace.add_dataset("loans", history, pii_columns=["account"])
    workspace.promote("credit-risk", workspace.train(SPEC).version)
    workspace.deploy("credit", model="credit-risk")
    subject = int(history["account"].iloc[0])
    logged(workspace, [{"account": subject}, {"account": subject + 1}])

    with pytest.raises(NotFoundError, match="no dataset 'nope'"):
        workspace.erase("account", subject, endpoint="credit", dataset="nope")
    with pytest.raises(UsageError, match="no dataset, model or quarantined batch has a column"):
        workspace.erase("acount", subject)
    assert read_log(workspace.root, kind="predictions").num_rows == 2
    assert workspace.audit(action="erase") == []
    # Both limits apply: this endpoint's logs and this dataset's versions.
    both = workspace.erase("account", subject, endpoint="credit", dataset="loans", dry_run=True)
    assert both.logs["predictions"] == 1
    assert both.datasets == [{"version": "loans@1", "rows": 1}]
    assert "both" in " ".join(cli(workspace, "erase", "--help").split())


def test_the_report_says_how_the_column_was_matched(workspace: Workspace) -> None:
    frame = pd.DataFrame({"email": ["a@x", "b@x"], "account": [11, 12], "city": ["Oslo", "Rome"]})
    workspace.add_dataset("people", frame, pii_columns=["account"])
    contract = workspace.contract("people@1")
    dropped = contract.columns["email"].model_copy(update={"pii": "drop"})
    workspace.attach_contract(
        "people@1", contract.model_copy(update={"columns": {**contract.columns, "email": dropped}})
    )
    [note] = workspace.erase("email", "a@x", dry_run=True).notes
    assert "email is dropped from logs (pii: drop)" in note
    assert "erase by another identifying column" in note
    [note] = workspace.erase("account", 11, dry_run=True).notes
    assert "keyed hash" in note
    [note] = workspace.erase("city", "Oslo", dry_run=True).notes
    assert "city is not marked PII" in note
    shown = " ".join(cli(workspace, "erase", "--where", "email=a@x", "--dry-run").split())
    assert "(pii: drop)" in shown


@pytest.mark.slow
def test_a_subject_named_by_a_column_not_marked_pii_leaves_no_value_anywhere(
    workspace: Workspace,
) -> None:
    rng = np.random.default_rng(4)
    history = with_accounts(lending.applications(600, start=START, days=10, seed=5), rng)
    history["city"] = rng.choice(["Oslo", "Rome", "Lima", "Kyiv"], len(history))
    history.loc[history.index[42], ["city", "income"]] = ["Secretville", 987654.25]
    workspace.add_dataset("loans", history, pii_columns=["account"])
    spec = {**SPEC, "exclude": [lending.TIME_COLUMN, "city"]}
    workspace.promote("credit-risk", workspace.train(spec).version)
    workspace.deploy("credit", model="credit-risk")
    workspace.monitors.create("credit", MonitorConfig(window="1d", multivariate=False))
    text = everywhere(workspace)
    assert "Secretville" in text
    assert "987654.25" in text

    done = json.loads(cli(workspace, "erase", "--where", "city=Secretville", "--json"))
    assert done["datasets"] == [{"version": "loans@1", "rows": 1, "replaced_by": "loans@2"}]
    assert done["monitors_rebuilt"] == ["credit"]
    text = everywhere(workspace)
    assert "Secretville" not in text
    assert "987654.25" not in text
    assert workspace.monitors.get("credit").reference.dataset == "loans@2"
    assert workspace.monitors.run("credit", until=START + timedelta(days=1)) == []


@pytest.mark.every_store
def test_erased_rows_leave_the_store_as_well(workspace: Workspace) -> None:
    """On every store (a folder, an S3 bucket): the objects that held the subject's rows
    are deleted, and no object left holds the subject."""
    subject = 7340011
    frame = pd.DataFrame({"account": [subject, 7340012, 7340013], "income": [1.0, 2.0, 3.0]})
    version = workspace.add_dataset("accounts", frame, pii_columns=["account"])
    batch = pd.DataFrame({"account": [subject, 7340014], "income": [-9e9, 2.5]})
    quarantined = workspace.validate(version.ref, batch, mode="quarantine").quarantine
    assert quarantined is not None

    def stored() -> str:
        fs, root = outside(workspace.data_store.uri)  # a fresh look: no cached listing
        return json.dumps(
            [pq.read_table(io.BytesIO(fs.cat_file(p))).to_pylist() for p in fs.find(root)]
        )

    assert str(subject) in stored()
    workspace.erase("account", subject)
    fs, _ = outside(workspace.data_store.uri)
    for artifact in (version.artifact, quarantined.artifact):
        assert not fs.exists(workspace.data_store.path(artifact))
    assert str(subject) not in stored()
    assert "7340012" in stored()  # everyone else's rows stay
    assert workspace.load_dataset("accounts@2").num_rows == 2
