"""setpoint: keep machine-learning models on target in production."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("setpoint")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

from setpoint.errors import SetpointError

__all__ = [
    "Comparison",
    "Contract",
    "DatasetVersion",
    "ModelVersion",
    "SetpointError",
    "TrainSpec",
    "Workspace",
    "__version__",
    "compare",
]


def __getattr__(name: str) -> object:
    # Import lazily so that `import setpoint` (and the CLI's --help) stays fast.
    if name == "Workspace":
        from setpoint.workspace import Workspace

        return Workspace
    if name == "compare":
        from setpoint.monitoring.compare import compare

        return compare
    if name == "Comparison":
        from setpoint.monitoring.comparison import Comparison

        return Comparison
    if name == "Contract":
        from setpoint.data.contract import Contract

        return Contract
    if name == "DatasetVersion":
        from setpoint.data.catalog import DatasetVersion

        return DatasetVersion
    if name == "ModelVersion":
        from setpoint.models.registry import ModelVersion

        return ModelVersion
    if name == "TrainSpec":
        from setpoint.models.spec import TrainSpec

        return TrainSpec
    raise AttributeError(f"module 'setpoint' has no attribute {name!r}")
