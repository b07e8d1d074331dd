"""``setpoint.serving.ray_app:build``, the import path a Ray Serve config names (as
KubeRay's RayService does): its args are checked before any replica starts."""

from __future__ import annotations

import pytest

from ray_support import ray_or_skip
from setpoint.errors import UsageError


def test_build_takes_the_workspace_and_refuses_unknown_args() -> None:
    ray_or_skip()
    from ray.serve import Application

    from setpoint.serving.ray_app import build, replica_args

    assert isinstance(build({"workspace": "/mnt/setpoint"}), Application)
    assert replica_args({"workspace": "/ws", "settings": {"refresh_seconds": 1}}) == (
        "/ws",
        {"refresh_seconds": 1},
        "off",
        300.0,
    )
    for args in ({}, {"workspace": "/ws", "replicas": 2}):
        with pytest.raises(UsageError, match="take workspace \\(required\\)"):
            build(args)


def test_the_rayservice_example_in_the_docs_is_a_valid_serve_config() -> None:
    """docs/scaling.md's KubeRay manifest: its serveConfigV2 is what Ray Serve reads
    (Ray's own schema), and names our application with args ``build`` accepts."""
    ray_or_skip()
    import re
    from pathlib import Path

    import yaml
    from ray.serve.schema import ServeDeploySchema

    from setpoint.serving.ray_app import build

    page = Path(__file__).parents[2] / "docs" / "scaling.md"
    blocks = re.findall(r"^```yaml\n(.*?)^```", page.read_text(), re.DOTALL | re.MULTILINE)
    manifests = [yaml.safe_load(b) for b in blocks]
    (service,) = [m for m in manifests if m.get("kind") == "RayService"]
    config = ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"]))
    (application,) = config.applications
    assert application.import_path == "setpoint.serving.ray_app:build"
    assert application.deployments[0].name == "setpoint"
    build(application.args)
