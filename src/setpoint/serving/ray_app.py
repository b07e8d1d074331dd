"""The Ray Serve application of ``setpoint serve --engine ray`` (see ``ray_engine``).

``build`` is also what a Ray Serve config file names, for clusters whose Serve
applications are declared rather than started by a command (KubeRay's RayService)::

    applications:
      - name: setpoint
        route_prefix: /
        import_path: setpoint.serving.ray_app:build
        args: {workspace: /mnt/setpoint}
        deployments:
          - name: setpoint
            autoscaling_config: {min_replicas: 2, max_replicas: 8}

Imported on the driver when the app is deployed and on each replica when Ray starts
it; it imports Ray, so nothing else imports it.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from starlette.applications import Starlette

from setpoint.errors import UsageError
from setpoint.serving.server import build_app

_ARGS = {"workspace", "settings", "background", "loop_every"}


@serve.deployment(name="setpoint")
@serve.ingress()
class SetpointReplica:
    """One replica: the embedded server's app for the workspace at ``root``."""

    def __init__(
        self, root: str, settings: dict[str, Any], background: str, loop_every: float
    ) -> None:
        self._app = build_app(root, settings, background, loop_every)

    def __serve_build_asgi_app__(self) -> Starlette:
        return self._app


def build(args: dict[str, Any]) -> Application:
    """The application from a Serve config's ``args``: ``workspace`` (the folder, as
    every node sees it), and optionally ``settings`` (overrides of the workspace's
    settings), ``background`` (off, the default, or worker) and ``loop_every``."""
    return SetpointReplica.bind(*replica_args(args))  # type: ignore[attr-defined,no-any-return]


def replica_args(args: dict[str, Any]) -> tuple[str, dict[str, Any], str, float]:
    """``SetpointReplica``'s arguments from ``build``'s ``args``, checked."""
    unknown = set(args) - _ARGS
    if unknown or "workspace" not in args:
        raise UsageError(
            f"the setpoint application's args take workspace (required), settings, "
            f"background and loop_every; got {sorted(args)}"
        )
    return (
        str(args["workspace"]),
        dict(args.get("settings") or {}),
        str(args.get("background", "off")),
        float(args.get("loop_every", 300.0)),
    )
