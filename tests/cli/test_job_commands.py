"""``setpoint jobs`` and ``setpoint worker`` in-process, on every storage backend."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
from cli_support import Cli
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.errors import TrainingError
from setpoint.jobs import JobStore
from setpoint.worker import JobContext
from setpoint.workspace import Workspace

# The command line, not the stores (their own tests run on both databases): the
# workspace on SQLite only (conftest.py).
pytestmark = pytest.mark.one_database


@pytest.fixture
def store(cli: Cli) -> Iterator[JobStore]:
    ws = Workspace.open(cli.root)
    yield JobStore(ws.db, actor="tester")
    ws.close()


def greet(ctx: JobContext) -> str:
    ctx.log("greeting")
    return f"hello {ctx.job.args['name']}"


def refuse(ctx: JobContext) -> None:
    raise TrainingError("no labelled rows yet")


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in handlers where the worker command looks them up."""
    module = types.ModuleType("setpoint.loop.handlers")
    module.HANDLERS = {"greet": greet, "refuse": refuse}  # type: ignore[attr-defined]
    module.SCHEDULES = {}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "setpoint.loop.handlers", module)


def test_list_show_cancel_and_retry(cli: Cli, store: JobStore) -> None:
    first = store.enqueue("retrain", {"endpoint": "credit"}, key="credit@[w1]")
    second = store.enqueue("report", max_attempts=1)
    claimed = store.claim("host:1:abc", kinds=("report",))
    assert claimed is not None
    store.fail(claimed, "ValueError: [bad] row 7\nmore detail")

    listed = cli.json("jobs", "list")
    assert [(j["id"], j["state"]) for j in listed] == [(second.id, "failed"), (first.id, "queued")]
    assert [j["id"] for j in cli.json("jobs", "list", "--state", "queued")] == [first.id]
    assert [j["id"] for j in cli.json("jobs", "list", "--kind", "report")] == [second.id]
    assert len(cli.json("jobs", "list", "--limit", "1")) == 1
    table = cli("jobs", "list").stdout
    for text in ("credit@[w1]", "retrain", "queued", "0/3", "1/1", "host:1:abc", "[bad] row 7"):
        assert text in table
    assert "more detail" not in table  # the error is trimmed to its first line
    assert "No jobs." in cli("jobs", "list", "--state", "running").stdout

    shown = cli.json("jobs", "show", str(second.id))
    assert (shown["state"], shown["worker"]) == ("failed", "host:1:abc")
    assert [line["message"] for line in shown["log"]] == [
        "started by host:1:abc",
        "failed: ValueError: [bad] row 7\nmore detail",
    ]
    page = cli("jobs", "show", str(first.id)).stdout
    for text in ('{"endpoint": "credit"}', "credit@[w1]", "0 of 3", "by tester"):
        assert text in page
    assert "started by host:1:abc" in cli("jobs", "show", str(second.id)).stdout

    assert cli.json("jobs", "cancel", str(first.id))["state"] == "cancelled"
    assert "Queued job" in cli("jobs", "retry", str(first.id)).stdout
    retried = cli.json("jobs", "retry", str(second.id))
    assert (retried["state"], retried["max_attempts"]) == ("queued", 2)
    assert "Cancelled job" in cli("jobs", "cancel", str(second.id)).stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["jobs", "show", "9999"], 3, "there is no job 9999"),
        (["jobs", "cancel", "9999"], 3, "there is no job 9999"),
        (["jobs", "retry", "9999"], 3, "there is no job 9999"),
        (["jobs", "retry", "1"], 4, "only a failed or cancelled job is retried"),
        (["jobs", "list", "--state", "done"], 2, "unknown job state 'done'"),
    ],
)
def test_mistakes_get_a_message_and_an_exit_code_not_a_traceback(
    cli: Cli, store: JobStore, args: list[str], code: int, message: str
) -> None:
    store.enqueue("retrain", key="k")  # job 1, queued
    result = cli(*args, code=code)
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert message in cli.json(*args, code=code)["error"]["message"]


@pytest.mark.usefixtures("handlers")
def test_worker_once_runs_the_due_jobs(cli: Cli, store: JobStore) -> None:
    assert "No job was due." in cli("worker", "--once").stdout
    greeting = store.enqueue("greet", {"name": "ada"})
    refusal = store.enqueue("refuse")
    ran = cli.json("worker", "--once")
    assert [(j["id"], j["state"], j["result"], j["error"]) for j in ran] == [
        (greeting.id, "succeeded", "hello ada", None),
        (refusal.id, "queued", None, "no labelled rows yet"),  # retried after a backoff
    ]
    assert "greeting" in [line["message"] for line in store.get(greeting.id).log]

    again = store.enqueue("greet", {"name": "grace"})
    out = cli("worker", "--once", "--kind", "greet").stdout
    assert f"job {again.id} (greet #{again.id}) attempt 1 succeeded" in out
    assert store.get(again.id).result == "hello grace"


@pytest.mark.usefixtures("handlers")
def test_worker_refuses_an_unknown_kind(cli: Cli) -> None:
    result = cli("worker", "--once", "--kind", "nope", code=2)
    assert "no handler for job kind nope; known kinds: greet, refuse" in result.stderr
    assert "Traceback" not in result.output


def test_help_reads_well() -> None:
    runner = CliRunner()
    for args, words in (
        (["--help"], ("jobs", "worker")),
        (["jobs", "--help"], ("list", "show", "cancel", "retry")),
        (["worker", "--help"], ("--once", "--poll-seconds", "--kind", "SIGTERM")),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0
        for word in words:
            assert word in result.stdout
