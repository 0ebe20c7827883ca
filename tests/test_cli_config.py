"""The config/segment/serve/resolve/audit commands: output, --json, exit codes 0/1/2, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from canaryflow.cli import app
from canaryflow.cli._common import run_app
from canaryflow.cli.config_cmds import parse_value

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIGS = [str(EXAMPLES / f"support-bot.v{i}.yaml") for i in (1, 2, 3)]


class Cli:
    def __init__(self, db: str, capsys: pytest.CaptureFixture[str]):
        self.db = db
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = run_app(app, [*args, "--db", self.db])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'cli.db'}", capsys)


@pytest.fixture
def pushed(cli: Cli) -> Cli:
    assert cli("config", "push", *CONFIGS)[0] == 0
    assert cli("segment", "push", str(EXAMPLES / "segments.yaml"), "--by", "alice")[0] == 0
    return cli


def test_push_prints_versions_and_unchanged(cli: Cli) -> None:
    code, out, _ = cli("config", "push", *CONFIGS)
    first = "support-bot v1 (the first version: now stable)"
    assert (code, out.splitlines()) == (0, [first, "support-bot v2",
                                            "support-bot v3"])
    code, out, _ = cli("config", "push", CONFIGS[1], "--author", "bob")
    assert (code, out.strip()) == (0, "support-bot v2 unchanged")


def test_segment_push_says_created_then_unchanged_then_changed(cli: Cli, tmp_path: Path) -> None:
    segments = EXAMPLES / "segments.yaml"
    code, out, _ = cli("segment", "push", str(segments), "--by", "alice")
    assert (code, out.splitlines()) == (0, ["segment internal created", "segment beta created"])
    assert cli("segment", "push", str(segments), "--by", "alice")[1].splitlines() == \
        ["segment internal unchanged", "segment beta unchanged"]
    edited = tmp_path / "segments.yaml"
    edited.write_text(segments.read_text().replace("@acme.com", "@acme.example"))
    assert cli("segment", "push", str(edited), "--by", "alice")[1].splitlines() == \
        ["segment internal changed", "segment beta unchanged"]


def test_a_bad_file_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(CONFIGS[0]).read_text().replace("temperature: 0.3", "temperature: 7"))
    code, out, err = cli("config", "push", CONFIGS[0], str(bad))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "bad.yaml" in err and "parameters.temperature" in err
    assert cli.json("config", "list") == []


def test_read_commands_json(pushed: Cli) -> None:
    cli = pushed
    [summary] = cli.json("config", "list")
    assert summary | {"revision": 0} == {"key": "support-bot", "latest_version": 3, "stable_version": 1,
                                         "candidate_version": None, "stage_kind": "none", "revision": 0}
    shown = cli.json("config", "show", "support-bot", "--version", "2")
    assert (shown["version"], shown["author"], shown["spec"]["parameters"]["max_tokens"]) == (2, "alice", 400)
    assert cli.json("config", "show", "support-bot")["version"] == 3
    diff = cli.json("config", "diff", "support-bot", "1", "2")
    assert diff["changed_fields"] == ["messages", "parameters"]
    assert any(line.startswith("+") and "max_tokens: 400" in line for line in diff["diff"])
    history = cli.json("config", "history", "support-bot")
    assert [v["version"] for v in history["versions"]] == [1, 2, 3] and history["stable_version"] == 1
    assert [s["name"] for s in cli.json("segment", "list")] == ["internal", "beta"]  # the file's order
    assert cli.json("serve", "show", "support-bot")["stable_version"] == 1


def test_tables_for_people(pushed: Cli) -> None:
    code, out, _ = pushed("config", "list")
    assert code == 0 and "support-bot" in out and "v3" in out
    code, out, _ = pushed("config", "history", "support-bot")
    assert code == 0 and "shorter answers" in out and "stable" in out
    code, out, _ = pushed("config", "diff", "support-bot", "2", "3")
    assert code == 0 and "+  content:" in out and "[sim:error_rate=0.25]" in out
    code, out, _ = pushed("segment", "list")
    assert code == 0 and "email ends_with '@acme.com'" in out
    code, out, _ = pushed("serve", "show", "support-bot")
    assert code == 0 and "stable" in out and "v1" in out


def test_serve_changes_are_audited(pushed: Cli) -> None:
    cli = pushed
    code, out, _ = cli("serve", "set-stable", "support-bot", "2", "--by", "alice", "--reason", "cheaper")
    assert code == 0 and out.startswith("support-bot: stable v2 (revision")
    code, out, _ = cli("serve", "pin", "support-bot", "--segment", "internal", "--version", "3",
                       "--by", "bob", "--reason", "dogfood")
    assert code == 0 and "pinned to v3" in out
    res = cli.json("resolve", "support-bot", "--user", "u1", "--attr", "email=a@acme.com", "--var",
                   "product=Acme")
    assert (res["version"], res["variation"], res["segment"]) == (3, "pinned", "internal")
    assert res["messages"][0]["content"].startswith("You are the support assistant for Acme.")
    beta = cli.json("resolve", "support-bot", "--user", "u2", "--attr", "beta=true", "--var", "product=X")
    assert (beta["version"], beta["segment"]) == (2, "beta")
    assert cli.json("resolve", "support-bot", "--user", "u2", "--attr", "beta=yes", "--var",
                    "product=X")["segment"] == "none"
    code, out, _ = cli("serve", "unpin", "support-bot", "--segment", "internal", "--by", "bob",
                       "--reason", "done")
    assert code == 0 and "unpinned" in out
    events = cli.json("audit", "support-bot")
    assert [e["action"] for e in events][-3:] == ["set_stable", "pin", "unpin"]
    assert (events[-2]["actor"], events[-2]["reason"], events[-2]["source"]) == ("bob", "dogfood", "cli")
    code, out, _ = cli("audit", "--limit", "3")
    assert code == 0 and "unpin" in out and "dogfood" in out


USER_ERRORS = [
    (["config", "show", "nope"], "unknown config 'nope'"),
    (["config", "show", "support-bot", "--version", "9"], "no version 9"),
    (["serve", "set-stable", "support-bot", "9", "--by", "a", "--reason", "r"], "no version 9"),
    (["serve", "pin", "support-bot", "--segment", "gold", "--version", "1", "--by", "a", "--reason", "r"],
     "unknown segment"),
    (["resolve", "support-bot", "--user", "u"], "needs variable 'product'"),
    (["config", "push", "/no/such/file.yaml"], "no such file"),
]


@pytest.mark.parametrize(("args", "message"), USER_ERRORS, ids=[" ".join(a[:2]) + m for a, m in USER_ERRORS])
def test_user_errors_exit_1_with_one_line(pushed: Cli, args: list[str], message: str) -> None:
    code, out, err = pushed(*args)
    assert code == 1, (out, err)
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


USAGE_ERRORS = [
    ["serve", "set-stable", "support-bot", "2", "--reason", "no by"],
    ["resolve", "support-bot", "--user", "u", "--attr", "novalue"],
    ["config", "show"],
    ["config", "list", "--bogus"],
    ["config", "frobnicate"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=[" ".join(a) for a in USAGE_ERRORS])
def test_usage_errors_exit_2(pushed: Cli, args: list[str]) -> None:
    code, _, err = pushed(*args)
    assert code == 2
    assert "Traceback" not in err


@pytest.mark.parametrize(("text", "value"), [("true", True), ("False", False), ("42", 42), ("-1.5", -1.5),
                                             ("pro", "pro"), ("", ""), ("1e3", 1000.0)])
def test_attribute_values_are_typed(text: str, value: Any) -> None:
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_the_installed_command_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "CANARYFLOW_DB_URL": f"sqlite:///{tmp_path / 'e2e.db'}"}
    exe = [str(Path(sys.executable).parent / "canaryflow")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*exe, *args], env=env, capture_output=True, text=True, timeout=60)

    assert run("config", "push", *CONFIGS).returncode == 0
    listed = run("config", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["latest_version"] == 3
    missing = run("serve", "show", "nope")
    assert missing.returncode == 1 and missing.stderr.startswith("error: unknown config")
    assert "Traceback" not in missing.stderr
    assert run("serve", "pin", "support-bot").returncode == 2


def test_serve_changes_during_a_rollout_need_force(pushed: Cli) -> None:
    cli = pushed
    from canaryflow.registry import Registry

    reg = Registry(cli.db)
    reg.claim("support-bot", "rollout-support-bot", by="carol", reason="rollout of v2")
    reg.close()
    code, _, err = cli("serve", "set-stable", "support-bot", "2", "--by", "ops", "--reason", "hotfix")
    assert code == 1 and "being rolled out by workflow rollout-support-bot" in err and "--force" in err
    code, out, _ = cli("serve", "set-stable", "support-bot", "2", "--by", "ops", "--reason", "hotfix",
                       "--force")
    assert code == 0 and out.startswith("support-bot: stable v2")
    assert cli.json("audit", "support-bot")[-1]["action"] == "set_stable_forced"
    code, out, _ = cli("serve", "show", "support-bot")
    assert "rollout-support-bot" in out  # owned by
