"""The Temporal adapter: connecting with the pydantic data converter, the shared names, search attributes,
and the local dev server."""

from canaryflow.temporal.client import connect, ensure_search_attributes
from canaryflow.temporal.devserver import DevServer, dev_server_args, start_dev_server, temporal_binary
from canaryflow.temporal.names import SEARCH_ATTRIBUTES, TASK_QUEUE, WORKFLOW_TYPE, workflow_id

__all__ = [
    "SEARCH_ATTRIBUTES",
    "TASK_QUEUE",
    "WORKFLOW_TYPE",
    "DevServer",
    "connect",
    "dev_server_args",
    "ensure_search_attributes",
    "start_dev_server",
    "temporal_binary",
    "workflow_id",
]
