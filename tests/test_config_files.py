"""Config and segment files: every kind of mistake gives an error naming the file, line, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.errors import ValidationFailed
from canaryflow.files import load_config, load_configs, load_segments

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

GOOD = """\
key: support-bot
provider: openai
model: gpt-4o-mini
messages:
  - role: system
    content: "You help with {{product}}."
parameters: {temperature: 0.2, max_tokens: 400}
fallback:
  - {provider: anthropic, model: claude-haiku-4-5}
metadata: {author: alice, rationale: "shorter", labels: [support]}
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_examples_load() -> None:
    specs = load_configs(sorted(EXAMPLES.glob("support-bot.v*.yaml")))
    assert [s.key for s in specs] == ["support-bot"] * 4
    assert len({s.content_hash() for s in specs}) == 4
    assert all(s.placeholders() == ["product"] for s in specs)
    assert "[sim:error_rate=0.25]" in specs[2].messages[0].content
    assert "[sim:quality=0.1]" in specs[3].messages[0].content  # worse answers, judged pairwise
    assert [(e.name, e.kind, e.judge) for e in specs[3].evaluators] == [("pref", "pairwise", "pair-judge")]
    judge = load_config(EXAMPLES / "pair-judge.v1.yaml")
    assert judge.response_format is not None and judge.placeholders() == []
    assert [s.name for s in load_segments(EXAMPLES / "segments.yaml").segments] == ["internal", "beta"]


def test_a_good_file_loads_with_metadata(tmp_path: Path) -> None:
    spec = load_config(write(tmp_path, GOOD))
    assert (spec.provider, spec.parameters.temperature, spec.metadata.author) == ("openai", 0.2, "alice")
    assert spec.fallback[0].model == "claude-haiku-4-5"


CONFIG_ERRORS = [
    ("unknown key", GOOD + "colour: blue\n", ["line 11", "colour", "unknown field"]),
    ("wrong type", GOOD.replace("max_tokens: 400", "max_tokens: lots"),
     ["line 7", "parameters.max_tokens", "integer"]),
    ("temperature too high", GOOD.replace("temperature: 0.2", "temperature: 2.5"),
     ["parameters.temperature", "less than or equal to 2"]),
    ("temperature negative", GOOD.replace("temperature: 0.2", "temperature: -0.1"),
     ["parameters.temperature", "greater than or equal to 0"]),
    ("max_tokens zero", GOOD.replace("max_tokens: 400", "max_tokens: 0"),
     ["parameters.max_tokens", "greater than 0"]),
    ("unknown provider", GOOD.replace("provider: openai", "provider: openia"),
     ["line 2", "provider: unknown provider 'openia'", "knows ['anthropic', 'openai']", "providers file"]),
    ("unknown fallback provider", GOOD.replace("provider: anthropic", "provider: mistral"),
     ["line 9", "fallback[0].provider: unknown provider 'mistral'", "CANARYFLOW_PROVIDERS_FILE"]),
    ("malformed placeholder", GOOD.replace("{{product}}", "{{product name}}"),
     ["line 6", "messages[0].content", "cannot be filled by any variable"]),
    ("unbalanced braces", GOOD.replace("{{product}}", "{{product"),
     ["messages[0].content", "unbalanced"]),
    ("bad key", GOOD.replace("key: support-bot", "key: Support Bot"), ["key", "[a-z0-9]"]),
    ("missing model", GOOD.replace("model: gpt-4o-mini\n", ""), ["model", "required field is missing"]),
    ("bad role", GOOD.replace("role: system", "role: robot"), ["messages[0].role", "'system'"]),
    ("bad YAML", GOOD.replace("provider: openai", "provider: openai\n  oops: [1"),
     ["line 3", "invalid YAML"]),
    ("duplicate YAML key", GOOD + "model: gpt-4o\n", ["line 11", "duplicate key 'model'"]),
    ("two documents", GOOD + "---\n" + GOOD, ["2 YAML documents", "one config version per file"]),
    ("empty file", "", ["the file is empty"]),
    ("not a mapping", "- a\n- b\n", ["expected a mapping"]),
]


@pytest.mark.parametrize(("case", "text", "expected"), CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors_name_file_line_field_and_fix(tmp_path: Path, case: str, text: str,
                                                     expected: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValidationFailed) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for fragment in expected:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"


SEGMENT_OK = """\
segments:
  - name: internal
    rules: [{attribute: email, op: ends_with, values: ["@acme.com"]}]
"""

SEGMENT_ERRORS = [
    ("duplicate names", SEGMENT_OK + "  - name: internal\n    rules: [{attribute: x, op: exists}]\n",
     ["segments", "duplicate segment names ['internal']"]),
    ("unknown operator", SEGMENT_OK.replace("ends_with", "endswith"),
     ["line 3", "op", "'ends_with'"]),
    ("numeric op on a string", SEGMENT_OK.replace("op: ends_with", "op: gt"),
     ["compares numbers", "'@acme.com' is not a number"]),
    ("no values", SEGMENT_OK.replace('values: ["@acme.com"]', "values: []"), ["needs at least one value"]),
    ("unknown key", SEGMENT_OK + "owner: bob\n", ["owner", "unknown field"]),
    ("no rules", "segments:\n  - name: a\n    rules: []\n", ["segments[0].rules", "at least 1"]),
]


@pytest.mark.parametrize(("case", "text", "expected"), SEGMENT_ERRORS, ids=[c[0] for c in SEGMENT_ERRORS])
def test_segment_errors(tmp_path: Path, case: str, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text, "segments.yaml")
    with pytest.raises(ValidationFailed) as info:
        load_segments(path)
    for fragment in expected:
        assert fragment in str(info.value), f"{case}: {fragment!r} not in {info.value}"


def test_load_configs_reports_every_bad_file_and_returns_nothing(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD, "good.yaml")
    bad1 = write(tmp_path, GOOD.replace("max_tokens: 400", "max_tokens: -1"), "bad1.yaml")
    bad2 = write(tmp_path, "key: [", "bad2.yaml")
    with pytest.raises(ValidationFailed) as info:
        load_configs([good, bad1, bad2])
    assert str(bad1) in str(info.value) and str(bad2) in str(info.value)
    assert str(good) not in str(info.value)
    assert len(info.value.problems) == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="no such file"):
        load_config(tmp_path / "nope.yaml")
