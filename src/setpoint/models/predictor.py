"""The predictor contract every model flavor implements.

The registry stores what :meth:`Predictor.save` and :meth:`Predictor.metadata`
return and hands both back to the flavor's ``load``; serving and monitoring only
call ``predict``/``predict_proba`` and read the schemas. So a new library needs one
class implementing this protocol and nothing else changes.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol, Self

import numpy as np
import numpy.typing as npt

from setpoint.data.kinds import KINDS, Kind
from setpoint.errors import ArtifactCorruptedError, UsageError

__all__ = ["ARGMAX_FLAVORS", "BasePredictor", "Predictor", "Task"]

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")
# Flavors whose predicted label is by construction the most probable class, so one
# predict_proba call answers both (a scikit-learn model's predict may differ from the
# argmax, so serving, batch scoring and the cost gate ask it for both).
ARGMAX_FLAVORS = frozenset({"lightgbm", "xgboost", "compiled", "onnx", "onnx-pipeline"})


class Predictor(Protocol):
    """A fitted model that predicts on any input :mod:`setpoint.models.inputs` reads."""

    @property
    def flavor(self) -> str:
        """The name :func:`setpoint.models.flavors.load` knows this kind of model by."""
        ...

    task: Task
    features: list[str]
    kinds: dict[str, Kind]
    classes: list[Any] | None

    def predict(self, data: Any) -> npt.NDArray[Any]:
        """One prediction per row: a label from ``classes``, or a number."""
        ...

    def predict_proba(self, data: Any) -> npt.NDArray[np.float64] | None:
        """Class probabilities (rows by classes, in ``classes`` order); None for regression."""
        ...

    def input_schema(self) -> list[dict[str, str]]:
        """The features in order, as ``[{"name", "kind"}]``."""
        ...

    def output_schema(self) -> dict[str, Any]:
        """What ``predict`` and ``predict_proba`` return."""
        ...

    def save(self) -> dict[str, bytes]:
        """The model's files by role, e.g. ``{"model": b"..."}``."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Everything ``load`` needs besides the files, JSON-serialisable."""
        ...


class BasePredictor(ABC):
    """The parts every flavor shares: validated fields, schemas, common metadata.

    A flavor sets ``flavor`` and ``libraries`` (modules whose versions go into the
    metadata, so a load under a different version can be diagnosed) and
    implements ``wrap`` (from a fitted object), ``load`` (from saved files), ``predict``,
    ``predict_proba`` and ``save``.
    """

    flavor: ClassVar[str] = ""
    libraries: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        features: Sequence[str],
        task: Task,
        kinds: Mapping[str, Kind] | None = None,
        classes: Sequence[Any] | None = None,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.features = [str(name) for name in features]
        if not self.features:
            raise UsageError("a model needs at least one feature; pass features=[column, ...]")
        if len(set(self.features)) != len(self.features):
            raise UsageError(f"features must be unique; got {self.features}")
        if task not in TASKS:
            raise UsageError(f"task must be 'classification' or 'regression', not {task!r}")
        self.task: Task = task
        kinds = dict(kinds or {})
        unknown = {n: k for n, k in kinds.items() if k not in KINDS}
        if unknown:
            raise UsageError(f"unknown kind(s) {unknown}; kinds are {', '.join(KINDS)}")
        self.kinds: dict[str, Kind] = {name: kinds.get(name, "numeric") for name in self.features}
        self.classes: list[Any] | None = None if classes is None else [_plain(c) for c in classes]
        if task == "regression":
            self.classes = None
        self.categories: dict[str, list[str]] = {
            name: [str(v) for v in values] for name, values in (categories or {}).items()
        }

    @classmethod
    @abstractmethod
    def wrap(
        cls,
        obj: Any,
        *,
        features: Sequence[str],
        task: Task | None,
        kinds: Mapping[str, Kind] | None,
        categories: Mapping[str, Sequence[str]] | None,
    ) -> Self:
        """The predictor of a fitted ``obj`` of this flavor's library."""

    @classmethod
    @abstractmethod
    def load(cls, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> Self:
        """The predictor :meth:`save` and :meth:`metadata` described."""

    @abstractmethod
    def predict(self, data: Any) -> npt.NDArray[Any]: ...

    @abstractmethod
    def predict_proba(self, data: Any) -> npt.NDArray[np.float64] | None: ...

    @abstractmethod
    def save(self) -> dict[str, bytes]: ...

    def input_schema(self) -> list[dict[str, str]]:
        return [{"name": name, "kind": self.kinds[name]} for name in self.features]

    def output_schema(self) -> dict[str, Any]:
        if self.task == "regression":
            return {"task": "regression", "prediction": {"kind": "numeric"}}
        return {
            "task": "classification",
            "prediction": {"kind": "categorical", "classes": self.classes},
            "probabilities": {"kind": "numeric", "columns": self.classes},
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "flavor": self.flavor,
            "task": self.task,
            "features": list(self.features),
            "kinds": dict(self.kinds),
            "classes": None if self.classes is None else list(self.classes),
            "categories": {name: list(values) for name, values in self.categories.items()},
            "libraries": {name: _version(name) for name in self.libraries},
        }

    @staticmethod
    def common_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor arguments :meth:`metadata` recorded, for a flavor's ``load``."""
        absent = [key for key in ("features", "task") if key not in metadata]
        if absent:
            raise ArtifactCorruptedError(
                f"the model metadata lacks {', '.join(absent)}; it was not written by "
                "Predictor.metadata(), so register the model again"
            )
        return {
            "features": metadata["features"],
            "task": metadata["task"],
            "kinds": metadata.get("kinds"),
            "classes": metadata.get("classes"),
            "categories": metadata.get("categories"),
        }

    @classmethod
    def file(cls, files: Mapping[str, bytes], role: str = "model") -> bytes:
        """The saved file of ``role``, or an error naming what is there instead."""
        if role not in files:
            raise ArtifactCorruptedError(
                f"a {cls.flavor} model needs its {role!r} file, but only "
                f"{sorted(files) or 'no files'} were stored"
            )
        return files[role]

    def relabel(self, classes: Sequence[Any]) -> None:
        """Name the classes of a classifier fitted on codes 0..k-1 (as XGBoost needs)."""
        if self.classes is None or len(classes) != len(self.classes):
            raise UsageError(
                f"cannot name {len(classes)} classes for a model with "
                f"{'no' if self.classes is None else len(self.classes)} classes"
            )
        self.classes = [_plain(c) for c in classes]

    def labels(self, indices: npt.NDArray[np.intp]) -> npt.NDArray[Any]:
        """Class labels for class indices (argmax of the probabilities)."""
        assert self.classes is not None
        return np.asarray(self.classes)[indices]

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.task} on {len(self.features)} feature(s)"
            + (f", classes {self.classes}" if self.classes is not None else "")
            + ">"
        )


def _plain(value: Any) -> Any:
    """A class label as a plain Python value, so metadata is JSON and labels round-trip."""
    return value.item() if isinstance(value, np.generic) else value


def _version(module: str) -> str | None:
    # The module's own __version__: distribution names vary (xgboost vs xgboost-cpu).
    try:
        version = getattr(importlib.import_module(module), "__version__", None)
    except ImportError:
        return None
    return None if version is None else str(version)
