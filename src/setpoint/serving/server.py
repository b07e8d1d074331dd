"""Running the app under uvicorn: ``setpoint serve``.

With several workers uvicorn starts one process each; every process builds its app
from the environment (``app_from_environment``), opens the workspace and writes its
own prediction-log segments, so workers share nothing but the workspace.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette

from setpoint.errors import UsageError

_WORKSPACE = "SETPOINT_WORKSPACE"
_OVERRIDES = "SETPOINT_SERVE_OVERRIDES"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def app_from_environment() -> Starlette:
    """The app for the workspace named in ``SETPOINT_WORKSPACE`` (one per worker)."""
    import json

    from setpoint.serving.app import create_app
    from setpoint.serving.log import RecordLog
    from setpoint.workspace import Workspace

    overrides: dict[str, Any] = json.loads(os.environ.get(_OVERRIDES, "{}"))
    workspace = Workspace.open(os.environ[_WORKSPACE], **overrides)
    return create_app(
        workspace,
        RecordLog(workspace.root, kind="predictions"),
        feedback_log=RecordLog(workspace.root, kind="feedback"),
    )


def serve(
    workspace_root: str,
    *,
    host: str,
    port: int,
    workers: int,
    insecure: bool,
    has_keys: bool,
    overrides: dict[str, Any],
) -> None:
    if not is_loopback(host) and not has_keys and not insecure:
        raise UsageError(
            f"refusing to listen on {host}, which other machines can reach, without API keys; "
            "create one (setpoint keys create --scope predict), serve on 127.0.0.1 behind a "
            "proxy, or pass --insecure if this network is trusted"
        )
    if workers < 1:
        raise UsageError("--workers must be 1 or more")
    import json

    os.environ[_WORKSPACE] = workspace_root
    os.environ[_OVERRIDES] = json.dumps(overrides)
    uvicorn.run(
        "setpoint.serving.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
    )
