"""The one error hierarchy.

Every error a user can cause or meet is a :class:`SetpointError`. It carries a
message meant for a person (what went wrong and how to fix it), a stable
machine-readable ``code``, the HTTP status an API edge answers with, and the exit
code the CLI ends with. Errors are translated only at the edges: one handler in the
CLI entry point and one in the HTTP app; everywhere else they are raised and left
alone.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SetpointError(Exception):
    """Base class of every error setpoint raises on purpose."""

    code: ClassVar[str] = "setpoint_error"
    http_status: ClassVar[int] = 400
    exit_code: ClassVar[int] = 1
    # Seconds after which retrying may succeed (sent as Retry-After), when known.
    retry_after: int | None = None
    # Several problems at once (a file with three mistakes): a headline and one line
    # per problem, which a terminal shows as a list rather than one long sentence.
    listing: tuple[str, tuple[str, ...]] | None = None

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The one JSON error shape: ``{"error": {"code", "message", "details"}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ConfigError(SetpointError):
    """A setting is missing, malformed or contradicts another."""

    code = "config_error"
    http_status = 500
    exit_code = 2


class UsageError(SetpointError):
    """The caller asked for something that cannot be done as asked."""

    code = "usage_error"
    exit_code = 2


class MalformedRequestError(SetpointError):
    """An HTTP request body that cannot be read: not JSON, or not the expected shape."""

    code = "malformed_request"


class PayloadTooLargeError(SetpointError):
    """An HTTP request body over the size limit."""

    code = "payload_too_large"
    http_status = 413


class RequestTimeoutError(SetpointError):
    """An HTTP request body that did not arrive within the body timeout."""

    code = "request_timeout"
    http_status = 408


class NotReadyError(SetpointError):
    """The server cannot answer for this yet (a model is loading, or failed to load)."""

    code = "not_ready"
    http_status = 503
    exit_code = 8


class UnauthorizedError(SetpointError):
    """No API key, or one the server does not know (or that was revoked)."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(SetpointError):
    """A valid API key whose scope or endpoint does not cover the request."""

    code = "forbidden"
    http_status = 403


class RetryLaterError(SetpointError):
    """A request refused for now; retrying after ``retry_after`` seconds may succeed."""

    code = "retry_later"
    http_status = 503
    exit_code = 8

    def __init__(self, message: str, *, retry_after: int = 1, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class RateLimitedError(RetryLaterError):
    """A key sent more requests than its rate limit allows."""

    code = "rate_limited"
    http_status = 429


class OverloadedError(RetryLaterError):
    """The server is at capacity and sheds this request."""

    code = "overloaded"
    http_status = 503
    exit_code = 8


class ModelUnavailableError(RetryLaterError):
    """The model cannot answer now (its circuit is open, or it failed) and the endpoint
    has no fallback."""

    code = "model_unavailable"
    http_status = 503
    exit_code = 8


class ServerUnavailableError(SetpointError):
    """A setpoint server this command talks to (``setpoint loadtest``) does not answer."""

    code = "server_unavailable"
    http_status = 503
    exit_code = 8


class NotFoundError(SetpointError):
    """A named thing (workspace, dataset, model, version, alias) does not exist."""

    code = "not_found"
    http_status = 404
    exit_code = 3


class GoneError(NotFoundError):
    """The thing existed and was erased on purpose (a subject's data, under erasure)."""

    code = "gone"
    http_status = 410


class ConflictError(SetpointError):
    """The request clashes with the current state (e.g. a name already taken)."""

    code = "conflict"
    http_status = 409
    exit_code = 4


class InvalidDataError(SetpointError):
    """Data could not be read or does not have the shape a step needs."""

    code = "invalid_data"
    http_status = 422
    exit_code = 5


class ContractViolationError(InvalidDataError):
    """A batch broke its contract; ``details`` lists every violation."""

    code = "contract_violation"


class InvalidSpecError(SetpointError):
    """A training spec or contract file is not valid."""

    code = "invalid_spec"
    http_status = 422
    exit_code = 2


class ModelInputError(InvalidDataError):
    """A model was asked to predict on input it cannot take."""

    code = "invalid_model_input"


class TrainingError(SetpointError):
    """Fitting or evaluating a model failed."""

    code = "training_failed"
    http_status = 500
    exit_code = 6


class ArtifactCorruptedError(SetpointError):
    """A stored artifact does not match its content hash: it was changed or damaged."""

    code = "artifact_corrupted"
    http_status = 500
    exit_code = 7


class PlatformMismatchError(SetpointError):
    """A model compiled to native code is loaded on a platform (machine, OS, C library)
    other than the one it was built for."""

    code = "platform_mismatch"
    http_status = 409
    exit_code = 7


class StoreError(SetpointError):
    """The metadata store cannot be reached, or its schema is not one this version reads."""

    code = "store_error"
    http_status = 503
    exit_code = 8


class LogUnavailableError(StoreError):
    """A log cannot be written for now (a full disk, a failing device): what was sent is
    not stored, so it is not acknowledged; retrying after ``retry_after`` seconds may
    succeed."""

    code = "log_unavailable"
    http_status = 503
    exit_code = 8

    def __init__(self, message: str, *, retry_after: int = 1, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class DependencyMissingError(SetpointError):
    """An optional dependency (an extra) is needed but not installed."""

    code = "dependency_missing"
    http_status = 500
    exit_code = 2

    @classmethod
    def for_extra(cls, package: str, extra: str) -> DependencyMissingError:
        return cls(
            f"{package} is not installed; install it with: pip install 'setpoint[{extra}]'",
            details={"package": package, "extra": extra},
        )


class NotExplainableError(SetpointError):
    """A model's predictions cannot be split into contributions (a classifier that gives
    only labels, a constant answer, a flavor whose explainer is not installed, a version
    registered without the background sample its explainer needs)."""

    code = "not_explainable"
    http_status = 409
    exit_code = 2
