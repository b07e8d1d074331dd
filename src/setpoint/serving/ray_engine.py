"""Serving on Ray: ``setpoint serve --engine ray``.

One Ray Serve application, ``setpoint``, whose deployment's replicas each run the
embedded server's app (``create_app``: every endpoint's runtime with its contract
check, micro-batching, cache, canary and shadow, breaker and durable log, and the
native, OIP v2 and MLflow routes) behind Ray Serve's HTTP proxy. A request crosses
one Ray hop, proxy to replica, as it would to a bare Ray Serve deployment: splitting
the protocol layer and each endpoint's runtime into deployments of their own adds a
second hop, which measured 0.52-0.55x the requests/s of a bare deployment against
0.93-0.98x for the one-hop app (2-core machine, one replica each, wrk at 16
connections; see docs/benchmarks.md "Serving on Ray"). So endpoints scale together,
as they share a process in the embedded server.

Replicas are fixed (``Replicas(fixed=N)``) or follow Ray Serve's autoscaling on
ongoing requests (``Replicas(minimum=…, maximum=…, target=…)``). Each replica opens
the workspace with the settings the driver resolved and checked, logs to segment
files of its own (``RecordLog`` names them by writer), and follows promotions as the
embedded server does: it loads the new version beside the old one and swaps between
batches, so no request fails. More than one node needs the metadata on PostgreSQL
and the artifacts and datasets on shared storage, and the workspace folder (which
holds the prediction log) on a filesystem every node mounts; ``deploy`` refuses a
cluster of several nodes otherwise and names the setting to change.

Ray is imported here only, and this module only when ``--engine ray`` is asked for.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Any

from setpoint import _ray
from setpoint.errors import UsageError
from setpoint.workspace import Workspace

APP = "setpoint"
INSTEAD = "serve on one machine with --engine local"


@dataclass(frozen=True)
class Replicas:
    """How many replicas serve: ``fixed``, or between ``minimum`` and ``maximum``
    scaled by Ray Serve to keep about ``target`` requests ongoing per replica."""

    fixed: int | None = 1
    minimum: int | None = None
    maximum: int | None = None
    target: float = 8.0

    def __post_init__(self) -> None:
        if self.autoscaled:
            low, high = self.minimum or 0, self.maximum or 0
            if not 0 <= low <= high or high < 1:
                raise UsageError(
                    "--min-replicas must be 0 or more and at most --max-replicas (1 or more)"
                )
            if self.target <= 0:
                raise UsageError("--target-ongoing must be a positive number of requests")
        elif self.fixed is None or self.fixed < 1:
            raise UsageError("--replicas must be 1 or more")

    @property
    def autoscaled(self) -> bool:
        return self.minimum is not None or self.maximum is not None

    def options(self) -> dict[str, Any]:
        if not self.autoscaled:
            return {"num_replicas": self.fixed}
        return {
            "num_replicas": "auto",
            "autoscaling_config": {
                "min_replicas": self.minimum or 0,
                "max_replicas": self.maximum,
                "target_ongoing_requests": self.target,
            },
        }

    def describe(self) -> str:
        if not self.autoscaled:
            return f"{self.fixed} replica{'s' if self.fixed != 1 else ''}"
        return (
            f"{self.minimum or 0} to {self.maximum} replicas "
            f"(about {self.target:g} ongoing requests each)"
        )


@dataclass(frozen=True)
class ReplicaSettings:
    """What each replica runs with."""

    cpus: float = 1.0
    max_ongoing: int = 64
    background: str = "off"
    loop_every: float = 300.0
    health_check_seconds: float = 10.0


def deploy(
    workspace: Workspace,
    *,
    overrides: dict[str, Any],
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: Replicas = Replicas(),
    replica: ReplicaSettings = ReplicaSettings(),
    proxy_on_every_node: bool = False,
) -> str:
    """Deploy the app on the connected cluster and return its URL once every replica is
    ready. The replicas open ``workspace`` with the settings it was opened with."""
    ray = _ray.import_ray("serve", instead=INSTEAD)
    from ray import serve

    from setpoint.serving.ray_app import SetpointReplica, replica_args

    _ray.check_shared(workspace, _ray.machines(ray), instead=INSTEAD, logs=True)
    settings = {
        **overrides,
        "database_url": workspace.db.url,
        "artifacts_uri": workspace.artifacts.uri,
        "data_uri": workspace.data_store.uri,
    }
    serve.start(
        http_options={
            "host": host,
            "port": port,
            "location": "EveryNode" if proxy_on_every_node else "HeadOnly",
        },
        logging_config={"log_level": "WARNING", "enable_access_log": False},
    )
    _check_proxy(host, port)
    app = SetpointReplica.options(  # type: ignore[attr-defined]
        name=APP,
        max_ongoing_requests=replica.max_ongoing,
        health_check_period_s=replica.health_check_seconds,
        graceful_shutdown_timeout_s=30,
        ray_actor_options={
            "num_cpus": replica.cpus,
            "runtime_env": {"env_vars": _ray.environment()},
        },
        **replicas.options(),
    ).bind(
        *replica_args(
            {
                "workspace": str(workspace.root),
                "settings": settings,
                "background": replica.background,
                "loop_every": replica.loop_every,
            }
        )
    )
    try:
        serve.run(app, name=APP, route_prefix="/", blocking=False)
    except ray.exceptions.RayError as exc:
        raise UsageError(f"Ray Serve could not start the replicas: {exc}") from None
    return f"http://{host}:{port}"


def _check_proxy(host: str, port: int) -> None:
    """Refuse to deploy behind a proxy listening elsewhere: Ray Serve already running on
    the cluster keeps its own address (``serve.start`` ignores new options then)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    if client is None:  # serve.start has just made one; nothing to compare with
        return
    actual = client.http_config
    if (actual.host, actual.port) != (host, port):
        raise UsageError(
            f"Ray Serve already runs on this cluster with its proxy on "
            f"{actual.host}:{actual.port}, not {host}:{port}; pass --host {actual.host} "
            f"--port {actual.port}, or stop it first with `serve shutdown`"
        )


def undeploy() -> None:
    """Remove the app: each replica drains what it accepted and closes its log."""
    from ray import serve

    serve.delete(APP)


def serve_until_stopped(
    workspace: Workspace,
    *,
    address: str | None,
    announce: Any,
    **options: Any,
) -> None:
    """``setpoint serve --engine ray``: deploy, call ``announce(url)``, and serve until
    SIGINT or SIGTERM; then remove the app, and stop Ray if this call started it."""
    ray = _ray.import_ray("serve", instead=INSTEAD)
    started = _ray.connect(ray, address)
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        url = deploy(workspace, **options)
        announce(url)
        stop.wait()
        undeploy()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started:
            ray.shutdown()
