"""Named provider endpoints: the providers file (validation, keys only from the environment), two simulators
on different ports as two named endpoints behind one fallback chain, Azure OpenAI's URL shape and api-key
header, the OPENAI_*/ANTHROPIC_* defaults, and `config push` refusing names this process does not know."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from canaryflow.cli import app
from canaryflow.cli._common import run_app
from canaryflow.domain.resolution import Resolution
from canaryflow.errors import ProviderError, ValidationFailed
from canaryflow.files import load_config
from canaryflow.providers import ChatRequest, get_provider
from canaryflow.providers.endpoints import endpoint_names, endpoints, get_endpoint
from canaryflow.providers.factory import clear_cache
from canaryflow.providers.fallback import FallbackRunner
from canaryflow.sim import SimServer, Simulator
from canaryflow.sim.profiles import ModelProfile, default_profiles
from tests.servers import free_port

QUESTION = [{"role": "user", "content": "What is the capital of Japan? [sim:quality=1]"}]


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    """``down``: every request fails with 503; ``up``: a healthy simulator on another port."""
    down = SimServer(Simulator(seed=1, profiles={"default": ModelProfile(status=503, latency_median_ms=0)},
                               latency_scale=0), port=free_port())
    up = SimServer(Simulator(seed=2, profiles=default_profiles(), latency_scale=0), port=free_port())
    down.start()
    up.start()
    yield down, up
    down.stop()
    up.stop()


@pytest.fixture
def providers_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   sims: tuple[SimServer, SimServer]) -> Path:
    down, up = sims
    path = tmp_path / "providers.yaml"
    path.write_text(f"""\
providers:
  - name: local-vllm          # an OpenAI-compatible server that takes no key
    api: openai
    base_url: {down.url}/v1
  - name: backup-claude
    api: anthropic
    base_url: {up.url}
    api_key_env: BACKUP_CLAUDE_KEY
    headers: {{x-team: support, x-token: "${{TEAM_TOKEN}}"}}
  - name: azure-east
    api: azure-openai
    base_url: {up.url}
    api_version: "2024-10-21"
    api_key_env: AZURE_EAST_KEY
""")
    monkeypatch.setenv("CANARYFLOW_PROVIDERS_FILE", str(path))
    monkeypatch.setenv("BACKUP_CLAUDE_KEY", "sk-ant-test")
    monkeypatch.setenv("TEAM_TOKEN", "t-123")
    monkeypatch.setenv("AZURE_EAST_KEY", "az-test")
    monkeypatch.delenv("CANARYFLOW_PROVIDERS", raising=False)
    clear_cache()
    return path


def resolution(provider: str, model: str, fallback: list[dict[str, object]]) -> Resolution:
    return Resolution("support-bot", 1, "stable", "test", provider, model, (), {"max_tokens": 50},
                      tuple(fallback), "none", 1)


async def test_two_simulators_as_two_named_endpoints_in_one_fallback_chain(providers_file: Path) -> None:
    assert endpoint_names() == ["anthropic", "azure-east", "backup-claude", "local-vllm", "openai"]
    runner = FallbackRunner(retries=0)
    served = await runner.complete(
        resolution("local-vllm", "llama-3.1-8b", [{"provider": "backup-claude", "model": "claude-haiku-4-5"}]
                   ), QUESTION)
    assert served.result.text == "Tokyo"
    assert (served.result.provider, served.fallback_index, served.reason) == (
        "backup-claude", 0, "server_error")
    assert [(a.provider, a.status_code) for a in served.attempts] == [
        ("local-vllm", 503), ("backup-claude", None)]


async def test_azure_openai_endpoint_uses_deployment_urls_and_the_api_key_header(
        providers_file: Path) -> None:
    provider = get_provider("azure-east")
    result = await provider.complete(ChatRequest("my-gpt4o-deployment", QUESTION, {"max_tokens": 20}),
                                     timeout=10)
    assert (result.text, result.provider, result.model) == ("Tokyo", "azure-east", "my-gpt4o-deployment")
    chunks = [c async for c in provider.stream(ChatRequest("my-gpt4o-deployment", QUESTION), timeout=10)]
    assert "".join(c.text for c in chunks) == "Tokyo"
    client = provider.client  # type: ignore[attr-defined]  # Azure's Responses route: /openai/responses
    answer = await client.responses.create(model="my-gpt4o-deployment", input=QUESTION[0]["content"])
    assert answer.output_text == "Tokyo"


async def test_keys_and_header_values_come_from_the_environment(providers_file: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKUP_CLAUDE_KEY")
    with pytest.raises(ProviderError, match="backup-claude: no API key: set BACKUP_CLAUDE_KEY") as caught:
        get_provider("backup-claude")
    assert caught.value.error_type == "auth"
    monkeypatch.setenv("BACKUP_CLAUDE_KEY", "k")
    monkeypatch.delenv("TEAM_TOKEN")
    with pytest.raises(ProviderError, match="header x-token needs TEAM_TOKEN"):
        get_provider("backup-claude")
    monkeypatch.setenv("TEAM_TOKEN", "t-9")
    client = get_provider("backup-claude").client  # type: ignore[attr-defined]
    assert client.api_key == "k" and client.default_headers["x-token"] == "t-9"
    assert client.default_headers["x-team"] == "support"


def test_unknown_endpoint_is_a_bad_request_naming_the_fix(providers_file: Path) -> None:
    with pytest.raises(ProviderError, match=r"unknown provider 'mistral'.*PROVIDERS_FILE") as caught:
        get_endpoint("mistral")
    assert caught.value.error_type == "bad_request" and not caught.value.retryable


def test_the_defaults_keep_reading_openai_and_anthropic_variables(monkeypatch: pytest.MonkeyPatch,
                                                                  sims: tuple[SimServer, SimServer]) -> None:
    monkeypatch.delenv("CANARYFLOW_PROVIDERS_FILE", raising=False)
    monkeypatch.delenv("CANARYFLOW_PROVIDERS", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", sims[1].openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    clear_cache()
    assert endpoint_names() == ["anthropic", "openai"]
    client = get_provider("openai").client  # type: ignore[attr-defined]
    assert str(client.base_url).rstrip("/") == sims[1].openai_base_url and client.api_key == "sk-x"


def test_ordinary_header_values_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANARYFLOW_PROVIDERS_FILE", raising=False)
    headers = {"x-service": "support-assistant-frontend-eu-west-production", "anthropic-beta":
               "prompt-caching-2024-07-31"}
    monkeypatch.setenv("CANARYFLOW_PROVIDERS", json.dumps([
        {"name": "gw", "api": "anthropic", "base_url": "http://127.0.0.1:9/", "headers": headers}]))
    assert endpoints()["gw"].headers == headers


def test_the_json_section_adds_and_redefines_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANARYFLOW_PROVIDERS_FILE", raising=False)
    monkeypatch.setenv("CANARYFLOW_PROVIDERS", json.dumps([
        {"name": "ollama", "api": "openai", "base_url": "http://127.0.0.1:11434/v1"},
        {"name": "openai", "api": "openai", "base_url": "https://proxy.example/v1",
         "api_key_env": "PROXY_KEY"}]))
    assert endpoint_names() == ["anthropic", "ollama", "openai"]
    assert endpoints()["openai"].api_key_env == "PROXY_KEY"
    monkeypatch.setenv("CANARYFLOW_PROVIDERS", "[{")
    with pytest.raises(ValidationFailed, match="CANARYFLOW_PROVIDERS: not JSON"):
        endpoints()


GOOD = """\
providers:
  - name: local-vllm
    api: openai
    base_url: http://127.0.0.1:8000/v1
"""

BAD = [
    ("literal key", GOOD + "    api_key: sk-live-0123456789\n",
     ["line 2", "providers[0]", "a literal key is refused", "api_key_env"]),
    ("key in api_key_env", GOOD + "    api_key_env: sk-proj-abc123\n",
     ["line 5", "providers[0].api_key_env", "looks like a key"]),
    ("literal auth header", GOOD + "    headers: {Authorization: Bearer abc}\n",
     ["line 5", "providers[0].headers", "Authorization: a literal credential is refused", "${VAR}"]),
    ("key-like header value", GOOD + "    headers: {x-custom: sk-abcdefabcdef}\n",
     ["providers[0].headers", "literal credential"]),
    ("hex key as a header value", GOOD + "    headers: {x-custom: 0123456789abcdef0123456789abcdef}\n",
     ["providers[0].headers", "x-custom: a literal credential is refused"]),
    ("unknown api", GOOD.replace("api: openai", "api: mistral"),
     ["line 3", "providers[0].api", "'openai', 'anthropic' or 'azure-openai'"]),
    ("azure without version", GOOD.replace("api: openai", "api: azure-openai"),
     ["line 2", "api_version: azure-openai needs an API version"]),
    ("version on openai", GOOD + "    api_version: '2024-10-21'\n",
     ["api_version: only azure-openai endpoints take an API version"]),
    ("bad url", GOOD.replace("http://127.0.0.1:8000/v1", "127.0.0.1:8000"),
     ["line 4", "providers[0].base_url", "pattern"]),
    ("bad name", GOOD.replace("name: local-vllm", "name: Local VLLM"), ["line 2", "providers[0].name"]),
    ("duplicate", GOOD + GOOD.replace("providers:\n", ""),
     ["line 1", "providers", "duplicate endpoint names ['local-vllm']"]),
    ("unknown field", GOOD + "    region: eu\n", ["line 5", "providers[0].region", "unknown field"]),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD, ids=[c[0] for c in BAD])
def test_providers_file_errors_name_file_line_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        case: str, text: str, expected: list[str]) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    monkeypatch.setenv("CANARYFLOW_PROVIDERS_FILE", str(path))
    monkeypatch.delenv("CANARYFLOW_PROVIDERS", raising=False)
    with pytest.raises(ValidationFailed) as info:
        endpoints()
    message = str(info.value)
    assert message.startswith(str(path)), message
    for fragment in expected:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"


CONFIG = """\
key: agent
provider: local-vllm
model: llama-3.1-8b
fallback:
  - {provider: backup-claude, model: claude-haiku-4-5}
  - {provider: ollama, model: qwen2.5}
"""


def test_push_refuses_provider_names_this_process_does_not_know(providers_file: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ValidationFailed) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: line 6: fallback[1].provider: unknown provider 'ollama': this process knows ['anthropic', "
        "'azure-east', 'backup-claude', 'local-vllm', 'openai']; define 'ollama' in the providers file "
        "(CANARYFLOW_PROVIDERS_FILE, see docs/providers.md)")
    db = ["--db", f"sqlite:///{tmp_path / 'cli.db'}"]
    assert run_app(app, ["config", "push", str(path), *db]) == 1
    assert "unknown provider 'ollama'" in capsys.readouterr().err
    path.write_text(CONFIG.replace("ollama", "azure-east"))
    assert run_app(app, ["config", "push", str(path), *db]) == 0
    assert capsys.readouterr().out.startswith("agent v1")


def test_the_documented_providers_file_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "providers.md").read_text()
    block = doc.split("```yaml\n")[1].split("```")[0]
    (tmp_path / "providers.yaml").write_text(block)
    monkeypatch.setenv("CANARYFLOW_PROVIDERS_FILE", str(tmp_path / "providers.yaml"))
    monkeypatch.delenv("CANARYFLOW_PROVIDERS", raising=False)
    assert endpoint_names() == ["anthropic", "azure-east", "backup-claude", "local-vllm", "ollama", "openai",
                                "together"]
    assert endpoints()["azure-east"].api_version == "2024-10-21"


def test_a_gateway_serving_a_version_that_names_an_endpoint_it_lacks(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored without the push check (the registry API): the primary fails as a bad request naming the fix,
    a fallback naming an unknown endpoint is skipped for the next one."""
    import openai

    from tests.traffic_stack import running_stack, spec

    monkeypatch.delenv("CANARYFLOW_PROVIDERS_FILE", raising=False)
    monkeypatch.delenv("CANARYFLOW_PROVIDERS", raising=False)
    broken = spec("broken", provider="nowhere", system="You help.")
    rescued = spec("rescued", provider="openai", system="You help. [sim@gpt-4o-mini:status=503]",
                   fallback=[{"provider": "nowhere", "model": "m"},
                             {"provider": "anthropic", "model": "claude-haiku-4-5"}])
    with running_stack(tmp_path, configs=[broken, rescued]) as stack:
        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-app", max_retries=0, timeout=10)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="broken", messages=QUESTION)
        assert "unknown provider 'nowhere'" in caught.value.message
        assert "CANARYFLOW_PROVIDERS_FILE" in caught.value.message
        assert stack.count("canaryflow_requests_total", config="broken", outcome="error") == 1
        answer = client.chat.completions.with_raw_response.create(model="rescued", messages=QUESTION)
        assert answer.parse().choices[0].message.content == "Tokyo"
        assert answer.parse().model == "claude-haiku-4-5"
