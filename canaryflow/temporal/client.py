"""Connecting to Temporal with the pydantic data converter, and registering the search attributes."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from canaryflow import tracing
from canaryflow.errors import CanaryflowError
from canaryflow.settings import Settings, get_settings
from canaryflow.temporal.names import SEARCH_ATTRIBUTES
from canaryflow.temporal_codec import data_converter


async def connect(settings: Settings | None = None) -> Client:
    """A client for ``settings`` (address, namespace, TLS) that speaks pydantic models as JSON.

    Raises:
        CanaryflowError: Temporal cannot be reached (the message says where and how to start it).
    """
    settings = settings or get_settings()
    tracing.configure()  # OTEL_* variables: workflows, activities and client calls traced (else nothing)
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(),  # encrypted when CANARYFLOW_PAYLOAD_KEY is set
            tls=settings.temporal_tls,
            interceptors=tracing.temporal_interceptors(),
        )
    except RuntimeError as exc:
        raise CanaryflowError(
            f"cannot reach Temporal at {settings.temporal_address} "
            f"(namespace {settings.temporal_namespace}): start the local stack with 'canaryflow dev' "
            "or set CANARYFLOW_TEMPORAL_ADDRESS"
        ) from exc


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register the search attributes of DESIGN.md that the namespace lacks; returns the names added."""
    try:
        listing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = set(listing.custom_attributes)
    except RPCError as exc:  # the time-skipping test server cannot list, only add
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {k.name: k for k in SEARCH_ATTRIBUTES if k.name not in known}
    if not missing:
        return []
    types = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    }
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={name: types[k._metadata_type] for name, k in missing.items()},
            )
        )
    except RPCError as exc:  # another worker registered them first
        if "already" not in str(exc).lower():
            raise
    return sorted(missing)


__all__ = ["connect", "ensure_search_attributes"]
