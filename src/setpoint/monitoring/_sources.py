"""What monitoring needs of a workspace, and nothing more.

Monitoring sits below the workspace: ``Workspace.monitors`` builds the monitors, so no
module here imports ``setpoint.workspace``
(``tests/monitoring/test_monitoring_layering.py`` checks it). The monitors take these
protocols instead, which ``Workspace`` satisfies structurally (mypy checks it where
``Workspace.monitors`` hands itself over), and a test or another host can pass
anything that has these members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from setpoint.data.catalog import DatasetVersion
    from setpoint.data.contract import Contract
    from setpoint.data.pii import PiiPolicy
    from setpoint.models.predictor import Predictor
    from setpoint.models.registry import ModelVersion
    from setpoint.serving._logremote import LogLocation
    from setpoint.serving.deployments import DeploymentStore
    from setpoint.store.artifacts import ArtifactStore
    from setpoint.store.db import Database


class ReferenceSources(Protocol):
    """What a reference is built and read back from (``reference.py``, ``window.py``):
    dataset versions, model versions and the artifact store that keeps its sample and
    calibration."""

    @property
    def artifacts(self) -> ArtifactStore: ...

    def dataset(self, ref: str) -> DatasetVersion: ...

    def load_dataset(self, ref: str) -> pa.Table: ...

    def model(self, ref: str) -> ModelVersion: ...

    def load_model(self, ref: str) -> Predictor: ...


class Sources(ReferenceSources, Protocol):
    """What the monitors use (``monitor.py``, ``backfill.py``): besides a reference's
    sources, the metadata store and who acts in it, the endpoints' deployments, where
    the logs that hold the traffic live, and how a contract's personal data is
    masked before a backfill writes it to the logs."""

    @property
    def logs(self) -> LogLocation: ...

    @property
    def db(self) -> Database: ...

    @property
    def actor(self) -> str: ...

    @property
    def deployments(self) -> DeploymentStore: ...

    def pii_policy(self, contract: Contract) -> PiiPolicy: ...
