"""Running the app under uvicorn: ``setpoint serve``.

With several workers uvicorn starts one process each; every process builds its app
from the environment (``app_from_environment``), opens the workspace and writes its
own prediction-log segments, so workers share nothing but the workspace and, with
several workers, a metrics directory (see ``serving.metrics``). The prediction routes
are answered by uvicorn's protocol without the ASGI cycle (``_protocol.py``).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from setpoint.errors import UsageError
from setpoint.serving.metrics import MULTIPROC_DIR
from setpoint.serving.tls import TLSFiles

logger = logging.getLogger("setpoint.serving")

_WORKSPACE = "SETPOINT_WORKSPACE"
_OVERRIDES = "SETPOINT_SERVE_OVERRIDES"
_BACKGROUND = "SETPOINT_SERVE_BACKGROUND"  # MODE:SECONDS, see setpoint.loop.background


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


def check_address(host: str, port: int) -> None:
    """Raise a ``UsageError`` naming the fix when ``host:port`` cannot be bound, so that
    ``setpoint serve`` says so before it announces that it serves (uvicorn would only
    log the errno after that). Binds as uvicorn does (``SO_REUSEADDR``, the family the
    host implies) and lets go at once: a program that takes the port in between still
    makes uvicorn fail, as before."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} is already in use: another program (or another "
                    f"setpoint serve) listens there; stop it, or pick a free port with "
                    f"--port {port + 1 if port < 65535 else 8000}"
                ) from None
            if error.errno == errno.EACCES:
                raise UsageError(
                    f"not allowed to listen on port {port} (ports below 1024 need "
                    "privileges); pick another with --port 8000"
                ) from None
            raise UsageError(
                f"cannot listen on {host}:{port}: {error.strerror or error}; check --host "
                "(an address of this machine) and --port"
            ) from None


def app_from_environment() -> Starlette:
    """The app for the workspace named in ``SETPOINT_WORKSPACE`` (one per worker)."""
    import json

    overrides: dict[str, Any] = json.loads(os.environ.get(_OVERRIDES, "{}"))
    mode, every = os.environ.get(_BACKGROUND, "worker:300").split(":")
    return build_app(os.environ[_WORKSPACE], overrides, mode, float(every))


def build_app(root: str, overrides: dict[str, Any], background: str, every: float) -> Starlette:
    """The app of one server process (a uvicorn worker or a Ray Serve replica): the
    workspace at ``root`` opened with ``overrides``, its logs, and what runs beside it
    (``background`` mode, ticking every ``every`` seconds)."""
    from setpoint.loop.background import background as beside
    from setpoint.serving.app import create_app
    from setpoint.serving.log import RecordLog
    from setpoint.workspace import Workspace

    workspace = Workspace.open(root, **overrides)
    return create_app(
        workspace,
        RecordLog(workspace.logs, kind="predictions"),
        feedback_log=RecordLog(workspace.logs, kind="feedback"),
        async_log=RecordLog(workspace.logs, kind="predictions", durable=False),
        refused_log=RecordLog(workspace.logs, kind="refused"),
        freeze_heap=True,
        background=beside(workspace, background, every=every),
    )


def exposure(
    host: str, *, insecure: bool, has_keys: bool, overrides: dict[str, Any], scope: str = "predict"
) -> dict[str, Any]:
    """The settings overrides for a server listening on ``host``: beyond loopback
    (without ``insecure``) every request needs a key, and the server needs one to
    start (``has_keys``: the workspace has an active API key)."""
    if is_loopback(host) or insecure:
        return overrides
    if not has_keys:
        raise UsageError(
            f"refusing to listen on {host}, which other machines can reach, without API keys; "
            f"create one (setpoint keys create --scope {scope}), serve on 127.0.0.1 behind a "
            "proxy, or pass --insecure if this network is trusted"
        )
    return {**overrides, "require_keys": True}


def serve(
    workspace_root: str,
    *,
    host: str,
    port: int,
    workers: int,
    insecure: bool,
    has_keys: bool,
    overrides: dict[str, Any],
    background: str = "worker",
    loop_every: float = 300.0,
    tls: TLSFiles | None = None,
) -> None:
    """Run the server until interrupted; ``tls`` (see ``serving.tls.check_tls``) serves
    HTTPS instead of HTTP. ``has_keys``: the workspace has an active API key.

    Beyond loopback (without ``insecure``) the server needs a key for every request
    while it runs, not only an active key to start: revoking the last key then closes
    it rather than opening it (``require_keys`` in every worker's settings)."""
    overrides = exposure(host, insecure=insecure, has_keys=has_keys, overrides=overrides)
    if workers < 1:
        raise UsageError("--workers must be 1 or more")
    if background == "loop" and workers > 1:
        raise UsageError(
            "--background loop runs the monitors in one process; with --workers above 1 "
            "use --background worker and run `setpoint loop` once beside the server"
        )
    if background not in ("off", "worker", "loop") or not loop_every > 0:
        raise UsageError("--background: off, worker or loop; --loop-every: positive seconds")
    import json

    os.environ[_WORKSPACE] = workspace_root
    os.environ[_OVERRIDES] = json.dumps(overrides)
    os.environ[_BACKGROUND] = f"{background}:{loop_every}"
    # uvicorn handles SIGTERM itself while it serves (a graceful drain), then re-raises
    # it; with the default action that kills the process and a clean stop exits -15.
    # A SIGTERM outside uvicorn's handler (re-raised after the drain, or before uvicorn
    # starts) exits with status 0 instead.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_cleanly) if main else None
    forget_metrics = _share_metrics(workers)
    try:
        uvicorn.run(
            "setpoint.serving.server:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=30,
            # Nothing here reads the client's address (keys, not addresses, are
            # authenticated and rate-limited), so X-Forwarded-* need no parsing; and
            # the response does not advertise the server software.
            proxy_headers=False,
            server_header=False,
            http=_http_protocol(),
            **(tls.uvicorn_options() if tls is not None else {}),
        )
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        forget_metrics()


def _http_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's httptools protocol answering the prediction routes without ASGI
    (``_protocol.py``), or, with a uvicorn whose internals it does not know, uvicorn's
    own choice (every route then goes through ASGI, a little slower)."""
    try:
        from setpoint.serving._protocol import HotProtocol
    except (ImportError, AttributeError) as exc:  # a uvicorn other than the one pinned
        logger.warning("serving every request through ASGI: %s", exc)
        return "auto"
    return HotProtocol


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _share_metrics(workers: int) -> Callable[[], None]:
    """With several workers, a fresh metrics directory they all record into (named in
    the environment they inherit), so any of them can report the totals of all; returns
    what removes it when the server stops. A left-over directory would carry old counts."""
    if workers == 1:
        return lambda: None
    previous = os.environ.get(MULTIPROC_DIR)
    path = tempfile.mkdtemp(prefix="setpoint-metrics-")
    os.environ[MULTIPROC_DIR] = path

    def forget() -> None:
        if previous is None:
            os.environ.pop(MULTIPROC_DIR, None)
        else:
            os.environ[MULTIPROC_DIR] = previous
        shutil.rmtree(path, ignore_errors=True)

    return forget
