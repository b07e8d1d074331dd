"""Models exported to ONNX and run by ONNX Runtime, with one thread as serving runs
models.

The graph takes the float matrix of the features (``models/inputs.py``, categories as
codes) in single precision, as ONNX's tree operators do; the probabilities come back
as float32 and are widened, so they agree with the original to about 1e-7, and a row
whose value sits within float32 rounding of a split threshold may take the other
branch (``setpoint optimize`` measures how often on the hold-out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from setpoint.errors import ArtifactCorruptedError, UsageError
from setpoint.models.flavors._encoded import EncodedPredictor
from setpoint.models.flavors._trees import FloatArray, optional_import
from setpoint.models.predictor import BasePredictor

_EXTRA = "optimize"
INPUT = "input"


class OnnxPredictor(EncodedPredictor):
    """An ONNX graph from the matrix of the features to values or probabilities."""

    flavor = "onnx"
    libraries = ("onnxruntime", "onnx", "numpy")

    def __init__(self, graph: bytes, output: str, **fields: Any) -> None:
        super().__init__(**fields)
        self.graph = graph
        self.output = output
        ort = optional_import("onnxruntime", package="onnxruntime", extra=_EXTRA)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its warnings are about shapes it infers
        try:
            self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own untyped exceptions
            raise ArtifactCorruptedError(
                f"the ONNX model cannot be loaded ({exc}); it is damaged or was not "
                "written by the onnx flavor"
            ) from exc
        outputs = [o.name for o in self._session.get_outputs()]
        if output not in outputs:
            raise ArtifactCorruptedError(
                f"the ONNX model has no output {output!r} (it has {', '.join(outputs)}); "
                "run setpoint optimize again"
            )

    @classmethod
    def from_lightgbm(cls, original: BasePredictor, booster: Any) -> Self:
        """``original``'s LightGBM ``booster`` as an ONNX graph."""
        onnxmltools = optional_import("onnxmltools", package="onnxmltools", extra=_EXTRA)
        types = optional_import(
            "onnxmltools.convert.common.data_types", package="onnxmltools", extra=_EXTRA
        )
        features = len(original.features)
        try:
            model = onnxmltools.convert_lightgbm(
                booster,
                initial_types=[(INPUT, types.FloatTensorType([None, features]))],
                zipmap=False,  # probabilities as one tensor, not a list of dicts
            )
        except (RuntimeError, NotImplementedError, ValueError) as exc:
            raise UsageError(f"this LightGBM model cannot be exported to ONNX: {exc}") from exc
        # The classifier's outputs are (label, probabilities), the regressor's (variable,).
        output = model.graph.output[-1].name
        return cls(model.SerializeToString(), output, **cls.common_fields(original.metadata()))

    @classmethod
    def load(cls, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> Self:
        output = metadata.get("output")
        if not isinstance(output, str):
            raise ArtifactCorruptedError(
                "the ONNX model's metadata does not name its output; run setpoint optimize again"
            )
        return cls(cls.file(files), output, **cls.common_fields(metadata))

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "output": self.output, "input_type": "float32"}

    def scores(self, matrix: FloatArray) -> FloatArray:
        (out,) = self._session.run([self.output], {INPUT: matrix.astype(np.float32)})
        out = np.asarray(out, dtype=np.float64)
        if self.task == "regression":
            return out.reshape(-1)
        # Binary: P(class 1), so the other column is 1 - p in double precision.
        return out[:, 1] if out.shape[1] == 2 else out

    def save(self) -> dict[str, bytes]:
        return {"model": self.graph}
