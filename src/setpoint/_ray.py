"""Reaching Ray, for the engines that run on it (``serve``, ``predict`` and
``monitor run`` with ``--engine ray``).

One place decides how a command finds its cluster, when a cluster cannot share the
workspace, and what a worker process gets from the driver's environment, so the
engines behave alike. Ray is imported here only when an engine asks for it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from setpoint.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

INSTALL = "pip install 'setpoint[ray]'"
# Variables a worker needs from the driver's environment: object-store endpoints and
# credentials, and setpoint's own settings.
FORWARDED_PREFIXES = ("AWS_", "SETPOINT_", "FSSPEC_", "GOOGLE_", "AZURE_")


def import_ray(*parts: str, instead: str) -> Any:
    """The ``ray`` module with ``parts`` (``"serve"``, ``"data"``) imported, or a
    ``UsageError`` naming the extra to install and ``instead``, what to do without it."""
    try:
        import importlib

        import ray

        for part in parts:
            importlib.import_module(f"ray.{part}")
    except ImportError as exc:
        raise UsageError(
            f"--engine ray needs Ray ({exc}); install it with: {INSTALL}, or {instead}"
        ) from None
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Connect this process to Ray: ``address`` (or ``$RAY_ADDRESS``; ``auto`` finds a
    cluster started on this machine with ``ray start``) names a running cluster;
    without either, start Ray here for this command. True if this call started it."""
    if ray.is_initialized():
        return False
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    # Ray's own notices (its start-up, token authentication being on) would bury what
    # the command says; errors still show.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    try:
        ray.init(
            address=target,
            logging_level=logging.ERROR,
            log_to_driver=False,
            include_dashboard=False if target == "local" else None,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UsageError(
            f"cannot reach the Ray cluster at {target!r} ({exc}); check --address (or "
            "RAY_ADDRESS; `auto` finds one started here with `ray start`), or leave both "
            "unset to start Ray on this machine"
        ) from None
    return target == "local"


def machines(ray: Any) -> int:
    """How many machines the cluster's live nodes are on (nodes of one machine share
    its disk, so they can share a SQLite workspace)."""
    return len({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")})


def check_shared(workspace: Workspace, machines: int, *, instead: str, logs: bool = False) -> None:
    """Refuse a cluster on several ``machines`` that cannot all reach ``workspace``,
    naming each setting to change, or ``instead``. ``logs``: the work writes the
    prediction log, which then needs a store too (``log_uri``)."""
    if machines < 2:
        return
    local = []
    if workspace.db.is_sqlite:
        local.append(
            "database_url to PostgreSQL (SETPOINT_DATABASE_URL=postgresql+psycopg://USER@HOST/DB)"
        )
    stores = (("artifacts_uri", workspace.artifacts), ("data_uri", workspace.data_store))
    for name, store in stores:
        if store.is_local:
            local.append(f"{name} to shared storage (SETPOINT_{name.upper()}=s3://BUCKET/PATH)")
    if logs and workspace.logs.remote is None:
        local.append("log_uri to shared storage (SETPOINT_LOG_URI=s3://BUCKET/PATH)")
    if local:
        raise ConfigError(
            f"the Ray cluster spans {machines} machines, which cannot reach this "
            f"workspace's local files; set {' and '.join(local)}, or {instead}"
        )


def environment() -> dict[str, str]:
    """The driver's variables each worker gets (see ``FORWARDED_PREFIXES``)."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}
