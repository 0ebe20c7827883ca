"""Public home of the error tree (defined in :mod:`canaryflow.domain.errors` so the domain stays pure)."""

from canaryflow.domain.errors import (
    ERROR_TYPES,
    RETRYABLE_ERROR_TYPES,
    AllProvidersFailed,
    CanaryflowError,
    Conflict,
    MetricsUnavailable,
    NotFound,
    NotOwner,
    PayloadTooLarge,
    ProviderError,
    RegistryUnavailable,
    RenderError,
    Unauthorized,
    ValidationFailed,
)

__all__ = [
    "ERROR_TYPES",
    "RETRYABLE_ERROR_TYPES",
    "AllProvidersFailed",
    "CanaryflowError",
    "Conflict",
    "MetricsUnavailable",
    "NotFound",
    "NotOwner",
    "PayloadTooLarge",
    "ProviderError",
    "RegistryUnavailable",
    "RenderError",
    "Unauthorized",
    "ValidationFailed",
]
