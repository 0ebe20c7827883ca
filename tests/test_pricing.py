"""Prices per model from the shipped table and the user's override file; cost from usage."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from canaryflow.errors import ValidationFailed
from canaryflow.providers.base import ChatResult
from canaryflow.providers.pricing import ENV_VAR, cost_of, cost_usd, load_prices

CURRENT = {
    "openai": ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini", "gpt-5",
               "gpt-5-mini", "gpt-5-nano"],
    "anthropic": ["claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku"],
}


@pytest.fixture(autouse=True)
def _no_user_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.mark.parametrize(("provider", "model"), [(p, m) for p, ms in CURRENT.items() for m in ms])
def test_every_current_model_has_a_price(provider: str, model: str) -> None:
    price = load_prices()[(provider, model)]
    assert 0 < price.cached_input <= price.input < price.output


@pytest.mark.parametrize(("provider", "model", "usage", "expected"), [
    ("openai", "gpt-4o-mini", (1_000_000, 0, 0), 0.15),
    ("openai", "gpt-4o-mini", (0, 1_000_000, 0), 0.60),
    ("openai", "gpt-4o-mini", (1000, 500, 200), (800 * 0.15 + 200 * 0.075 + 500 * 0.60) / 1e6),
    ("openai", "gpt-4o-2024-08-06", (1_000_000, 1_000_000, 0), 12.5),
    ("anthropic", "claude-sonnet-4-5-20250929", (2_000_000, 0, 1_000_000), 3.0 + 0.30),
    ("anthropic", "claude-haiku-4-5", (100, 10, 0), (100 * 1.0 + 10 * 5.0) / 1e6),
])
def test_cost_from_usage(provider: str, model: str, usage: tuple[int, int, int], expected: float) -> None:
    assert cost_usd(provider, model, *usage) == pytest.approx(expected)


def test_cost_of_a_result() -> None:
    result = ChatResult("hi", "stop", 1000, 100, 0, "openai", "gpt-4.1-nano", "id")
    assert cost_of(result) == pytest.approx((1000 * 0.10 + 100 * 0.40) / 1e6)
    assert cost_usd("openai", "gpt-4.1-nano", result) == cost_of(result)


def test_unknown_model_costs_nothing_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="canaryflow.pricing"):
        assert cost_usd("openai", "gpt-unknown-test", 1000, 1000) == 0.0
        assert cost_usd("openai", "gpt-unknown-test", 5, 5) == 0.0
    warnings = [r for r in caplog.records if "gpt-unknown-test" in r.getMessage()]
    assert len(warnings) == 1


def test_user_file_overrides_and_extends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai:\n  gpt-4o-mini: {input: 1, output: 2}\n"
                      "anthropic:\n  my-tuned-claude: {input: 10, output: 20, cached_input: 1}\n")
    monkeypatch.setenv(ENV_VAR, str(prices))
    assert cost_usd("openai", "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert cost_usd("anthropic", "my-tuned-claude", 1_000_000, 0, 1_000_000) == pytest.approx(1.0)
    assert cost_usd("openai", "gpt-4o", 1_000_000, 0) == pytest.approx(2.5)  # untouched built-in
    monkeypatch.delenv(ENV_VAR)
    assert cost_usd("openai", "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)


@pytest.mark.parametrize(("content", "problem"), [
    ("openai: [1, 2]", "expected a mapping"),
    ("openai:\n  m: {input: 1}\n", "needs 'input' and 'output'"),
    ("openai:\n  m: {input: cheap, output: 1}\n", "must be numbers"),
    ("openai:\n  m: {input: -1, output: 1}\n", "must not be negative"),
])
def test_bad_user_file_is_a_clear_error(tmp_path: Path, content: str, problem: str) -> None:
    prices = tmp_path / "p.yaml"
    prices.write_text(content)
    with pytest.raises(ValidationFailed, match=problem):
        load_prices(str(prices))
