"""What the Ray engines share (``setpoint._ray``): a cluster on several machines must
reach the workspace, and what workers get from the driver's environment."""

from __future__ import annotations

import pytest

from setpoint import _ray
from setpoint.errors import ConfigError
from setpoint.workspace import Workspace


def test_a_cluster_on_several_machines_needs_a_shared_workspace(workspace: Workspace) -> None:
    _ray.check_shared(workspace, 1, instead="stay here")  # one machine, many nodes: fine
    with pytest.raises(ConfigError, match="spans 2 machines") as raised:
        _ray.check_shared(workspace, 2, instead="stay here")
    message = str(raised.value)
    for named in (
        "artifacts_uri",
        "SETPOINT_ARTIFACTS_URI=s3://",
        "SETPOINT_DATA_URI",
        "stay here",
    ):
        assert named in message
    assert ("SETPOINT_DATABASE_URL=postgresql" in message) == workspace.db.is_sqlite
    assert "log_uri" not in message  # the work writes no log
    with pytest.raises(ConfigError, match="SETPOINT_LOG_URI=s3://") as raised:
        _ray.check_shared(workspace, 2, instead="stay here", logs=True)


def test_workers_get_the_store_and_setting_variables_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("SETPOINT_REFRESH_SECONDS", "1")
    monkeypatch.setenv("HOME_SECRET", "x")
    forwarded = _ray.environment()
    assert forwarded["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert forwarded["SETPOINT_REFRESH_SECONDS"] == "1"
    assert "HOME_SECRET" not in forwarded
