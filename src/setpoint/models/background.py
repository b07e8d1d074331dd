"""The background sample a version is explained against, and explaining a version.

A model without TreeSHAP (scikit-learn, pyfunc) is explained against background rows
of its training data (``models/explain.py``): the base value is the mean output on them
and a feature's contribution is measured by swapping its value for theirs. So each
version trained by setpoint keeps :data:`ROWS` background rows of its features as an
artifact of its own (role :data:`ROLE`, Parquet), found again when it is explained in
serving or from the CLI. The tree flavors need none and get none.

Privacy: no training row is kept whole. Each column's values are drawn on their own,
with replacement, from the training rows, so a background row is not any person's
row, and erasing a person (``erasure.py``) leaves no record of them here to find; a
personal-data column (``pii`` in the contract) keeps no values at all. This
changes nothing the explainer computes: shap's Independent masker already treats the
features as independent, replacing each one's value by a background row's value
without regard to the others, so only each column's own distribution matters.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from setpoint.data import io
from setpoint.errors import NotExplainableError
from setpoint.models.explain import Explanation
from setpoint.models.predictor import Predictor

ROLE = "background"
# The base value is the mean output over these rows: 100 give it to about a tenth of
# the output's spread, and each explained row costs a model call on every one of them
# per evaluation, so more rows make every explanation slower.
ROWS = 100


def sample(
    table: pa.Table, features: Sequence[str], *, seed: int = 0, personal: Collection[str] = ()
) -> pa.Table:
    """``ROWS`` rows of ``features`` whose values are drawn independently per column, with
    replacement, from ``table``'s rows (none of them a training row whole). A
    ``personal`` column (the contract's ``pii``) keeps no value: it is all missing, so
    its contribution is measured against a missing value, and no one's account number
    or e-mail outlives their erasure here."""
    rng = np.random.default_rng(seed)
    n = min(ROWS, table.num_rows)
    columns = {}
    for name in features:
        column = table.column(name)
        if name in personal:
            columns[name] = pa.nulls(n, column.type)
        else:
            columns[name] = column.take(pa.array(rng.integers(0, table.num_rows, size=n)))
    return pa.table(columns)


def needs_background(predictor: Predictor) -> bool:
    """Whether ``predictor`` is explained against a background sample (not by TreeSHAP)."""
    from setpoint.models.flavors._trees import TreePredictor

    return not isinstance(predictor, TreePredictor)


def to_bytes(table: pa.Table) -> bytes:
    return io.to_parquet(table)


def from_bytes(data: bytes) -> pa.Table:
    return io.from_parquet(data)


# Permutations per explained row for the flavors without TreeSHAP. The contributions
# add up to the output exactly with any number; more only sharpen how the sum is split
# between interacting features (a linear model's split is exact with one). Measured on
# an 11-feature scikit-learn pipeline against 100 background rows (a shared 2-core
# machine): about 0.25 s a row with 2, 0.6 s with 10, 1.2 s with shap's default budget.
PERMUTATIONS = 2


class Explainer:
    """Explains rows for one loaded version: by TreeSHAP for the tree flavors, else
    against the version's ``background`` sample with ``permutations`` per row (None:
    shap's default budget). Says why when the version cannot be explained."""

    def __init__(
        self,
        predictor: Predictor,
        background: pa.Table | None,
        *,
        ref: str,
        permutations: int | None = PERMUTATIONS,
    ) -> None:
        self.predictor = predictor
        self.background = background
        self.ref = ref
        self.permutations = permutations

    def check(self) -> None:
        """Raise :class:`NotExplainableError` now if :meth:`explain` would: called before a
        request that asks for explanations joins a batch, so it fails alone."""
        predictor, ref = self.predictor, self.ref
        if not callable(getattr(predictor, "explain", None)):
            raise NotExplainableError(
                f"{ref} is a {predictor.flavor} model, which setpoint cannot explain; "
                "serve a lightgbm, xgboost, sklearn or pyfunc model to explain it"
            )
        if not needs_background(predictor):
            return
        # A wrapped object (pyfunc, sklearn) may give labels only; the optimised
        # flavors (models/flavors/_encoded.py) always have probabilities.
        model = getattr(predictor, "model", None)
        if (
            model is not None
            and predictor.task == "classification"
            and not any(
                callable(getattr(model, method, None))
                for method in ("decision_function", "predict_proba")
            )
        ):
            raise NotExplainableError(
                f"{ref} is a classifier that gives only labels (no decision_function or "
                "predict_proba), so there is no score to split into contributions"
            )
        if self.background is None:
            raise NotExplainableError(
                f"{ref} has no background sample to explain it against: it was registered "
                "before versions kept one, or fitted elsewhere; retrain it (setpoint train) "
                "and serve the new version"
            )
        if importlib.util.find_spec("shap") is None:
            raise NotExplainableError(
                f"{ref} is a {predictor.flavor} model, explained by shap, which is not "
                "installed here; install it with: pip install 'setpoint[explain]'",
                details={"package": "shap", "extra": "explain"},
            )

    def layout(self) -> Explanation:
        """An explanation of no rows, with the features, outputs and space every
        explanation of this version has (made by explaining one row: the models
        refuse none)."""
        one: Any = (
            self.background.slice(0, 1)
            if self.background is not None
            else {name: [None] for name in self.predictor.features}  # trees take missing
        )
        found = self.explain(one)
        return Explanation(
            found.features,
            found.outputs,
            found.space,
            found.base[:0],
            found.contributions[:0],
            found.raw[:0],
        )

    def explain(self, rows: Any) -> Explanation:
        """Each row's contributions (``models/explain.py``)."""
        self.check()
        explain: Any = self.predictor.explain  # type: ignore[attr-defined]
        if not needs_background(self.predictor):
            return explain(rows)  # type: ignore[no-any-return]
        return explain(rows, self.background, permutations=self.permutations)  # type: ignore[no-any-return]


__all__ = [
    "PERMUTATIONS",
    "ROLE",
    "ROWS",
    "Explainer",
    "from_bytes",
    "needs_background",
    "sample",
    "to_bytes",
]
