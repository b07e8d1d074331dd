"""What ``setpoint predict`` scores with: a model version, or an endpoint's.

``MODEL_OR_ENDPOINT`` is read as a model when it names a version (``NAME@VERSION``,
``NAME@ALIAS``, ``models:/...``); a bare name is the model or the endpoint it names.
Scoring through an endpoint uses the version it serves (its deployment's model, the
champion for ``NAME@champion``) and logs the scored rows to the endpoint's prediction
log, so the endpoint is monitored over batch traffic as over online traffic. A bare
name that is both a model and an endpoint is refused: which was meant is not ours to
guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from setpoint.errors import NotFoundError, UsageError
from setpoint.models.registry import ModelVersion

if TYPE_CHECKING:
    from setpoint.workspace import Workspace


@dataclass(frozen=True)
class Target:
    """The model version that scores, and the endpoint whose traffic it is (if any)."""

    version: ModelVersion
    endpoint: str | None = None


def _is_version_ref(name: str) -> bool:
    return "@" in name or name.startswith("models:/")


def resolve(ws: Workspace, name: str, *, endpoint: bool | None = None) -> Target:
    """The target ``name`` names; ``endpoint`` True or False says which kind it is,
    None finds out (refusing a name that is both)."""
    if endpoint is True:
        if _is_version_ref(name):
            raise UsageError(
                f"--endpoint: {name!r} names a model version, not an endpoint; give the "
                "endpoint's name, or leave --endpoint out to score with that version"
            )
        return _through(ws, name)
    if endpoint is False or _is_version_ref(name):
        return Target(ws.model(name))
    try:
        version = ws.model(name)
    except NotFoundError as missing_model:
        try:
            return _through(ws, name)
        except NotFoundError:
            raise NotFoundError(
                f"{name!r} is neither a model nor an endpoint; {missing_model.message}"
            ) from None
    try:
        ws.deployments.get(name)
    except NotFoundError:
        return Target(version)
    raise UsageError(
        f"{name!r} is both a model and an endpoint; say which: models:/{name}@VERSION (or "
        f"{name}@champion) for the model, or --endpoint to score through the endpoint and "
        "log to it"
    )


def _through(ws: Workspace, endpoint: str) -> Target:
    deployment = ws.deployments.get(endpoint)
    return Target(ws.model(deployment.config.model), endpoint)
