"""What a server holds while it runs: its endpoints, kept in step with the workspace.

``ServingState`` sits below the app and every protocol module (native in ``app.py``,
``oip``, ``mlflow``, ``openapi``, ``swagger``): they all read it, none of them owns it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from setpoint.cost import Prices
from setpoint.data.contract import Contract
from setpoint.errors import (
    ArtifactCorruptedError,
    DependencyMissingError,
    NotFoundError,
    NotReadyError,
    SetpointError,
    StoreError,
)
from setpoint.serving._requestids import SEED_WINDOW, RecentIds, seed
from setpoint.serving.auth import Guard
from setpoint.serving.deployments import Deployment
from setpoint.serving.lane import utc_clock
from setpoint.serving.meter import Meter
from setpoint.serving.metrics import ServingMetrics
from setpoint.serving.runtime import EndpointRuntime, LoadedModel, Log
from setpoint.workspace import Workspace

logger = logging.getLogger("setpoint.serving")


class ServingState:
    """The endpoints a server answers for, kept in step with the workspace."""

    def __init__(
        self,
        workspace: Workspace,
        log: Log,
        async_log: Log | None = None,
        clock: Callable[[], datetime] | None = None,
        refused_log: Log | None = None,
    ) -> None:
        self.workspace = workspace
        self.log = log
        self.async_log = async_log
        self.refused_log = refused_log
        self.clock = utc_clock(clock)  # stamps what is logged
        self.runtimes: dict[str, EndpointRuntime] = {}
        # endpoint -> why it cannot serve: the full message, with paths, for the server
        # log only; callers and probes get ``reasons`` (what failed, no paths)
        self.failures: dict[str, str] = {}
        self.reasons: dict[str, str] = {}
        # What each prediction costs, stamped on its log record and counted in /metrics.
        self.meter = Meter(Prices.of(workspace.settings))
        self.metrics = ServingMetrics(lambda: self.runtimes, log=log, meter=self.meter)
        self.max_request_bytes = workspace.settings.max_request_bytes
        self.body_timeout = workspace.settings.body_timeout_seconds
        self.guard = Guard(required=workspace.settings.require_keys)
        self.retired: list[EndpointRuntime] = []  # replaced, to be closed on the loop
        self.loads = 0  # models loaded so far
        # endpoint -> the ids its clients chose lately; outlives model changes
        self.request_ids: dict[str, RecentIds] = {}

    def seed_request_ids(self) -> None:
        """Remember the request ids the prediction log holds from the last
        ``SEED_WINDOW``, so an id answered before a restart is still refused."""
        for endpoint, ids in seed(self.workspace.logs, self.clock() - SEED_WINDOW).items():
            known = self.request_ids.setdefault(endpoint, RecentIds())
            for request_id in ids:
                known.add(request_id)

    def runtime(self, endpoint: str) -> EndpointRuntime:
        found = self.runtimes.get(endpoint)
        if found is not None:
            return found
        if endpoint in self.failures:
            raise NotReadyError(
                f"endpoint {endpoint!r} cannot serve: {self.reason(endpoint)}",
                details={"endpoints": [self._not_ready(endpoint)]},
            )
        raise NotFoundError(
            f"no endpoint {endpoint!r}; this server has "
            f"{', '.join(sorted(self.runtimes)) or 'none'}; create one with: "
            f"setpoint deploy {endpoint} --model NAME@champion"
        )

    def names(self) -> list[str]:
        """Every endpoint this server answers for, loaded or not, by name."""
        return sorted(set(self.runtimes) | set(self.failures))

    def only_endpoint(self) -> str | None:
        """The endpoint a route naming none (``/invocations``) serves: the only one."""
        names = self.names()
        return names[0] if len(names) == 1 else None

    def refresh(self) -> None:
        """Load new endpoints, changed models and API keys; runs in a worker thread."""
        self.guard.update(
            self.workspace.keys.list(include_revoked=True),
            required=self.workspace.settings.require_keys,
        )
        for deployment in self.workspace.deployments.current():
            try:
                self._follow(deployment)
                self.failures.pop(deployment.endpoint, None)
                self.reasons.pop(deployment.endpoint, None)
            except SetpointError as error:
                self.failures[deployment.endpoint] = error.message
                self.reasons[deployment.endpoint] = public_reason(error)
                logger.error("endpoint %s: %s", deployment.endpoint, error.message)

    def reason(self, endpoint: str) -> str:
        """Why ``endpoint`` cannot serve, as callers may read it: no paths."""
        return self.reasons.get(endpoint, _CANNOT_LOAD + _SEE_LOG)

    def _not_ready(self, endpoint: str) -> dict[str, Any]:
        return {"endpoint": endpoint, "ready": False, "reason": self.reason(endpoint)}

    def not_ready(self) -> NotReadyError | None:
        """What a readiness probe answers while an endpoint cannot serve (or none is
        loaded yet); None when every endpoint is ready."""
        if not self.failures and self.runtimes:
            return None
        if not self.failures:
            return NotReadyError("no endpoint is loaded yet", details={"endpoints": []})
        return NotReadyError(
            f"{len(self.failures)} endpoint(s) cannot serve: "
            + "; ".join(f"{n}: {self.reason(n)}" for n in sorted(self.failures)),
            details={"endpoints": [self._not_ready(n) for n in sorted(self.failures)]},
        )

    def _follow(self, deployment: Deployment) -> None:
        config = deployment.config
        current = self.runtimes.get(deployment.endpoint)
        refs = {
            "champion": config.model,
            "challenger": config.challenger,
            "fallback": config.fallback.model if config.fallback else None,
        }
        if current is None or current.deployment.revision != deployment.revision:
            loaded = (
                {}
                if current is None
                else {lane.model.version.id: lane.model for lane in current.lanes()}
            )
            models = {
                role: None if ref is None else self._resolve(ref, loaded)
                for role, ref in refs.items()
            }
            champion = models["champion"]
            assert champion is not None
            self.runtimes[deployment.endpoint] = EndpointRuntime(
                deployment,
                champion,
                self.log,
                async_log=self.async_log,
                challenger=models["challenger"],
                fallback=models["fallback"],
                events=self.metrics,
                clock=self.clock,
                refused_log=self.refused_log,
                request_ids=self.request_ids.setdefault(deployment.endpoint, RecentIds()),
                meter=self.meter,
            )
            if current is not None:
                self.retired.append(current)  # closed on the event loop once idle
            return
        lanes = {
            "champion": current.champion,
            "challenger": current.challenger,
            "fallback": current.fallback,
        }
        for role, ref in refs.items():
            lane = lanes[role]
            if ref is None or lane is None:
                continue
            version = self.workspace.registry.get(ref)
            if lane.model.version.id == version.id:
                continue
            model = self._load(version.ref)
            if role == "champion":
                current.swap(model)
            else:
                lane.model = model
            logger.info("endpoint %s: the %s is now %s", deployment.endpoint, role, version.ref)

    def _resolve(self, ref: str, loaded: dict[int, LoadedModel]) -> LoadedModel:
        version = self.workspace.registry.get(ref)
        return loaded.get(version.id) or self._load(version.ref)

    def _load(self, ref: str) -> LoadedModel:
        self.loads += 1
        version = self.workspace.registry.get(ref)
        predictor = self.workspace.registry.load(version)
        if version.contract is None:
            raise NotReadyError(f"{version.ref} has no contract; register it with reference data")
        contract = Contract.from_dict(version.contract)
        policy = self.workspace.pii_policy(contract)
        explainer = self.workspace.registry.explainer(version, predictor)
        return LoadedModel(version, predictor, contract, policy.secret, explainer)


_CANNOT_LOAD = "its model could not be loaded"
_SEE_LOG = " (see the server log)"
_REASONS: dict[type[SetpointError], str] = {
    ArtifactCorruptedError: ": an artifact of the model is missing or damaged",
    NotFoundError: ": the model or version it names does not exist",
    DependencyMissingError: ": a library the model needs is not installed",
    StoreError: ": the metadata store cannot be read",
}


def public_reason(error: SetpointError) -> str:
    """What failed, for a probe or a caller: the kind of failure, never the message,
    which may hold file-system paths and URLs (those go to the server log)."""
    detail = next((text for kind, text in _REASONS.items() if isinstance(error, kind)), "")
    return _CANNOT_LOAD + detail + _SEE_LOG
