"""Dollar cost of a call from its usage: a price table per provider and model (USD per million tokens).

The table ships in ``canaryflow/data/prices.yaml``; a YAML file of the same shape named by
``CANARYFLOW_PRICES_FILE`` is merged over it (add models, change prices). A model is found by exact name,
then with a date or ``-latest`` suffix removed (``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4-5``).
An unknown model costs 0 and is reported once as a warning.

Cost = (input − cached_input) × input price + cached_input × cached price + output × output price, with
``input_tokens`` counting cached tokens too (as in :class:`~canaryflow.providers.base.ChatResult`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from canaryflow.errors import ValidationFailed
from canaryflow.providers.base import ChatResult

ENV_VAR = "CANARYFLOW_PRICES_FILE"
_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
log = logging.getLogger("canaryflow.pricing")


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float


def _parse(raw: Any, source: str) -> dict[tuple[str, str], Price]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationFailed("expected provider -> model -> {input, output, cached_input}", source=source)
    table: dict[tuple[str, str], Price] = {}
    for provider, models in raw.items():
        if not isinstance(models, dict):
            raise ValidationFailed(f"{provider}: expected a mapping of model -> prices", source=source)
        for model, p in models.items():
            where = f"{provider}.{model}"
            if not isinstance(p, dict) or "input" not in p or "output" not in p:
                raise ValidationFailed(f"{where}: needs 'input' and 'output' (USD per million tokens)",
                                       source=source)
            try:
                cached = p["cached_input"] if "cached_input" in p else p["input"]
                values = [float(p["input"]), float(p["output"]), float(cached)]
            except (TypeError, ValueError) as exc:
                raise ValidationFailed(f"{where}: prices must be numbers", source=source) from exc
            if min(values) < 0:
                raise ValidationFailed(f"{where}: prices must not be negative", source=source)
            table[(str(provider), str(model))] = Price(*values)
    return table


def load_prices(path: str | None = None) -> dict[tuple[str, str], Price]:
    """The built-in table with the user's file (``path`` or ``$CANARYFLOW_PRICES_FILE``) merged over it.

    Raises:
        ValidationFailed: an unreadable or malformed prices file.
    """
    builtin = resources.files("canaryflow").joinpath("data/prices.yaml").read_text()
    table = _parse(yaml.safe_load(builtin), "canaryflow/data/prices.yaml")
    user = path or os.environ.get(ENV_VAR)
    if user:
        try:
            raw = yaml.safe_load(Path(user).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValidationFailed(f"cannot read prices file: {exc}", source=user) from exc
        table.update(_parse(raw, user))
    return table


class PriceTable:
    """Prices, loaded once per prices-file setting; unknown models warned about once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_for: str | None = None
        self._table: dict[tuple[str, str], Price] | None = None
        self._warned: set[tuple[str, str]] = set()

    def table(self) -> dict[tuple[str, str], Price]:
        """The current table (reloaded when ``CANARYFLOW_PRICES_FILE`` changes)."""
        wanted = os.environ.get(ENV_VAR, "")
        with self._lock:
            if self._table is None or self._loaded_for != wanted:
                self._table = load_prices()
                self._loaded_for = wanted
            return self._table

    def price(self, provider: str, model: str) -> Price | None:
        """The price of ``provider``/``model``, or ``None`` (warned once) when unknown."""
        table = self.table()
        found = table.get((provider, model)) or table.get((provider, _SUFFIX.sub("", model)))
        if found is None and (provider, model) not in self._warned:
            self._warned.add((provider, model))
            log.warning("no price for %s model %r: its cost counts as 0 (add it to a file named by %s)",
                        provider, model, ENV_VAR)
        return found


_TABLE = PriceTable()


def cost_usd(provider: str, model: str, input_tokens: int | ChatResult, output_tokens: int = 0,
             cached_input_tokens: int = 0) -> float:
    """Cost in USD of one call; also accepts a :class:`ChatResult` as the third argument (its usage).

    Args:
        provider: ``openai`` or ``anthropic``.
        model: the model that served.
        input_tokens: prompt tokens, cached ones included (or a ChatResult).
        output_tokens: completion tokens.
        cached_input_tokens: prompt tokens read from the provider's cache.
    """
    if isinstance(input_tokens, ChatResult):
        usage = input_tokens
        input_tokens, output_tokens, cached_input_tokens = (usage.input_tokens, usage.output_tokens,
                                                            usage.cached_input_tokens)
    price = _TABLE.price(provider, model)
    if price is None:
        return 0.0
    cached = min(max(0, cached_input_tokens), max(0, input_tokens))
    fresh = max(0, input_tokens) - cached
    return (fresh * price.input + cached * price.cached_input + max(0, output_tokens) * price.output) / 1e6


def cost_of(result: ChatResult) -> float:
    """Cost in USD of a finished call, from its own provider, model and usage."""
    return cost_usd(result.provider, result.model, result)


__all__ = ["ENV_VAR", "Price", "PriceTable", "cost_of", "cost_usd", "load_prices"]
