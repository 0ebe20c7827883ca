"""Provider simulator: an OpenAI- and Anthropic-compatible server for demos, tests and benchmarks.

``canaryflow sim`` serves ``POST /v1/chat/completions`` and ``POST /v1/responses`` (OpenAI),
``POST /v1/messages`` (Anthropic) and Azure OpenAI's ``/openai/deployments/{name}/chat/completions``,
plain and streaming (SSE; OpenAI ``stream_options.include_usage`` honoured), usage included, so the
official clients work unchanged (``OPENAI_BASE_URL=http://127.0.0.1:8091/v1``,
``ANTHROPIC_BASE_URL=http://127.0.0.1:8091``, any non-empty key; a missing key gets a 401 in the
provider's error shape).

Behaviour comes from per-model profiles (:mod:`.profiles`): lognormal latency (median, p95), error mix
(429 with ``retry-after``, 500, hangs that end in a 504), answer length and *quality*: when the last user
message is a known question (:mod:`.questions`, e.g. "What is the capital of France?" or "What is 17 + 25?")
the answer is right with probability ``quality``, otherwise a plausible wrong one; other prompts get
lorem-like text whose length follows the profile, cut at ``max_tokens`` (finish reason ``length``).
Seeded: the same seed and requests give the same answers, errors and latencies.

Prompt markers — ``[sim:name=value]`` in any message (system included) overrides the profile for that
request, so a config can make a bad candidate; ``[sim@MODEL:name=value]`` applies only to requests for
MODEL (e.g. a failing primary whose fallback, sent the same messages, stays healthy):

::

    [sim:error_rate=0.25]       probability of a 500
    [sim:rate_limit_rate=0.1]   probability of a 429 (alias rate_limit)
    [sim:retry_after=2]         seconds sent in retry-after with a 429
    [sim:timeout_rate=0.1]      probability of a hang that ends in a 504 (the client times out first)
    [sim:hang_ms=2000]          how long such a hang lasts
    [sim:latency_ms=900]        median latency (p95 keeps the profile's p95/median ratio)
    [sim:quality=0.5]           probability of the right answer to a known question
    [sim:json]                  answer as JSON {"answer": ...}
    [sim:tokens=200]            mean answer length (tokens) for other prompts
    [sim:cached_fraction=0.5]   share of input tokens reported as cached
    [sim:status=400]            always fail with this HTTP status, in the API's error shape
    [sim:finish=length]         force "length" or "content_filter" as the finish reason
    [sim:stream_error_after=3]  streams send an error event after 3 text chunks (server_error/overloaded)
    [sim:tool_use_rate=0.5]     P(call a tool) under tool_choice auto, before any tool result (default 1)
    [sim:tool_error_rate=0.3]   P(a tool call is wrong: invalid JSON arguments, an unknown tool, or
                                arguments that break the tool's schema)
    [sim:tool_error=unknown_tool]  always this kind of wrong call: invalid_json | unknown_tool | bad_arguments
    [sim:schema_error_rate=0.3] P(a structured answer does not match the requested JSON schema)
    [sim:judge_noise=0.2]       judge requests: sd of the noise on a grade or a preference (default 0.1)
    [sim:judge_bias=0.3]        judge requests: position bias added to answer A's preference (default 0)
    [sim:judge_tie_band=0.5]    judge requests: a preference closer to 0 than this is a tie (default 0.5)

Judge requests — a user message laid out by :mod:`canaryflow.domain.judging` (``[canaryflow:judge]`` with
``<question>`` and ``<answer>``, or ``[canaryflow:judge-pairwise]`` with ``<answer_a>`` and ``<answer_b>``)
— are graded, not answered: an answer to a known question is right (1) or wrong (0) against its known
answer (other questions: 0.5); an absolute grade is that value plus Gaussian noise, clipped to 0–1; a
pairwise preference is right(A) − right(B) + bias + noise, ``A`` above the tie band, ``B`` below minus it,
else ``tie``. The answer is JSON in the request's schema (``score`` scaled to its minimum/maximum,
``winner`` / ``label`` spelled as its enum has them, ``reason``), seeded like every other draw. Model
``sim-judge`` is a fast judge profile; any model grades.

Tools and structured outputs: when a request offers tools (Chat ``tools``, Messages ``tools``, Responses
``tools`` of type function) and ``tool_choice`` allows it, the answer is a tool call whose arguments are
generated from the tool's JSON schema (``auto``: only before any tool result; ``required`` / a named tool:
always); after a tool result the model answers. A ``response_format`` / ``output_config.format`` /
``text.format`` JSON schema gets a JSON answer matching it (``json_object``: ``{"answer": ...}``). Image
parts are accepted (85 input tokens each). Streams carry tool calls as the real APIs do (Chat
``delta.tool_calls`` chunks, Anthropic ``input_json_delta`` events, Responses
``response.function_call_arguments.delta`` events).

Requests are validated as the real APIs do (:mod:`.requests`): unknown fields, roles, part types, value
ranges, tool definitions and tool-call/result pairing get each API's 400 shape.

Admin endpoints (only with ``--admin``): ``GET /admin/profiles``, ``POST /admin/profiles`` with
``{"model": "gpt-4o-mini", "profile": {"error_rate": 0.2}}`` (fields merge into the profile),
``POST /admin/reset`` (optional ``{"seed": N}``).
"""

from canaryflow.sim.app import create_app
from canaryflow.sim.engine import Simulator
from canaryflow.sim.profiles import ModelProfile
from canaryflow.sim.questions import QUESTIONS, is_correct, sample_question
from canaryflow.sim.server import SimServer, run_simulator

__all__ = ["QUESTIONS", "ModelProfile", "SimServer", "Simulator", "create_app", "is_correct", "run_simulator",
           "sample_question"]
