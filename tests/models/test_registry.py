"""The registry through the workspace: versions, aliases, lineage, integrity.

Registering, loading, and refusing a damaged artifact (the tests marked
``every_store``) also run with the artifacts in an S3 bucket on loopback.
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from s3_support import outside
from setpoint.errors import ArtifactCorruptedError, NotFoundError, UsageError
from setpoint.models.registry import CHAMPION
from setpoint.workspace import Workspace


def reference(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": (x1 + 0.5 * x2 > 0).astype(int)})


def register(ws: Workspace, n_versions: int = 1) -> None:
    data = reference()
    for c in range(n_versions):
        model = LogisticRegression(C=1.0 + c).fit(data[["x1", "x2"]], data["y"])
        ws.register_model("clf", model, reference=data, target="y")


@pytest.mark.every_store
def test_a_fitted_object_is_registered_with_its_reference(workspace: Workspace) -> None:
    register(workspace)
    version = workspace.model("clf")
    assert (version.ref, version.flavor, version.task) == ("clf@1", "sklearn", "classification")
    assert version.lineage["datasets"] == [
        {
            "ref": "clf-reference@1",
            "id": workspace.dataset("clf-reference@1").id,
            "role": "reference",
        }
    ]
    assert version.evaluation["metrics"]["reference"]["accuracy"] > 0.9
    assert set(version.contract["columns"]) == {"x1", "x2"}
    predictor = workspace.load_model("clf@1")
    frame = reference(seed=1)[["x1", "x2"]]
    expected = LogisticRegression(C=1.0).fit(reference()[["x1", "x2"]], reference()["y"])
    np.testing.assert_array_equal(predictor.predict(frame), expected.predict(frame))
    assert [m.ref for m in workspace.registry.trained_on(workspace.dataset("clf-reference@1"))] == [
        "clf@1"
    ]


def test_notes_are_set_on_a_version_without_retraining_and_audited(workspace: Workspace) -> None:
    register(workspace, 2)
    before = workspace.model("clf@1")
    noted = workspace.annotate("clf@1", "Reviewed by credit risk; not for business loans.")
    assert noted.notes == "Reviewed by credit risk; not for business loans."
    assert noted.to_dict() == before.to_dict() | {"notes": noted.notes}  # nothing else moves
    assert workspace.model("clf@2").notes == ""
    assert workspace.annotate("clf@1", "").notes == ""
    events = workspace.audit(entity="clf@1", action="model.annotate")
    assert [(e.before, e.after) for e in events] == [
        ({"notes": noted.notes}, {"notes": ""}),
        ({"notes": ""}, {"notes": noted.notes}),
    ]


def test_promote_and_rollback_move_the_alias_and_leave_a_trail(workspace: Workspace) -> None:
    register(workspace, 3)
    assert workspace.model("clf").version == 3  # no champion yet: the latest
    workspace.promote("clf", 1)
    workspace.promote("clf", 3)
    assert workspace.model("clf").version == 3
    assert workspace.model("clf@champion").aliases == (CHAMPION,)
    move = workspace.rollback("clf")
    assert (move.from_version, move.to_version) == (3, 1)
    assert workspace.model("clf").version == 1
    with pytest.raises(UsageError, match="no earlier version"):
        workspace.rollback("clf")
    history = workspace.registry.history("clf")
    assert [(h["action"], h["from_version"], h["to_version"]) for h in history] == [
        ("promote", None, 1),
        ("promote", 1, 3),
        ("rollback", 3, 1),
    ]
    events = workspace.audit(entity="clf@champion")
    assert [e.action for e in events] == ["alias.rollback", "alias.promote", "alias.promote"]
    assert all(e.actor == "tester" for e in events)


def test_promoting_the_current_version_changes_nothing(workspace: Workspace) -> None:
    register(workspace)
    workspace.promote("clf", 1)
    workspace.promote("clf", 1)
    assert len(workspace.registry.history("clf")) == 1


def test_unknown_models_versions_and_aliases(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError):
        workspace.model("nope")
    register(workspace)
    with pytest.raises(NotFoundError, match="no version 9"):
        workspace.promote("clf", 9)
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        workspace.model("clf@staging")
    with pytest.raises(UsageError, match="cannot be an alias"):
        workspace.promote("clf", 1, alias="latest")


@pytest.mark.every_store
def test_a_tampered_artifact_is_refused_on_load(workspace: Workspace) -> None:
    register(workspace)
    version = workspace.model("clf@1")
    digest = version.artifacts["model"]
    fs, _ = outside(workspace.artifacts.uri)  # changed behind the registry's back
    path = workspace.artifacts.path(digest)
    fs.pipe_file(path, fs.cat_file(path)[:-10] + b"0123456789")
    with pytest.raises(ArtifactCorruptedError, match=digest[:12]):
        workspace.load_model("clf@1")


def _promote(root: str, version: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    with Workspace.open(root, actor=f"process-{version}") as ws:
        barrier.wait(timeout=60)
        ws.promote("clf", version)


def test_two_processes_promoting_at_once_leave_a_consistent_alias(workspace: Workspace) -> None:
    register(workspace, 2)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [
        context.Process(target=_promote, args=(str(workspace.root), v, barrier)) for v in (1, 2)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]

    history = workspace.registry.history("clf")
    assert len(history) == 2
    first, second = history
    assert first["from_version"] is None
    assert second["from_version"] == first["to_version"]  # the second saw the first's move
    assert {first["to_version"], second["to_version"]} == {1, 2}
    assert workspace.model("clf").version == second["to_version"]
    events = workspace.audit(action="alias.promote")
    assert sorted(e.actor for e in events) == ["process-1", "process-2"]
