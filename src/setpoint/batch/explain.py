"""Explaining CSV and Parquet files with a model version: ``setpoint models explain``.

The files go through what ``setpoint predict`` does (``score.py``: read in batches,
checked against the version's contract, refused rows quarantined with their reasons,
the others scored in order), and each batch of accepted rows gets, besides the model's
outputs, its explanation (``models/explain.py``, against the version's background
sample for flavors without TreeSHAP, ``models/background.py``): ``explanation_space``
(what the numbers are in: log-odds, ...), ``base_value`` and ``raw_output``, and
``contribution_FEATURE`` per feature, so that base_value + the contributions =
raw_output. With ``top`` K, a row's contributions outside its K largest (by size) are
null. A model of several outputs (a multiclass classifier) gets those columns per
output, suffixed ``_CLASS``. It is not a scoring run: nothing is recorded but the
quarantine, and nothing is logged to an endpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from setpoint.batch import score
from setpoint.batch.runs import RunCounts
from setpoint.errors import UsageError
from setpoint.models.background import Explainer
from setpoint.models.explain import Explanation
from setpoint.models.predictor import Predictor

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

SPACE, BASE, RAW, CONTRIBUTION = "explanation_space", "base_value", "raw_output", "contribution_"


def explain_files(
    ws: Workspace,
    model: str,
    given: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    top: int | None = None,
    workers: int | None = None,
    progress: score.Progress | None = None,
) -> score.ScoringRun:
    """Write ``given``'s accepted rows with ``model``'s outputs and explanations (every
    feature's contribution, or each row's ``top``) to ``output``."""
    if top is not None and top < 1:
        raise UsageError("--top must be 1 or more features (leave it out for all)")
    started = time.perf_counter()
    job = score.prepare(ws, model, given, output, endpoint=False)
    explainer = ws.registry.explainer(ws.model(job.ref), job.predictor)
    explainer.check()
    clash = [
        n for n in job.contract.columns if n in (SPACE, BASE, RAW) or n.startswith(CONTRIBUTION)
    ]
    if clash:
        raise UsageError(
            f"{job.ref}'s contract has column(s) {', '.join(clash)}, names the explanation "
            "is written under; rename them in the data and the contract"
        )
    scoring = replace(job.scoring, score=partial(explain_table, explainer, top))
    n = max(1, workers or os.cpu_count() or 1)
    run = score.ScoringRun(job.ref, [f.uri for f in job.files], job.output.uri, workers=n)
    counts = RunCounts()
    score._score_files(ws, run, counts, job.files, job.output, scoring, None, None, progress)
    run.seconds = time.perf_counter() - started
    return run


def explain_table(
    explainer: Explainer,
    top: int | None,
    predictor: Predictor,
    rows: pa.Table,
    *,
    passthrough: Sequence[str] = (),
) -> pa.Table:
    """``rows`` scored (``score_table``), then their explanations as columns."""
    scored = score.score_table(predictor, rows, passthrough=passthrough)
    features = rows.drop_columns(list(passthrough)) if passthrough else rows
    # No rows (a batch the contract refused whole): the same columns, empty.
    explained = explainer.explain(features) if rows.num_rows else explainer.layout()
    return _with_columns(scored, explained, top)


def _with_columns(table: pa.Table, explained: Explanation, top: int | None) -> pa.Table:
    features = explained.features
    table = table.append_column(SPACE, pa.array([explained.space] * table.num_rows, pa.string()))
    several = len(explained.outputs) > 1
    for j, output in enumerate(explained.outputs):
        suffix = f"_{output}" if several else ""
        base, raw = explained.base[:, j], explained.raw[:, j]
        values = explained.contributions[:, j, :]
        table = table.append_column(BASE + suffix, pa.array(base, pa.float64()))
        table = table.append_column(RAW + suffix, pa.array(raw, pa.float64()))
        shown = np.ones(values.shape, dtype=bool)
        if top is not None and top < len(features) and len(values):
            order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :top]
            shown = np.zeros(values.shape, dtype=bool)
            np.put_along_axis(shown, order, True, axis=1)
        for i, name in enumerate(features):
            column = pa.array(values[:, i], pa.float64(), mask=~shown[:, i])
            table = table.append_column(f"{CONTRIBUTION}{name}{suffix}", column)
    return table


__all__ = ["explain_files", "explain_table"]
