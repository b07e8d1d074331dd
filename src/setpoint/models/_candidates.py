"""How each candidate of ``setpoint optimize`` is made (``models/optimize.py``
measures and registers them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from setpoint.data.kinds import TEXT_KINDS
from setpoint.models.predictor import Predictor
from setpoint.models.spec import TrainSpec


def build(
    name: str,
    original: Predictor,
    booster: Any,
    train: pa.Table,
    best_iteration: Callable[[Any, int], int],
    spec: TrainSpec,
    trees: int | None,
) -> tuple[Predictor | None, str]:
    """Candidate ``name`` of ``original`` (``booster``: its LightGBM booster, None for a
    scikit-learn model), and a note on what it is; None and why when it cannot be made
    (no tree to drop, no weight to quantize)."""
    from setpoint.models.flavors.compiled import CompiledPredictor
    from setpoint.models.flavors.onnx import OnnxPipelinePredictor, OnnxPredictor

    base: Any = original
    if booster is None:  # scikit-learn: the pipeline in ONNX, then its weights in int8
        exported = OnnxPipelinePredictor.from_sklearn(base, base.model)
        if name == "onnx":
            return exported, "ONNX Runtime, the whole pipeline, float32, 1 thread"
        return exported.quantized()
    if name == "compiled":
        compiled = CompiledPredictor.compile(base, booster)
        return compiled, f"native code (tl2cgen, gcc) for {compiled.built_on['machine']}"
    if name == "onnx":
        return OnnxPredictor.from_lightgbm(base, booster), "ONNX Runtime, float32, 1 thread"
    if name == "pruned":
        return _pruned(base, booster, best_iteration, trees)
    return _distilled(base, booster, train, spec.seed)


def _lightgbm(original: Any, booster: Any) -> Predictor:
    from setpoint.models.flavors.lightgbm import LightGBMPredictor

    return LightGBMPredictor(booster, **LightGBMPredictor.common_fields(original.metadata()))


def _pruned(
    original: Any, booster: Any, best_iteration: Callable[[Any, int], int], trees: int | None
) -> tuple[Predictor | None, str]:
    from setpoint.models.flavors.lightgbm import import_lightgbm

    lgb = import_lightgbm()
    total = int(booster.current_iteration())
    if trees is not None:
        keep = min(trees, total)
        note = f"first {keep} of {total} trees (--trees)"
    else:
        keep = best_iteration(booster, total)
        note = f"first {keep} of {total} trees (the best on the hold-out)"
    if keep >= total:
        return None, (
            f"all {total} trees score best on the hold-out; give a budget with --trees N"
            if trees is None
            else f"the model has only {total} trees"
        )
    pruned = lgb.Booster(model_str=booster.model_to_string(num_iteration=keep))
    return _lightgbm(original, pruned), note


def _distilled(original: Any, booster: Any, train: pa.Table, seed: int) -> tuple[Predictor, str]:
    """A smaller LightGBM fitted to the original's outputs on its training rows: its
    probabilities (cross-entropy on soft labels) for a binary classifier, its labels
    for a multiclass one (LightGBM takes no soft multiclass labels), its values for a
    regressor."""
    from setpoint.models.flavors.lightgbm import import_lightgbm

    lgb = import_lightgbm()
    matrix = original.encoder(train)
    teacher = np.asarray(booster.predict(matrix), dtype=np.float64)
    total = int(booster.current_iteration())
    rounds = max(10, total // 4)
    params: dict[str, Any] = {
        "num_leaves": 15,
        "learning_rate": 0.1,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
        "verbose": -1,
    }
    if original.task == "regression":
        params["objective"], label = "regression", teacher
    elif teacher.ndim == 1:
        params["objective"], label = "cross_entropy", teacher
    else:
        params |= {"objective": "multiclass", "num_class": teacher.shape[1]}
        label = np.argmax(teacher, axis=1)
    text = [i for i, name in enumerate(original.features) if original.kinds[name] in TEXT_KINDS]
    data = lgb.Dataset(matrix, label=label, categorical_feature=text or "auto", free_raw_data=True)
    student = lgb.train(params, data, num_boost_round=rounds)
    student = lgb.Booster(model_str=student.model_to_string())
    return _lightgbm(original, student), f"{rounds} trees of <= 15 leaves, from {total}"
