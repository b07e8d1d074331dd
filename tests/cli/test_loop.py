"""``setpoint policy``, ``rollouts``, ``approve``, ``reject`` and ``loop`` in-process, on
every storage backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli, loans
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.loop.rollouts import Rollout, RolloutStore
from setpoint.workspace import Workspace

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database

SPEC = """\
model: risk
dataset: loans@latest
target: defaulted
estimator:
  class: sklearn.linear_model.LogisticRegression
  params: {max_iter: 500}
seed: 1
"""
POLICY = """\
triggers:
  - drift_share: 0.3
  - performance: {metric: roc_auc, source: estimated, drop: 0.05}
actions: [alert, retrain, shadow]
retrain: {window: sliding, days: 14, min_rows: 500}
approval: required
cooldown: 2d
"""
TRIGGER: dict[str, Any] = {
    "key": "window:2024-01-01T00:00:00+00:00",
    "trigger": {"drift_share": 0.3},
    "message": "40% of the features drifted (trigger at 30%) in the window from 2024-01-01",
    "evidence": {"drift_share": 0.4},
    "since": "2024-01-01T00:00:00+00:00",
}


@pytest.fixture
def ws(cli: Cli) -> Iterator[Workspace]:
    workspace = Workspace.open(cli.root)
    yield workspace
    workspace.close()


@pytest.fixture
def endpoint(cli: Cli, tmp_path: Path) -> str:
    """The endpoint ``credit`` serving risk@champion (risk@1); risk@2 trained beside it."""
    data = tmp_path / "loans.csv"
    loans().to_csv(data, index=False)
    cli("data", "add", "loans", str(data))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    assert cli.json("train", str(spec), "--promote", "champion")["ref"] == "risk@1"
    assert cli.json("train", str(spec))["ref"] == "risk@2"
    cli("deploy", "credit", "--model", "risk")
    return "credit"


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def open_rollout(ws: Workspace, key: str = TRIGGER["key"], endpoint: str = "credit") -> Rollout:
    rollout, created = RolloutStore(ws.db, actor="loop").open(
        endpoint, key, trigger=TRIGGER, champion="risk@1", mode="shadow", data_since=None
    )
    assert created
    return rollout


# --- policies -------------------------------------------------------------------------


def test_set_show_and_remove_a_policy(cli: Cli, endpoint: str, tmp_path: Path) -> None:
    path = write(tmp_path, POLICY)

    out = cli("policy", "set", endpoint, str(path)).stdout
    assert "Policy of credit set:" in out
    assert "drift_share: 0.3" in out
    assert "min_rows: 500" in out
    assert "approval: required" in out

    shown = cli.json("policy", "show", endpoint)
    assert shown["endpoint"] == endpoint
    assert shown["created_by"]
    assert (shown["cursor"], shown["checked_at"]) == (None, None)
    policy = shown["policy"]
    assert policy["triggers"] == [
        {"drift_share": 0.3},
        {"performance": {"metric": "roc_auc", "source": "estimated", "drop": 0.05}},
    ]
    assert policy["actions"] == ["alert", "retrain", "shadow"]
    assert policy["retrain"]["window"] == "sliding"
    assert (policy["retrain"]["days"], policy["retrain"]["min_rows"]) == (14, 500)
    assert policy["rollout"]["duration"] == "7d"  # the defaults are filled in
    assert (policy["approval"], policy["cooldown"]) == ("required", "2d")

    table = cli("policy", "show", endpoint).stdout
    for text in ("triggers:", "- drift_share: 0.3", "metric: roc_auc", "window: sliding"):
        assert text in table
    assert "cooldown: 2d" in table
    assert "looked at windows" not in table  # no window seen yet

    # what show prints is a policy file again
    again = write(tmp_path, table, "again.yaml")
    assert cli.json("policy", "set", endpoint, str(again))["policy"] == policy

    # set again replaces
    replaced = cli.json("policy", "set", endpoint, str(write(tmp_path, "triggers: [{labels: 50}]")))
    assert replaced["policy"]["triggers"] == [{"labels": 50}]

    assert cli.json("policy", "remove", endpoint) == {"endpoint": endpoint, "removed": True}
    cli.fails("policy", "show", endpoint, code=3, message="has no policy")
    cli.fails("policy", "remove", endpoint, code=3, message="no policy to remove")
    cli("policy", "set", endpoint, str(path))
    assert "Policy of credit removed." in cli("policy", "remove", endpoint).stdout

    actions = [e["action"] for e in cli.json("audit", "--entity", endpoint)]
    assert actions[:5] == [
        "policy.remove",
        "policy.set",
        "policy.remove",
        "policy.set",
        "policy.set",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "triggers: [{drift: any}]\ntrigers: []\n",
            "trigers: unknown key; did you mean 'triggers'? valid keys are triggers, actions",
        ),
        ("triggers: [{rain: 1}]\n", "triggers[0].rain: unknown key"),
        ("triggers: [{drift_share: 1.5}]\n", "triggers[0].drift_share: must be less than or equal"),
        ("triggers: [{schedule: every monday}]\n", "is not a cron expression"),
        ("triggers: [{drift: any}]\nactions: [shadow, canary]\n", "shadow or canary, not both"),
        ("triggers: [{drift: any}]\ncooldown: 7 weeks\n", "is not a span of time"),
        ("triggers: [{drift: any}]\nretrain: {min_rows: lots}\n", "must be a whole number"),
        ("triggers: [{drift: any}]\nactions: 3\n", "give a list of actions"),
        ("triggers: [{drift: any}\n", "not valid YAML"),
        ("", "triggers: is required"),
        ("triggers: []\n", "at least one trigger"),
    ],
)
def test_a_policy_with_a_mistake_is_refused_with_a_message(
    cli: Cli, endpoint: str, tmp_path: Path, text: str, message: str
) -> None:
    cli.fails("policy", "set", endpoint, str(write(tmp_path, text)), code=2, message=message)
    cli.fails("policy", "show", endpoint, code=3, message="has no policy")  # nothing was stored


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["policy", "set", "nowhere", "{policy}"], 3, "no endpoint 'nowhere'"),
        (["policy", "set", "credit", "{missing}"], 2, "no such file"),
        (["policy", "set", "Bad Name!", "{policy}"], 2, "endpoint"),
        (["policy", "show", "nowhere"], 3, "setpoint policy set nowhere POLICY.yaml"),
        (["policy", "remove", "nowhere"], 3, "endpoint 'nowhere' has no policy to remove"),
        (["rollouts", "show", "999"], 3, "there is no rollout 999"),
        (["rollouts", "list", "--state", "done"], 2, "unknown rollout state 'done'"),
        (["approve", "999"], 3, "there is no rollout 999"),
        (["reject", "999"], 3, "there is no rollout 999"),
        (["loop", "--once", "--every", "0s"], 2, "--every '0s' must be a positive span"),
        (["loop", "--once", "--every", "soon"], 2, "--every 'soon' is not a span of time"),
    ],
)
def test_mistakes_get_a_message_and_an_exit_code_not_a_traceback(
    cli: Cli, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    filled = [
        a.format(policy=write(tmp_path, POLICY), missing=tmp_path / "missing.yaml") for a in args
    ]
    cli.fails(*filled, code=code, message=message)


def test_a_policy_for_an_endpoint_that_does_not_exist_names_it(cli: Cli, tmp_path: Path) -> None:
    result = cli("policy", "set", "credit", str(write(tmp_path, POLICY)), code=3)
    assert "no endpoint 'credit'" in result.stderr
    assert "Traceback" not in result.output


# --- rollouts -------------------------------------------------------------------------


def test_rollouts_list_and_show(cli: Cli, ws: Workspace) -> None:
    assert cli.json("rollouts", "list") == []
    assert "No rollouts yet." in cli("rollouts", "list").stdout

    first = open_rollout(ws)
    second = open_rollout(ws, key="schedule:2024-01-08T03:00:00+00:00", endpoint="fraud")
    RolloutStore(ws.db, actor="loop").update(second.id, reason="waiting for labels: 3 of 500")

    listed = cli.json("rollouts", "list")
    assert [(r["id"], r["endpoint"], r["state"]) for r in listed] == [
        (second.id, "fraud", "waiting"),
        (first.id, "credit", "waiting"),
    ]
    assert [r["id"] for r in cli.json("rollouts", "list", "--endpoint", "credit")] == [first.id]
    assert cli.json("rollouts", "list", "--state", "promoted") == []
    assert len(cli.json("rollouts", "list", "--state", "waiting", "--limit", "1")) == 1
    table = cli("rollouts", "list").stdout
    for text in ("credit", "fraud", "waiting", "risk@1", "waiting for labels: 3 of 500"):
        assert text in table

    shown = cli.json("rollouts", "show", str(first.id))
    assert shown == {**first.to_dict(), "updated_at": shown["updated_at"]}
    assert shown["trigger"] == TRIGGER
    page = cli("rollouts", "show", str(first.id)).stdout
    assert f"Rollout {first.id} of credit: waiting" in page
    assert "fired: 40% of the features drifted" in page
    assert "champion risk@1, candidate (not trained yet)" in page


def test_show_prints_the_evidence(cli: Cli, ws: Workspace) -> None:
    rollout = open_rollout(ws)
    gates = {
        "passed": False,
        "reasons": ["roc_auc [0.71, 0.74] below the champion"],
        "checks": [
            {"name": "roc_auc", "passed": False, "detail": "interval [0.71, 0.74] < [/margin]"},
            {"name": "min_samples", "passed": True, "detail": "400 >= 200"},
        ],
    }
    live = {
        "mode": "shadow",
        "verdict": "pass",
        "agreement": 0.97,
        "pairs": 1234,
        "candidate": {"rows": 1234, "labels": 300, "metrics": {"roc_auc": 0.81}},
        "champion": {"rows": 1234, "labels": 300, "metrics": {"roc_auc": 0.8}},
    }
    RolloutStore(ws.db, actor="loop").move(
        rollout.id,
        "shadow",
        candidate="risk@2",
        dataset="credit-retrain@1",
        gates=gates,
        live=live,
        reason="[check] in shadow",
    )
    page = cli("rollouts", "show", str(rollout.id)).stdout
    for text in (
        "shadow — [check] in shadow",
        "candidate risk@2",
        "trained on credit-retrain@1",
        "interval [0.71, 0.74] < [/margin]",
        "400 >= 200",
        "live (shadow): pass",
        "agreement with the champion 97.0% on 1,234 requests",
        "candidate: 1,234 answers, 300 labelled roc_auc 0.81",
    ):
        assert text in page, page


def test_reject_moves_a_rollout_to_rejected_with_the_reason(
    cli: Cli, endpoint: str, ws: Workspace
) -> None:
    rollout = open_rollout(ws)
    store = RolloutStore(ws.db, actor="loop")
    store.move(rollout.id, "shadow", candidate="risk@2")
    cli("deploy", endpoint, "--challenger", "risk@2", "--mode", "shadow")

    out = cli("reject", str(rollout.id), "--reason", "segment [B] got worse").stdout
    assert f"Rollout {rollout.id} rejected: segment [B] got worse." in out

    rejected = store.get(rollout.id)
    assert (rejected.state, rejected.reason) == ("rejected", "segment [B] got worse")
    assert rejected.decided_by == ws.actor
    assert ws.deployments.get(endpoint).config.challenger is None  # off live traffic
    (event,) = ws.audit(action="rollout.rejected")
    assert (event.entity_type, event.entity) == ("rollout", str(rollout.id))
    assert event.after["reason"] == "segment [B] got worse"
    assert (event.before, event.after["state"]) == ({"state": "shadow"}, "rejected")

    # a decided rollout stays decided
    cli.fails(
        "reject", str(rollout.id), code=4, message=f"rollout {rollout.id} is already rejected"
    )
    cli.fails("approve", str(rollout.id), code=2, message="only a rollout awaiting approval")


def test_reject_has_a_default_reason_and_json(cli: Cli, endpoint: str, ws: Workspace) -> None:
    rollout = open_rollout(ws)
    done = cli.json("reject", str(rollout.id))
    assert (done["id"], done["state"], done["reason"]) == (
        rollout.id,
        "rejected",
        "rejected by a person",
    )


def test_approve_refuses_a_rollout_that_is_not_awaiting_approval(
    cli: Cli, endpoint: str, ws: Workspace
) -> None:
    rollout = open_rollout(ws)
    cli.fails(
        "approve",
        str(rollout.id),
        code=2,
        message=f"rollout {rollout.id} is waiting; only a rollout awaiting approval is approved",
    )
    assert RolloutStore(ws.db, actor="loop").get(rollout.id).state == "waiting"


def test_approve_promotes_the_candidate(cli: Cli, endpoint: str, ws: Workspace) -> None:
    rollout = open_rollout(ws)
    RolloutStore(ws.db, actor="loop").move(rollout.id, "awaiting_approval", candidate="risk@2")

    out = cli("approve", str(rollout.id)).stdout
    assert f"Rollout {rollout.id}: risk@2 is the champion (was risk@1)." in out

    done = RolloutStore(ws.db, actor="loop").get(rollout.id)
    assert (done.state, done.decided_by) == ("promoted", ws.actor)
    assert ws.model("risk@champion").version == 2
    (event,) = ws.audit(action="rollout.promoted")
    assert event.actor == ws.actor
    cli.fails("approve", str(rollout.id), code=2, message="is promoted")


# --- the loop -------------------------------------------------------------------------


def test_loop_once_on_an_empty_workspace(cli: Cli) -> None:
    report = cli.json("loop", "--once")
    assert set(report) == {"at", "windows", "fired", "moves", "jobs", "problems"}
    assert report["problems"] == []
    assert (report["windows"], report["fired"], report["moves"], report["jobs"]) == (
        {},
        [],
        [],
        [],
    )
    assert cli.json("loop", "--once", "--no-jobs", "--every", "30s")["jobs"] == []
    result = cli("loop", "--once")
    assert "0 new window(s)" in result.stderr
    assert "Traceback" not in result.output


def test_loop_once_looks_at_a_policy_and_remembers_when(
    cli: Cli, endpoint: str, tmp_path: Path
) -> None:
    cli("policy", "set", endpoint, str(write(tmp_path, "triggers: [{schedule: '0 3 * * 1'}]")))
    report = cli.json("loop", "--once")
    assert report["fired"] == []  # the first look only starts the schedule's clock
    checked = cli.json("policy", "show", endpoint)["checked_at"]
    assert checked is not None
    assert checked[:19] == report["at"][:19]


# --- help -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--help"], ("policy", "rollouts", "approve", "reject", "loop")),
        (["policy", "--help"], ("set", "show", "remove", "retrained")),
        (["policy", "set", "--help"], ("endpoint", "file", "YAML", "--json")),
        (["policy", "show", "--help"], ("endpoint", "default", "--json")),
        (["policy", "remove", "--help"], ("endpoint", "rollouts", "--json")),
        (["rollouts", "--help"], ("list", "show", "promoted")),
        (["rollouts", "list", "--help"], ("--endpoint", "--state", "--limit", "newest")),
        (["rollouts", "show", "--help"], ("rollout", "gate", "--json")),
        (["approve", "--help"], ("rollout", "approval", "--json")),
        (["reject", "--help"], ("rollout", "--reason", "audit")),
        (["loop", "--help"], ("--once", "--every", "--no-jobs", "Ctrl-C")),
    ],
)
def test_help_reads_well(args: list[str], words: tuple[str, ...]) -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert result.exit_code == 0, result.output
    for word in words:
        assert word in result.stdout, result.stdout
    assert "Traceback" not in result.output
