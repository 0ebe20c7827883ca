"""Request validation and normalisation for the simulator, the way the real APIs check (and word) it.

Each API's body is checked as its provider does — unknown top-level fields, roles, content-part types,
types and ranges of the sampling parameters, tool definitions (their JSON Schema included), tool-call /
tool-result pairing across turns, structured-output formats — and refused with that API's 400 (message,
``param`` and ``code`` as the real API sends them where known). A valid body becomes a :class:`SimRequest`:
what the engine needs to decide the answer (texts for markers and questions, tools, tool choice, schema).

The known top-level fields follow the official clients' request types (``tests/test_sim_api.py`` checks
that every field the installed ``openai`` / ``anthropic`` packages can send is known here).

The package: :mod:`.common`, :mod:`.chat`, :mod:`.messages`, :mod:`.responses`.
"""

from __future__ import annotations

from canaryflow.sim.requests.chat import parse_chat
from canaryflow.sim.requests.common import (
    CHAT_FIELDS,
    MESSAGES_FIELDS,
    RESPONSES_FIELDS,
    InvalidRequest,
    SimRequest,
    Tool,
)
from canaryflow.sim.requests.messages import parse_count_tokens, parse_messages
from canaryflow.sim.requests.responses import parse_responses

__all__ = ["CHAT_FIELDS", "MESSAGES_FIELDS", "RESPONSES_FIELDS", "InvalidRequest", "SimRequest", "Tool",
           "parse_chat", "parse_count_tokens", "parse_messages", "parse_responses"]
