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
