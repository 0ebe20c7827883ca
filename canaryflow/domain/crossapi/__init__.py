"""OpenAI Chat Completions ⇄ Anthropic Messages, field by field. Pure; used only when the caller's API and
the provider's differ (the same API is a pass-through, :mod:`canaryflow.domain.passthrough`).

Requests (what maps to what; anything else is refused with :class:`Untranslatable` naming the field,
unless the config lists it in ``drop``):

===========================================  ===========================================================
OpenAI chat                                  Anthropic messages
===========================================  ===========================================================
system / developer messages                  ``system`` (text blocks keep ``cache_control``)
user text / ``image_url`` parts              text / ``image`` blocks (data URL → base64 source, else url)
user ``file`` parts (PDF ``file_data``)      ``document`` blocks with a base64 PDF source (title ⇄ filename)
assistant ``tool_calls``                     ``tool_use`` blocks (arguments parsed as JSON)
assistant ``refusal`` / ``thinking_blocks``  text / the signed thinking blocks (before the rest)
other message fields (``name``, …)           refused unless empty
``tool`` messages                            ``tool_result`` blocks in one user turn
``tools`` (function, ``strict``)             ``tools`` (``input_schema``, ``strict``; ``input_examples``,
                                             ``defer_loading``, ``allowed_callers`` refused)
``tool_choice`` auto/none/required/named     ``{"type": auto/none/any/tool}``
``parallel_tool_calls: false``               ``tool_choice.disable_parallel_tool_use``
``response_format`` json_schema/json_object  ``output_format`` / ``output_config.format`` json_schema
``reasoning_effort`` low/medium/high         ``output_config.effort`` (from Anthropic; else as below)
``reasoning_effort`` low/medium/high         ``thinking`` budget 1024/2048/4096 (LiteLLM's mapping);
                                             refused if the token limit leaves no room past it
``max_tokens``/``max_completion_tokens``     ``max_tokens``
``stop``, ``temperature``, ``top_p``         ``stop_sequences``, ``temperature``, ``top_p``
``safety_identifier`` (else ``user``)        ``metadata.user_id``
``service_tier`` auto / default              ``service_tier`` auto / standard_only (others refused)
``stream`` / ``stream_options``              ``stream`` (usage is always reported)
``cache_control`` on content parts           ``cache_control`` on blocks
===========================================  ===========================================================

Assistant ``thinking``/``redacted_thinking`` blocks in the history are left out: Chat Completions takes no
reasoning back (and Claude itself reads earlier turns' thinking only within the current tool loop), so what
the stream helper's message holds can be sent back as the next assistant turn.

Refused from Anthropic (no Chat counterpart): ``thinking`` other than ``enabled`` (with a budget) or
``disabled`` (``adaptive``, ``between_tools``), a ``tool_result`` with ``is_error: true`` (a tool message
cannot say the tool failed) and a non-empty last assistant message (a prefill Claude would continue; Chat
Completions answers after it). An empty last assistant message asks for nothing and is not sent.

Answers and stream events map back: text, tool calls, thinking (as ``reasoning_content``, and the signed
blocks as ``thinking_blocks`` — in a stream one indexed delta per finished block — which go back to
Anthropic when the message is appended to the history), the stop sequence matched where the server says
which (vLLM's ``stop_reason``; OpenAI does not, so ``end_turn``), refusals (as
text with ``stop_reason: refusal``, plain and streamed), stop reasons (``stop ⇄ end_turn``,
``length ⇄ max_tokens``, ``content_filter ⇄ refusal``, ``tool_calls ⇄ tool_use``) and usage (cached input
tokens included).

The package: :mod:`.common` (stop-reason maps, the refusal rule), :mod:`.to_anthropic` and
:mod:`.to_openai` (requests), :mod:`.answers`, :mod:`.streams`.
"""

from __future__ import annotations

from canaryflow.domain.crossapi.answers import anthropic_answer_to_openai, openai_answer_to_anthropic
from canaryflow.domain.crossapi.common import (
    THINKING_BUDGET,
    TO_ANTHROPIC_STOP,
    TO_OPENAI_FINISH,
    Untranslatable,
)
from canaryflow.domain.crossapi.streams import AnthropicEventsToOpenAI, OpenAIChunksToAnthropic
from canaryflow.domain.crossapi.to_anthropic import (
    check_anthropic_body,
    check_thinking_room,
    openai_to_anthropic,
)
from canaryflow.domain.crossapi.to_openai import anthropic_to_openai

__all__ = [
    "THINKING_BUDGET",
    "TO_ANTHROPIC_STOP",
    "TO_OPENAI_FINISH",
    "AnthropicEventsToOpenAI",
    "OpenAIChunksToAnthropic",
    "Untranslatable",
    "anthropic_answer_to_openai",
    "anthropic_to_openai",
    "check_anthropic_body",
    "check_thinking_room",
    "openai_answer_to_anthropic",
    "openai_to_anthropic",
]
