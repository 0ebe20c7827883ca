"""The fidelity table: which request and answer features survive a proxy, same API and across APIs.

Each feature is sent through a proxy to the recording upstream of the tests (``tests/recording_upstream.py``:
it records the body it receives and returns a given answer). A request feature counts when the upstream
received it (same API: exactly as sent; across APIs: its counterpart); an answer feature when the client
received it. ``400`` means the proxy refused the request saying which field has no counterpart — never a
silent loss. Proxies: canaryflow's gateway (in this process) and, when installed, the LiteLLM proxy
(``benchmarks/.venv-litellm``, see bench_gateway.py). Run::

    .venv/bin/python benchmarks/fidelity.py            # prints the table and writes docs/fidelity.md
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LITELLM = ROOT / "benchmarks" / ".venv-litellm" / "bin" / "litellm"
MASTER_KEY = "sk-fidelity-" + "0123456789abcdef" * 2

from canaryflow.domain.config import ConfigSpec  # noqa: E402
from canaryflow.gateway.server import build_gateway  # noqa: E402
from canaryflow.registry import Registry  # noqa: E402
from canaryflow.serving.client import Client  # noqa: E402
from canaryflow.sim.server import ThreadedServer, pick_port  # noqa: E402
from tests.recording_upstream import Recorder, recording_upstream  # noqa: E402

Check = Callable[[dict[str, Any], Any], bool]  # (upstream body, client answer) -> carried?
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OAI_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA},
}
ANT_TOOL = {"name": "get_weather", "description": "Weather", "input_schema": SCHEMA}
IMAGE = "data:image/png;base64,iVBORw0KGgo="
USER = {"role": "user", "content": "Weather in Paris?"}
CALL = {
    "id": "call_0",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
}

CHAT_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": "Sunny.", "refusal": None},
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}
ANT_ANSWER: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "Sunny."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 2},
}


def _chat_answer(**message: Any) -> dict[str, Any]:
    out = copy.deepcopy(CHAT_ANSWER)
    out["choices"][0]["message"].update(message)
    if "tool_calls" in message:
        out["choices"][0]["finish_reason"] = "tool_calls"
    return out


def _ant_answer(content: list[dict[str, Any]], stop: str = "end_turn", **extra: Any) -> dict[str, Any]:
    return {**ANT_ANSWER, "content": content, "stop_reason": stop, **extra}


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
TOOL_CALL_ANSWER = _chat_answer(
    content=None,
    tool_calls=[
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ],
)


@dataclass
class Feature:
    """One row: what is sent (``body``), answered (``answer`` per upstream API) and checked."""

    name: str
    body: dict[str, Any]
    same: Check
    cross: Check | None  # None: no counterpart to check ("—")
    answer: dict[str, Any] | None = None  # upstream answer, same API
    cross_answer: dict[str, Any] | None = None  # upstream answer, other API


def _msg(a: Any) -> dict[str, Any]:
    return (a.get("choices") or [{}])[0].get("message") or {} if isinstance(a, dict) else {}


def _blocks(up: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        b
        for m in up.get("messages") or []
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if b.get("type") == kind
    ]


def _same(*fields: str) -> Check:
    return lambda up, _a, fs=fields: all(up.get(f) == FEATURE_BODY[f] for f in fs)


FEATURE_BODY: dict[str, Any] = {}


def chat_features() -> list[Feature]:
    """OpenAI Chat Completions callers (cross = an Anthropic config serves them)."""
    history = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
    ]
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
            ],
        }
    ]
    audio = [
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}
    ]
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}}
    strict_tool = {"type": "function", "function": {**OAI_TOOL["function"], "strict": True}}
    detailed = [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": IMAGE, "detail": "high"}}]}]
    rows = [
        Feature(
            "tools + tool_choice",
            {"tools": [OAI_TOOL], "tool_choice": "required"},
            _same("tools", "tool_choice"),
            lambda up, _: (
                bool(up.get("tools"))
                and up["tools"][0].get("input_schema") == SCHEMA
                and up.get("tool_choice", {}).get("type") == "any"
            ),
        ),
        Feature(
            "parallel_tool_calls: false",
            {"tools": [OAI_TOOL], "parallel_tool_calls": False},
            _same("parallel_tool_calls"),
            lambda up, _: (up.get("tool_choice") or {}).get("disable_parallel_tool_use") is True,
        ),
        Feature(
            "tool call history",
            {"messages": history, "tools": [OAI_TOOL]},
            lambda up, _: up.get("messages") == history,
            lambda up, _: bool(_blocks(up, "tool_use")) and bool(_blocks(up, "tool_result")),
        ),
        Feature(
            "response_format json_schema",
            {"response_format": fmt},
            _same("response_format"),
            lambda up, _: (up.get("output_format") or {}).get("schema") == SCHEMA,
        ),
        Feature(
            "image part",
            {"messages": image},
            lambda up, _: up.get("messages") == image,
            lambda up, _: bool(_blocks(up, "image")),
        ),
        Feature(
            "audio part", {"messages": audio}, lambda up, _: up.get("messages") == audio, lambda up, _: False
        ),
        Feature("n: 2", {"n": 2}, _same("n"), lambda up, _: False),
        Feature(
            "logprobs",
            {"logprobs": True, "top_logprobs": 2},
            _same("logprobs", "top_logprobs"),
            lambda up, _: False,
        ),
        Feature("seed", {"seed": 7}, _same("seed"), lambda up, _: False),
        Feature("stop", {"stop": ["END"]}, _same("stop"), lambda up, _: up.get("stop_sequences") == ["END"]),
        Feature(
            "user",
            {"user": "u-1"},
            _same("user"),
            lambda up, _: (up.get("metadata") or {}).get("user_id") == "u-1",
        ),
        Feature("metadata", {"metadata": {"team": "a"}}, _same("metadata"), lambda up, _: False),
        Feature(
            "reasoning_effort",
            {"reasoning_effort": "low"},
            _same("reasoning_effort"),
            lambda up, _: (up.get("thinking") or {}).get("type") == "enabled",
        ),
        Feature("service_tier", {"service_tier": "flex"}, _same("service_tier"), lambda up, _: False),
        Feature(
            "service_tier: default",
            {"service_tier": "default"},
            _same("service_tier"),
            lambda up, _: up.get("service_tier") == "standard_only",
        ),
        Feature(
            "safety_identifier",
            {"safety_identifier": "u-9"},
            _same("safety_identifier"),
            lambda up, _: (up.get("metadata") or {}).get("user_id") == "u-9",
        ),
        Feature(
            "function tool strict",
            {"tools": [strict_tool]},
            _same("tools"),
            lambda up, _: bool(up.get("tools")) and up["tools"][0].get("strict") is True,
        ),
        Feature(  # Claude sizes images itself: detail has no counterpart
            "image part with detail: high",
            {"messages": detailed},
            lambda up, _: up.get("messages") == detailed,
            lambda up, _: False,
        ),
        Feature(
            "a field that does not exist yet",
            {"x_future_field": {"a": 1}},
            _same("x_future_field"),
            lambda up, _: False,
        ),
        Feature(
            "answer: tool calls",
            {"tools": [OAI_TOOL]},
            lambda _, a: _msg(a).get("tool_calls") == _msg(TOOL_CALL_ANSWER)["tool_calls"],
            lambda _, a: (
                bool(_msg(a).get("tool_calls"))
                and _msg(a)["tool_calls"][0]["function"]["name"] == "get_weather"
            ),
            TOOL_CALL_ANSWER,
            _ant_answer([TOOL_USE], "tool_use"),
        ),
        Feature(
            "answer: refusal",
            {},
            lambda _, a: _msg(a).get("refusal") == "No.",
            lambda _, a: (a.get("choices") or [{}])[0].get("finish_reason") == "content_filter",
            _chat_answer(content=None, refusal="No."),
            _ant_answer([], "refusal"),
        ),
        Feature(
            "answer: several choices",
            {"n": 2},
            lambda _, a: len(a.get("choices") or []) == 2,
            None,
            {**CHAT_ANSWER, "choices": CHAT_ANSWER["choices"] * 2},
        ),
        Feature(
            "answer: cached/reasoning usage",
            {},
            lambda _, a: (a.get("usage") or {}).get("completion_tokens_details") == {"reasoning_tokens": 5},
            lambda _, a: (
                ((a.get("usage") or {}).get("prompt_tokens_details") or {}).get("cached_tokens") == 8
            ),
            {
                **CHAT_ANSWER,
                "usage": {**CHAT_ANSWER["usage"], "completion_tokens_details": {"reasoning_tokens": 5}},
            },
            _ant_answer(
                ANT_ANSWER["content"],
                usage={"input_tokens": 2, "output_tokens": 2, "cache_read_input_tokens": 8},
            ),
        ),
        Feature(
            "answer: thinking",
            {},
            lambda _, a: _msg(a).get("reasoning_content") == "hmm",
            lambda _, a: bool(_msg(a).get("reasoning_content") or _msg(a).get("thinking_blocks")),
            _chat_answer(reasoning_content="hmm"),
            _ant_answer([{"type": "thinking", "thinking": "hmm", "signature": "s"}, *ANT_ANSWER["content"]]),
        ),
    ]
    return rows


def messages_features() -> list[Feature]:
    """Anthropic Messages callers (cross = an OpenAI config serves them)."""
    loop = [
        USER,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t0", "name": "get_weather", "input": {"city": "Rome"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t0", "content": "sunny"}]},
    ]
    image = [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]
    system = [{"type": "text", "text": "Shared context.", "cache_control": {"type": "ephemeral"}}]
    document = [{"role": "user", "content": [
        {"type": "document",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="}},
        {"type": "text", "text": "Summarise this."}]}]
    failed = [*loop[:2], {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t0", "content": "timeout", "is_error": True}]}]

    def oai_tool_turns(up: dict[str, Any], _a: Any) -> bool:  # chat messages, or Responses input items
        roles = [m.get("role") for m in up.get("messages") or []]
        items = [i.get("type") for i in up.get("input") or [] if isinstance(i, dict)]
        return ("tool" in roles and any(m.get("tool_calls") for m in up.get("messages") or [])) or {
            "function_call",
            "function_call_output",
        } <= set(items)

    def has(text: str) -> Check:
        return lambda up, _a: text in json.dumps(up)

    return [
        Feature(
            "tools + tool_use/tool_result loop",
            {"messages": loop, "tools": [ANT_TOOL]},
            lambda up, _: up.get("messages") == loop and up.get("tools") == [ANT_TOOL],
            oai_tool_turns,
        ),
        Feature(
            "image block",
            {"messages": image},
            lambda up, _: up.get("messages") == image,
            has("iVBORw0KGgo"),
        ),
        Feature(
            "thinking",
            {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2000},
            lambda up, _: up.get("thinking") == {"type": "enabled", "budget_tokens": 1024},
            lambda up, _: (
                up.get("reasoning_effort") is not None or bool((up.get("reasoning") or {}).get("effort"))
            ),
        ),
        Feature(
            "system blocks with cache_control",
            {"system": system},
            lambda up, _: up.get("system") == system,
            has("Shared context."),
        ),
        Feature(
            "metadata.user_id",
            {"metadata": {"user_id": "u-1"}},
            lambda up, _: up.get("metadata") == {"user_id": "u-1"},
            has("u-1"),
        ),
        Feature(
            "top_k", {"top_k": 5}, lambda up, _: up.get("top_k") == 5, lambda up, _: False
        ),  # no counterpart
        Feature(
            "document block (PDF)",
            {"messages": document},
            lambda up, _: up.get("messages") == document,
            has("JVBERi0xLjQ="),
        ),
        Feature(
            "output_config.format (messages.parse)",
            {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
            lambda up, _: up.get("output_config") == {"format": {"type": "json_schema", "schema": SCHEMA}},
            lambda up, _: (
                (up.get("response_format") or {}).get("type") == "json_schema"
                or ((up.get("text") or {}).get("format") or {}).get("type") == "json_schema"
            ),
        ),
        Feature(
            "tool strict",
            {"tools": [{**ANT_TOOL, "strict": True}]},
            lambda up, _: up.get("tools") == [{**ANT_TOOL, "strict": True}],
            lambda up, _: bool(up.get("tools")) and True in (
                (up["tools"][0].get("function") or {}).get("strict"), up["tools"][0].get("strict")
            ),
        ),
        Feature(  # a failed tool run: Chat Completions' tool message has no error flag
            "tool_result is_error",
            {"messages": failed, "tools": [ANT_TOOL]},
            lambda up, _: up.get("messages") == failed,
            lambda up, _: False,
        ),
        Feature(
            "answer: tool_use",
            {"tools": [ANT_TOOL]},
            lambda _, a: isinstance(a, dict) and a.get("content") == [TOOL_USE],
            lambda _, a: (
                isinstance(a, dict) and any(b.get("type") == "tool_use" for b in a.get("content") or [])
            ),
            _ant_answer([TOOL_USE], "tool_use"),
            TOOL_CALL_ANSWER,
        ),
        Feature(
            "answer: thinking blocks",
            {},
            lambda _, a: isinstance(a, dict) and (a.get("content") or [{}])[0].get("type") == "thinking",
            lambda _, a: (
                isinstance(a, dict) and any(b.get("type") == "thinking" for b in a.get("content") or [])
            ),
            _ant_answer([{"type": "thinking", "thinking": "hmm", "signature": "s"}, *ANT_ANSWER["content"]]),
            _chat_answer(reasoning_content="hmm"),
        ),
    ]


def as_response(chat: dict[str, Any]) -> dict[str, Any]:
    """A chat completion as the equivalent Responses API object (for proxies that call ``/v1/responses``)."""
    message = _msg(chat)
    output: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        output.append(
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": message["reasoning_content"]}],
            }
        )
    if message.get("content") or message.get("refusal"):
        part = (
            {"type": "output_text", "text": message["content"], "annotations": []}
            if message.get("content")
            else {"type": "refusal", "refusal": message["refusal"]}
        )
        output.append(
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": [part]}
        )
    for call in message.get("tool_calls") or []:
        output.append(
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": call["id"],
                "status": "completed",
                "name": call["function"]["name"],
                "arguments": call["function"]["arguments"],
            }
        )
    usage = chat.get("usage") or {}
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": chat["model"],
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _cell(status: int, carried: bool) -> str:
    if status == 400:
        return "400 (refused)"
    if status != 200:
        return f"error {status}"
    return "✓" if carried else "✗ lost"


def run(base: str, rec: Recorder, headers: dict[str, str]) -> dict[tuple[str, str, str], str]:
    """Every feature through one proxy at ``base``; cells keyed by (api, feature, same|cross)."""
    cells: dict[tuple[str, str, str], str] = {}
    http = httpx.Client(timeout=60)
    for api, features, path, configs in (
        ("chat", chat_features(), "/v1/chat/completions", {"same": "oa", "cross": "an"}),
        ("messages", messages_features(), "/v1/messages", {"same": "an", "cross": "oa"}),
    ):
        for f in features:
            for kind, model in configs.items():
                check = f.same if kind == "same" else f.cross
                if check is None:
                    cells[(api, f.name, kind)] = "—"
                    continue
                own = api if kind == "same" else ("messages" if api == "chat" else "chat")
                default = CHAT_ANSWER if own == "chat" else ANT_ANSWER
                answer = (f.answer if kind == "same" else f.cross_answer) or default
                rec.reset(answer)
                if own == "chat":
                    rec.by_path = {"/v1/responses": as_response(answer)}
                body: dict[str, Any] = {"model": model, "messages": [USER], **copy.deepcopy(f.body)}
                if api == "messages":
                    body.setdefault("max_tokens", 100)
                FEATURE_BODY.clear()
                FEATURE_BODY.update(body)
                r = http.post(base + path, json=body, headers=headers)
                up = rec.last.body if rec.received else {}
                try:
                    got = r.json()
                except ValueError:
                    got = {}
                cells[(api, f.name, kind)] = _cell(r.status_code, bool(rec.received) and check(up, got))
    return cells


@contextlib.contextmanager
def canaryflow_gateway(tmp: Path) -> Iterator[str]:
    registry = Registry(f"sqlite:///{tmp / 'registry.db'}")
    registry.push_config(
        ConfigSpec.model_validate({"key": "oa", "provider": "openai", "model": "gpt-4o-mini"})
    )
    registry.push_config(
        ConfigSpec.model_validate({"key": "an", "provider": "anthropic", "model": "claude-haiku-4-5"})
    )
    client = Client(registry)
    app, _ = build_gateway(client=client, traffic_rate=0.0)
    server = ThreadedServer(app)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        client.close()


@contextlib.contextmanager
def litellm_proxy(tmp: Path, upstream: str) -> Iterator[str | None]:
    if not LITELLM.exists():
        yield None
        return
    port = pick_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - model_name: oa\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-test-openai\n"
        f"  - model_name: an\n    litellm_params:\n      model: anthropic/claude-haiku-4-5\n"
        f"      api_base: {upstream}\n      api_key: sk-ant-test\n"
        "router_settings:\n  disable_cooldowns: true\n"  # a refused request must not bench the next ones
    )
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }
    with open(tmp / "litellm.log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(LITELLM),
                "--config",
                str(cfg),
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--num_workers",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200:
                        break
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def table(results: dict[str, dict[tuple[str, str, str], str]]) -> str:
    names = list(results)
    head = "| caller API | feature | " + " | ".join(f"{n} same-API | {n} cross-API" for n in names) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(names))]
    keys = list(next(iter(results.values())))
    rows = list(dict.fromkeys((api, feature) for api, feature, _ in keys))
    for api, feature in rows:
        label = "OpenAI chat" if api == "chat" else "Anthropic messages"
        cells = [results[n].get((api, feature, k), "not run") for n in names for k in ("same", "cross")]
        lines.append(f"| {label} | {feature} | " + " | ".join(cells) + " |")
    totals = []
    for n in names:
        for k in ("same", "cross"):
            vals = [v for (_, _, kind), v in results[n].items() if kind == k and v != "—"]
            totals.append(
                f"{sum(v == '✓' for v in vals)} ✓, {sum(v.startswith('400') for v in vals)} refused, "
                f"{sum(v.startswith('✗') for v in vals)} lost / {len(vals)}"
            )
    lines.append("| | **total** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="cf-fidelity-"))
    results: dict[str, dict[tuple[str, str, str], str]] = {}
    with recording_upstream() as (rec, upstream):
        with canaryflow_gateway(tmp) as url:
            results["canaryflow"] = run(url, rec, {})
        with litellm_proxy(tmp, upstream.url) as ll:
            if ll is not None:
                results["LiteLLM"] = run(ll, rec, {"authorization": f"Bearer {MASTER_KEY}"})
    text = table(results)
    note = "" if "LiteLLM" in results else "\n\nLiteLLM: not installed (see benchmarks/bench_gateway.py).\n"
    doc = ROOT / "docs" / "fidelity.md"
    doc.write_text(
        "# Fidelity: what survives the proxy\n\n"
        "Generated by `.venv/bin/python benchmarks/fidelity.py` on "
        f"{time.strftime('%Y-%m-%d', time.gmtime())} "
        "(rerun it to refresh this file). Each feature is sent through the proxy to a recording upstream; "
        "*same-API* = the config's provider speaks the caller's API (OpenAI chat → OpenAI, Anthropic → "
        "Anthropic), *cross-API* = the other one. ✓ = the upstream received the field (across APIs: its "
        "counterpart) or the client received the answer's feature; `400 (refused)` = the proxy refused the "
        "request naming the field that has no counterpart; `✗ lost` = HTTP 200 but the feature did not "
        "arrive; — = nothing to compare.\n\n" + text + note + "\n"
    )
    print(text + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
