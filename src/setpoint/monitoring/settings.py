"""A monitor's settings: the file ``setpoint monitor create --config`` reads.

One declarative model per part (``_documents.Document``), so the reader, the JSON
Schema (``setpoint schema monitor``) and ``docs/reference/monitor.md`` agree::

    window: 1d
    drift: {alpha: 0.05, numeric_effect: 0.1, effects: {income: 0.2}}
    attribution: {share_change: 0.1, rows: 200}
    performance_drop: 0.05
    webhooks:
      - {url: "http://alerts.internal/hook", format: slack}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from setpoint._documents import Document, Duration, Flag, Number, Text, Whole
from setpoint._durations import parse_duration
from setpoint.errors import ConfigError, SetpointError

__all__ = ["AttributionSettings", "DriftSettings", "MonitorConfig", "WebhookConfig"]

_SHORTEST_WINDOW = timedelta(minutes=1)


class DriftSettings(Document):
    """When a feature counts as drifted."""

    what: ClassVar[str] = "the drift settings"

    alpha: Number = Field(0.05, gt=0, lt=1)
    """The significance level of each feature's test, after the false discovery rate
    correction across features."""
    numeric_effect: Number = Field(0.1, ge=0)
    """A numeric feature drifts when its Wasserstein distance, in reference standard
    deviations, is at least this (and its test is significant)."""
    categorical_effect: Number = Field(0.1, ge=0)
    """A categorical feature drifts when its Jensen-Shannon distance is at least this."""
    null_effect: Number = Field(0.05, ge=0)
    """A change in the share of missing values this large (absolute) is drift."""
    dataset_share: Number = Field(0.5, gt=0, le=1)
    """The window drifts when at least this share of its features drift."""
    min_rows: Whole = Field(100, ge=1)
    """Windows with fewer rows are not judged."""
    effects: Mapping[str, Number] = Field(default_factory=dict)
    """Per feature, an effect threshold that replaces the default (learned thresholds
    come in this way)."""

    def threshold(self, name: str, kind: str) -> float:
        if name in self.effects:
            return self.effects[name]
        return self.numeric_effect if kind == "numeric" else self.categorical_effect

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftSettings:
        return cls.read(data)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class AttributionSettings(Document):
    """When the model's explanation counts as moved (``monitoring/attribution.py``)."""

    what: ClassVar[str] = "the attribution settings"

    share_change: Number = Field(0.1, gt=0, le=1)
    """A feature drifts in attribution when its share of the explanation (its mean
    |contribution| over the sum of all features') moves by at least this."""
    rows: Whole = Field(200, ge=0)
    """Rows of each window (and of the reference) explained, for models explained by
    their library's TreeSHAP (LightGBM, XGBoost); 0 turns attribution drift off."""
    permutation_rows: Whole = Field(0, ge=0)
    """Rows explained for the other models, which shap's permutation explainer (the
    ``explain`` extra) explains at hundreds of model calls a row: 0, the default,
    leaves them out (20 rows cost 1.6 s a window for a scikit-learn pipeline of 11
    features on a busy 2-core machine)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttributionSettings:
        return cls.read(data)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class WebhookConfig(Document):
    """Where to send notifications: ``json`` posts the alert, ``slack`` a ``{"text"}``
    line that Slack, Mattermost and most chat incoming webhooks accept."""

    what: ClassVar[str] = "the webhook"
    error: ClassVar[type[SetpointError]] = ConfigError

    url: Text
    """An http:// or https:// URL."""
    format: Literal["json", "slack"] = "json"
    """``json``: the alert as a document; ``slack``: a one-line ``{"text": ...}``."""
    timeout: Number = Field(5.0, gt=0, le=60)
    """Seconds to wait for the receiver."""

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        # urllib would also open file:// and ftp:// URLs; a webhook is HTTP only.
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r}: give an http:// or https:// URL")
        return url


class MonitorConfig(Document):
    """How a monitor cuts an endpoint's traffic into windows and judges each."""

    what: ClassVar[str] = "the monitor settings"

    window: Duration = "1d"
    """The length of each window, aligned to the epoch (each UTC hour, each day...)."""
    drift: DriftSettings = Field(default_factory=DriftSettings)
    """When a feature, and a window, counts as drifted."""
    multivariate: Flag = True
    """Also judge the features together with a domain classifier."""
    attribution: AttributionSettings = Field(default_factory=AttributionSettings)
    """When the model's explanation of its answers counts as moved (attribution
    drift: a feature's share of the mean |contribution|)."""
    learn_thresholds: Flag = True
    """Raise effect thresholds to the reference's own noise at each window's size."""
    performance_drop: Number = Field(0.05, ge=0)
    """Alert when the watched metric is this much (a fraction) worse than the
    reference's."""
    min_labels: Whole = Field(100, ge=1)
    """Realized performance is judged from this many labels on."""
    cooldown_hours: Number = Field(24.0, ge=0)
    """Hours before an alert that resolved may notify again."""
    webhooks: tuple[WebhookConfig, ...] = ()
    """Where alerts are sent."""
    late_label_windows: Whole = Field(4, ge=0)
    """Labels come late: each run brings this many latest windows' realized performance
    up to date with the labels that came since (0: never)."""
    max_refused_share: Number = Field(0.01, ge=0, le=1)
    """Alert when the server refused at least this share of a window's rows for their
    values (``quality:refused``)."""
    max_out_of_contract_share: Number = Field(0.05, ge=0, le=1)
    """Alert when at least this share of a window's answered rows lie outside the
    contract's ranges or categories (``quality:out_of_contract``)."""
    time_column: Text | None = None
    """What orders the reference's rows (default: the training spec's time split
    column); thresholds are then also learned from its own windows of time."""

    @field_validator("window")
    @classmethod
    def _whole_seconds(cls, window: str) -> str:
        span = parse_duration(window, what="window")
        if span < _SHORTEST_WINDOW:
            raise ValueError(f"{window!r} is too short; at least 1m")
        if span % timedelta(seconds=1):
            raise ValueError(f"{window!r}: give a whole number of seconds, e.g. 90s")
        return window

    @property
    def window_seconds(self) -> int:
        """The window in seconds; windows are aligned to the epoch in whole seconds."""
        return int(parse_duration(self.window, what="window").total_seconds())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorConfig:
        return cls.read(data)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
