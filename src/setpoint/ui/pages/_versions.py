"""What the model pages share: a version as a table row, what each metric means, and
where its training data is on the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from setpoint.models.evaluation import METRICS
from setpoint.models.registry import ModelVersion
from setpoint.ui.pages._page import View

# What each metric says, for a reader who is not a data scientist.
MEANING = {
    "roc_auc": "how well it ranks the cases that turn out positive above the others "
    "(0.5 is chance, 1 is perfect)",
    "accuracy": "the share of answers that were right",
    "balanced_accuracy": "accuracy with every class counted equally, however rare",
    "f1": "the balance of precision and recall (1 is perfect)",
    "precision": "of the cases it flagged, the share that were truly positive",
    "recall": "of the truly positive cases, the share it flagged",
    "log_loss": "how far its probabilities were from what happened",
    "brier": "the mean squared error of its probabilities",
    "rmse": "the typical size of an error, large errors weighing more",
    "mae": "the average size of an error",
    "r2": "the share of the variation it explains (1 is perfect)",
    "mape": "the average error as a share of the true value",
}
SPLITS = ("validation", "test", "reference", "train")
SPLIT_WORDS = {
    "validation": "hold-out rows (not used to train)",
    "test": "test rows",
    "reference": "the reference data",
    "train": "the training rows",
}


def no_version(name: str, number: int, versions: Sequence[ModelVersion]) -> str:
    known = ", ".join(str(v.version) for v in versions)
    return f"model {name!r} has no version {number}; its versions are {known}"


def version_row(view: View, v: ModelVersion) -> dict[str, Any]:
    headline = v.headline_metric
    dataset = v.training_dataset or first_dataset(v)
    return {
        "version": v.version,
        "ref": v.ref,
        "href": view.url("models", v.name, version=v.version),
        "anchor": f"version-{v.version}",
        "created": v.created_at,
        "created_by": v.created_by,
        "task": v.task,
        "flavor": v.flavor,
        "aliases": list(v.aliases),
        "headline": None
        if headline is None
        else {
            "split": headline[0],
            "metric": headline[1],
            "value": headline[2],
            "meaning": MEANING.get(headline[1], ""),
            "better": direction(headline[1]),
        },
        "dataset": dataset,
        "dataset_href": dataset_href(view, dataset),
        "notes": v.notes,
        "description": v.description,
        "compare_href": None
        if v.version == 1
        else view.url("models", v.name, "compare", a=v.version - 1, b=v.version),
    }


def first_dataset(v: ModelVersion) -> str | None:
    for entry in v.lineage.get("datasets") or ():
        return str(entry["ref"])
    return None


def dataset_href(view: View, ref: str | None) -> str | None:
    if not ref or "@" not in ref:
        return None
    name, version = ref.split("@", 1)
    return view.url("datasets", name, version)


def direction(metric: str) -> str:
    found = METRICS.get(metric)
    if found is None:
        return ""
    return "higher is better" if found.higher_is_better else "lower is better"


def estimator(v: ModelVersion) -> str:
    spec = v.spec or {}
    return str(
        (spec.get("estimator") or {}).get("class")
        or v.lineage.get("registered_object")
        or "the task's default"
    )
