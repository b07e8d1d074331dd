"""The Ray Serve deployment of ``setpoint serve --engine ray`` (see ``ray_engine``).

Imported on the driver when the app is deployed and on each replica when Ray starts
it; it imports Ray, so nothing else imports it.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from starlette.applications import Starlette

from setpoint.serving.server import build_app


@serve.deployment
@serve.ingress()
class SetpointReplica:
    """One replica: the embedded server's app for the workspace at ``root``."""

    def __init__(
        self, root: str, settings: dict[str, Any], background: str, loop_every: float
    ) -> None:
        self._app = build_app(root, settings, background, loop_every)

    def __serve_build_asgi_app__(self) -> Starlette:
        return self._app
