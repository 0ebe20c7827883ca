"""The one error tree of canaryflow.

Every error the project raises on purpose derives from :class:`CanaryflowError`; foreign errors
(SQLAlchemy, httpx, openai, anthropic, temporalio, prometheus) are translated at the boundary with
``raise Mapped(...) from exc``::

    CanaryflowError
    ├── ValidationFailed          bad input: a file, a plan, a payload (names the field and the fix)
    │   └── PayloadTooLarge       a request body over the gateway's size limit
    ├── NotFound                  an unknown config, version, segment or rollout
    ├── Conflict                  a second rollout for the same config, a stale revision
    │   └── NotOwner              the config's exposure is owned by another rollout (compare-and-set)
    ├── RegistryUnavailable       the registry database cannot be reached
    ├── RenderError               a template placeholder that no variable fills
    ├── ProviderError             a provider call failed; ``error_type`` is one of ERROR_TYPES
    │   └── AllProvidersFailed    the primary and every fallback failed
    ├── MetricsUnavailable        Prometheus could not answer a query
    └── Unauthorized              a missing or wrong API key, an approver not in the plan
"""

from __future__ import annotations

from typing import Any

ERROR_TYPES = (
    "rate_limit",
    "timeout",
    "connection",
    "server_error",
    "bad_request",
    "auth",
    "content_filter",
    "other",
)
RETRYABLE_ERROR_TYPES = frozenset({"rate_limit", "timeout", "connection", "server_error"})


class CanaryflowError(Exception):
    """Root of every error canaryflow raises on purpose."""


class ValidationFailed(CanaryflowError):
    """Input that does not validate. The message names the source, the field path and the fix."""

    def __init__(self, message: str, *, source: str | None = None, problems: list[str] | None = None):
        self.source = source
        self.problems = problems or [message]
        super().__init__(f"{source}: {message}" if source else message)


class PayloadTooLarge(ValidationFailed):
    """A request body over the gateway's size limit (refused before it is parsed)."""


class NotFound(CanaryflowError):
    """An unknown config, version, segment or rollout."""


class Conflict(CanaryflowError):
    """The action collides with the current state (e.g. a rollout already running)."""


class NotOwner(Conflict):
    """The config is owned by another rollout (or by none): an exposure change's compare-and-set failed."""


class RegistryUnavailable(CanaryflowError):
    """The registry database cannot be reached."""


class RenderError(CanaryflowError):
    """A prompt placeholder that no variable fills."""


class ProviderError(CanaryflowError):
    """A provider call failed, classified into the error taxonomy of DESIGN.md."""

    def __init__(self, message: str, *, error_type: str = "other", status_code: int | None = None,
                 provider: str | None = None, model: str | None = None,
                 retry_after: float | None = None, param: str | None = None):
        if error_type not in ERROR_TYPES:
            error_type = "other"
        self.error_type = error_type
        self.param = param  # the request field the provider named in its error, if it named one
        self.status_code = status_code
        self.provider = provider
        self.model = model
        self.retry_after = retry_after
        self.request_id: str | None = None  # the request it ended (set by the traffic plane)
        super().__init__(message)

    @property
    def retryable(self) -> bool:
        """Whether a fallback or a retry may help (never for a bad request)."""
        return self.error_type in RETRYABLE_ERROR_TYPES


class AllProvidersFailed(ProviderError):
    """The primary provider and every fallback failed.

    ``error_type`` is the last target's; ``primary_error_type`` the primary's own (its error type or
    ``circuit_open``), which is what the metrics count against the variation.
    """

    def __init__(self, message: str, *, primary_error_type: str | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.primary_error_type = primary_error_type


class MetricsUnavailable(CanaryflowError):
    """Prometheus could not answer a query (down, slow, or a bad query)."""


class Unauthorized(CanaryflowError):
    """A missing or wrong API key, or an identity not allowed to act."""


__all__ = [
    "ERROR_TYPES",
    "RETRYABLE_ERROR_TYPES",
    "AllProvidersFailed",
    "CanaryflowError",
    "Conflict",
    "MetricsUnavailable",
    "NotFound",
    "NotOwner",
    "ProviderError",
    "RegistryUnavailable",
    "RenderError",
    "Unauthorized",
    "ValidationFailed",
]
