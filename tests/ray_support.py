"""A local Ray cluster of two nodes on loopback, for the scale-out tests.

Made once per test session (starting Ray costs seconds) and shut down at its end.
Without Ray installed (the ``ray`` extra) a Ray test skips with the reason, except
when ``SETPOINT_REQUIRE_RAY=1`` (set by CI), where it fails.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

REQUIRE_RAY = os.environ.get("SETPOINT_REQUIRE_RAY", "") not in ("", "0")

# Small on purpose: the tests move kilobytes, and the machine is shared.
NODE = {"num_cpus": 2, "object_store_memory": 128 * 1024 * 1024}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ray_or_skip() -> Any:
    try:
        # Ray's own modules use deprecated pydantic and numpy APIs on import; importing
        # them here, once, keeps those warnings (not ours) from failing a test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import ray
            import ray.serve
            import ray.serve.schema
    except ImportError as exc:
        reason = f"Ray is not installed ({exc}); install it with: pip install 'setpoint[ray]'"
        if REQUIRE_RAY:
            pytest.fail(reason + " (SETPOINT_REQUIRE_RAY is set, so this fails)")
        pytest.skip(reason)
    return ray


# The one cluster of the session: each test module imports the fixture, which makes it
# a fixture of that module, so the modules share what the first one started.
_SHARED: dict[str, Any] = {}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A head node and one worker node (``ray.cluster_utils.Cluster``), with this
    process connected as the driver; tests may add and remove further nodes."""
    ray = ray_or_skip()
    from ray.cluster_utils import Cluster

    if not _SHARED:
        # No dashboard, and its API server on a free port: Ray's default one may be
        # taken (by another cluster on the machine), which it reports with a leaked
        # socket (a warning, so an error here).
        head = dict(NODE, include_dashboard=False, dashboard_port=_free_port())
        cluster = Cluster(initialize_head=True, head_node_args=head)
        cluster.add_node(**NODE)
        ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
        cluster.wait_for_nodes()
        _SHARED.update(cluster=cluster, users=0)
    _SHARED["users"] += 1
    try:
        yield _SHARED["cluster"]
    finally:
        _SHARED["users"] -= 1
        if not _SHARED["users"]:
            cluster = _SHARED.pop("cluster")
            _SHARED.clear()
            ray.shutdown()
            cluster.shutdown()
