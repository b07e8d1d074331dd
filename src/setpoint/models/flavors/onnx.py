"""Models exported to ONNX and run by ONNX Runtime, with one thread as serving runs
models: LightGBM trees (flavor ``onnx``) and scikit-learn pipelines (flavor
``onnx-pipeline``), both made by ``setpoint optimize``.

The graph takes the float matrix of the features (``models/inputs.py``, categories as
codes) in single precision, as ONNX's tree operators do; the probabilities come back
as float32 and are widened, so they agree with the original to about 1e-7, and a row
whose value sits within float32 rounding of a split threshold may take the other
branch (``setpoint optimize`` measures how often on the hold-out).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from setpoint.data.kinds import TEXT_KINDS, Kind
from setpoint.errors import ArtifactCorruptedError, UsageError
from setpoint.models.flavors._encoded import EncodedPredictor, _reload
from setpoint.models.flavors._trees import FloatArray, optional_import
from setpoint.models.flavors.pyfunc import PyfuncPredictor
from setpoint.models.predictor import BasePredictor, Task

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
        self._session = _session(graph, output)

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
        return cls(cls.file(files), _output(metadata), **cls.common_fields(metadata))

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


class OnnxPipelinePredictor(PyfuncPredictor):
    """A scikit-learn model (its preprocessing included) exported to ONNX by skl2onnx,
    one graph input per feature: numbers as float32 (NaN for missing), text as strings
    (missing as the empty string, which the exported imputers replace as the fitted
    ones replaced None). Fed by the same ``to_frame`` as the scikit-learn flavor, so it
    refuses and accepts what the original does."""

    flavor = "onnx-pipeline"
    libraries: ClassVar[tuple[str, ...]] = ("onnxruntime", "onnx", "numpy", "pandas")

    def __init__(self, graph: bytes, output: str, **fields: Any) -> None:
        super().__init__(None, **fields)
        self.graph, self.output = graph, output
        self.model = _PipelineSession(graph, output, self)

    @classmethod
    def wrap(
        cls,
        obj: Any,
        *,
        features: Sequence[str],
        task: Task | None,
        kinds: Mapping[str, Kind] | None,
        categories: Mapping[str, Sequence[str]] | None,
    ) -> Self:
        raise UsageError(
            f"an {cls.flavor} model is made from a registered scikit-learn model by "
            "`setpoint optimize NAME@VERSION`, not from a fitted object"
        )

    @classmethod
    def from_sklearn(cls, original: BasePredictor, estimator: Any) -> Self:
        """``original``'s fitted scikit-learn ``estimator`` (pipeline) as an ONNX graph."""
        skl2onnx = optional_import("skl2onnx", package="skl2onnx", extra=_EXTRA)
        types = optional_import("skl2onnx.common.data_types", package="skl2onnx", extra=_EXTRA)
        unsupported = [n for n in original.features if original.kinds[n] == "datetime"]
        if unsupported:
            raise UsageError(
                f"datetime feature(s) {', '.join(unsupported)} have no ONNX input type here; "
                "leave out the onnx candidate (--only)"
            )
        inputs = [
            (
                name,
                (types.StringTensorType if _is_text(original, name) else types.FloatTensorType)(
                    [None, 1]
                ),
            )
            for name in original.features
        ]
        try:
            model = skl2onnx.convert_sklearn(
                _strings_for_none(estimator),
                initial_types=inputs,
                # probabilities as one tensor, not a list of dicts (classifiers only)
                options={"zipmap": False} if original.task == "classification" else None,
            )
        except (RuntimeError, NotImplementedError, ValueError, TypeError, NameError) as exc:
            raise UsageError(
                f"this {type(estimator).__name__} cannot be exported to ONNX: {exc}"
            ) from exc
        fields = cls.common_fields(original.metadata())
        return cls(model.SerializeToString(), model.graph.output[-1].name, **fields)

    def quantized(self) -> tuple[Self | None, str]:
        """This graph with its dense weights (MatMul, Gemm) in int8 by ONNX Runtime's
        dynamic quantization; None and why when it has none."""
        quantization = optional_import(
            "onnxruntime.quantization", package="onnxruntime", extra=_EXTRA
        )
        onnx = optional_import("onnx", package="onnx", extra=_EXTRA)
        with tempfile.TemporaryDirectory(prefix="setpoint-quantize-") as folder:
            source, target = Path(folder) / "model.onnx", Path(folder) / "int8.onnx"
            source.write_bytes(self.graph)
            logging.disable(logging.WARNING)  # its advice to pre-process, on the root logger
            try:
                quantization.quantize_dynamic(
                    source, target, weight_type=quantization.QuantType.QInt8
                )
            finally:
                logging.disable(logging.NOTSET)
            graph = target.read_bytes()
        ops = {node.op_type for node in onnx.load_from_string(graph).graph.node}
        if not ops & {"MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul"}:
            return None, "the model has no dense weights (MatMul, Gemm) to quantize"
        fields = self.common_fields(self.metadata())
        return type(self)(graph, self.output, **fields), "int8 weights (dynamic quantization)"

    @classmethod
    def load(cls, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> Self:
        return cls(cls.file(files), _output(metadata), **cls.common_fields(metadata))

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "output": self.output}

    def save(self) -> dict[str, bytes]:
        return {"model": self.graph}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reload, (type(self), self.save(), self.metadata()))


class _PipelineSession:
    """What the pyfunc machinery calls (``predict``, ``predict_proba`` on a frame of the
    features), answered by an ONNX Runtime session."""

    def __init__(self, graph: bytes, output: str, owner: OnnxPipelinePredictor) -> None:
        self._session = _session(graph, output)
        self._output = output
        self._features = list(owner.features)
        self._text = {name for name in owner.features if _is_text(owner, name)}
        self._task, self._classes = owner.task, owner.classes

    def _run(self, frame: Any) -> npt.NDArray[np.float64]:
        feed = {}
        for name in self._features:
            column = frame[name]
            if name in self._text:
                values = np.asarray(column.fillna("").astype(str), dtype=object)
            else:
                values = np.asarray(column, dtype=np.float32)
            feed[name] = values.reshape(-1, 1)
        (out,) = self._session.run([self._output], feed)
        return np.asarray(out, dtype=np.float64)

    def predict_proba(self, frame: Any) -> npt.NDArray[np.float64]:
        return self._run(frame)

    def predict(self, frame: Any) -> npt.NDArray[Any]:
        out = self._run(frame)
        if self._task == "regression":
            return out.reshape(-1)
        assert self._classes is not None
        return np.asarray(np.asarray(self._classes)[np.argmax(out, axis=1)])


def _session(graph: bytes, output: str) -> Any:
    """An ONNX Runtime session on one thread, as serving runs models."""
    ort = optional_import("onnxruntime", package="onnxruntime", extra=_EXTRA)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are about shapes it infers
    try:
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own untyped exceptions
        raise ArtifactCorruptedError(
            f"the ONNX model cannot be loaded ({exc}); it is damaged or was not "
            "written by setpoint optimize"
        ) from exc
    outputs = [o.name for o in session.get_outputs()]
    if output not in outputs:
        raise ArtifactCorruptedError(
            f"the ONNX model has no output {output!r} (it has {', '.join(outputs)}); "
            "run setpoint optimize again"
        )
    return session


def _is_text(predictor: BasePredictor, name: str) -> bool:
    return predictor.kinds[name] in TEXT_KINDS


def _strings_for_none(estimator: Any) -> Any:
    """A copy of ``estimator`` whose imputers of text look for the empty string instead
    of None: skl2onnx exports only string markers (what is fed for None, _PipelineSession)."""
    from sklearn.impute import SimpleImputer

    copy = deepcopy(estimator)

    def visit(step: Any) -> None:
        if isinstance(step, SimpleImputer) and step.missing_values is None:
            step.missing_values = ""
        for attribute in ("steps", "transformers_"):
            for part in getattr(step, attribute, None) or []:
                visit(part[1])

    visit(copy)
    return copy


def _output(metadata: Mapping[str, Any]) -> str:
    """The name of the graph's output a saved ONNX model answers from."""
    output = metadata.get("output")
    if not isinstance(output, str):
        raise ArtifactCorruptedError(
            "the ONNX model's metadata does not name its output; run setpoint optimize again"
        )
    return output
