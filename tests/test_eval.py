"""``canaryflow eval``: local mode and the EvaluationWorkflow, against the provider simulator over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from typer.testing import CliRunner

from activities.evaluation import eval_chunk, eval_prepare
from canaryflow.cli import app
from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.evaluation import CallOutcome, VersionStats, format_table, quantile
from canaryflow.errors import ValidationFailed
from canaryflow.evaluation.models import EvalInput, EvalResult
from canaryflow.evaluation.run import load_dataset, run_local
from canaryflow.providers import factory
from canaryflow.registry import Registry
from canaryflow.registry import traffic as tlog
from canaryflow.sim import QUESTIONS, SimServer, Simulator
from canaryflow.temporal import start_dev_server
from tests.servers import free_port
from workflows.evaluation import EvaluationWorkflow

KEY = "eval-bot"
ROOT = Path(__file__).resolve().parent.parent
TEST_SERVER = str(ROOT / ".venv" / "bin" / "temporal-test-server")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    server = SimServer(Simulator(seed=7, latency_scale=0.0), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def registry(tmp_path: Path, sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """v1 right answers, v2 wrong answers, v3 JSON answers, v4 always failing; 20 logged requests."""
    monkeypatch.setenv("OPENAI_BASE_URL", sim.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-eval")
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    monkeypatch.setenv("CANARYFLOW_DB_URL", url)
    factory.clear_cache()
    reg = Registry(url)
    for marker in ("[sim:quality=1]", "[sim:quality=0]", "[sim:quality=1] [sim:json]", "[sim:error_rate=1]"):
        reg.push_config(ConfigSpec.model_validate({
            "key": KEY, "provider": "openai", "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": f"Answer briefly. {marker}"}]}))
    tlog.record_traffic(reg, [
        tlog.TrafficRecord(request_id=uuid.uuid4().hex, config_key=KEY, version=1, variation="stable",
                           request={"messages": [{"role": "user", "content": q.prompt}]},
                           response={"text": q.answer})
        for q in QUESTIONS
    ])
    yield reg
    factory.clear_cache()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps({"input": q.prompt, "expected": q.answer}) for q in QUESTIONS[:10]))
    return path


def _rows(result: EvalResult) -> dict[int, dict[str, float | int | None]]:
    return {int(r["version"] or 0): r for r in result.rows()}


async def test_local_dataset_accuracy_side_by_side(registry: Registry, dataset: Path) -> None:
    inp = EvalInput(config_key=KEY, versions=[2, 3, 4], dataset=str(dataset), chunk=4)
    seen: list[int] = []
    result = await run_local(inp, registry, lambda done, size: seen.append(done))
    assert seen == [4, 8, 10] and result.items == 10 and result.stable_version == 1
    rows = _rows(result)
    assert list(rows) == [1, 2, 3, 4]  # stable first, as the reference
    assert rows[1]["accuracy_exact"] == 1.0 and rows[1]["error_rate"] == 0.0
    assert rows[2]["accuracy_exact"] == 0.0 and rows[2]["agreement"] is not None
    assert float(rows[2]["agreement"] or 0) < 0.5
    assert rows[3]["accuracy_exact"] == 0.0 and rows[3]["accuracy_contains"] == 1.0  # {"answer": "Paris"}
    assert rows[4]["error_rate"] == 1.0 and rows[4]["latency_p50_s"] is None
    assert rows[4]["accuracy_exact"] == 0.0
    assert all(r["calls"] == 10 for r in rows.values())
    assert rows[1]["tokens_per_request"] is not None and float(rows[1]["tokens_per_request"] or 0) > 0
    assert float(rows[1]["cost_per_request"] or 0) > 0  # gpt-4o-mini is in the price table
    table = result.table()
    assert "v1" in table and "v4" in table and "acc exact" in table and "100.0%" in table


async def test_local_traffic_sample_agreement(registry: Registry) -> None:
    result = await run_local(EvalInput(config_key=KEY, versions=[2], sample=12), registry)
    rows = _rows(result)
    assert result.items == 12
    assert rows[1]["agreement"] == 1.0  # stable answers match the logged stable answers
    assert float(rows[2]["agreement"] or 0) < 0.5
    assert rows[1]["accuracy_exact"] is None  # recorded traffic has no expected answers


def test_cli_local_prints_table_and_json(registry: Registry, dataset: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["eval", KEY, "--versions", "2", "--dataset", str(dataset), "--local"])
    assert out.exit_code == 0, out.output
    assert "acc exact" in out.stdout and "v2" in out.stdout
    out = runner.invoke(app, ["eval", KEY, "--versions", "2", "--dataset", str(dataset), "--local", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [v["version"] for v in data["versions"]] == [1, 2]


@pytest.mark.parametrize("shell", ["no provider variables", "nothing listening"])
def test_cli_local_where_every_call_fails_exits_1_naming_the_cause(
        registry: Registry, dataset: Path, monkeypatch: pytest.MonkeyPatch, shell: str) -> None:
    """A shell without the dev stack's variables: the table still shows, then one line says why, exit 1."""
    monkeypatch.delenv("OPENAI_BASE_URL")
    if shell == "no provider variables":
        monkeypatch.delenv("OPENAI_API_KEY")
        wanted = ["OPENAI_API_KEY is not set", "OPENAI_BASE_URL is not set, so openai calls went to "
                  "https://api.openai.com/v1"]
    else:
        closed = f"http://127.0.0.1:{free_port()}/v1"
        monkeypatch.setenv("OPENAI_BASE_URL", closed)
        wanted = [f"openai calls to OPENAI_BASE_URL={closed} could not connect"]
    factory.clear_cache()
    out = CliRunner().invoke(app, ["eval", KEY, "--versions", "2", "--dataset", str(dataset), "--local"])
    assert out.exit_code == 1, out.output
    assert "v2" in out.stdout
    message = str(out.exception)
    assert message.startswith("every one of the 20 calls failed ("), message
    assert "in this shell" in message and ". .canaryflow/env" in message
    for text in wanted:
        assert text in message, message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--versions", "x"], "--versions"),
        (["--versions", "2", "--sample", "5", "--dataset", "f.jsonl"], "not both"),
        (["--versions", "9", "--sample", "5"], "9"),
    ],
)
def test_cli_user_errors(registry: Registry, args: list[str], message: str) -> None:
    out = CliRunner().invoke(app, ["eval", KEY, *args, "--local"])
    assert out.exit_code != 0
    assert message in str(out.exception)


def test_dataset_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "ok", "expected": "x"}\n{"question": "no input"}\n')
    with pytest.raises(ValidationFailed, match=r"bad.jsonl:2: give 'input'"):
        load_dataset(str(bad))
    bad.write_text("{not json\n")
    with pytest.raises(ValidationFailed, match=r":1: not JSON"):
        load_dataset(str(bad))


def test_version_stats_merge_and_table() -> None:
    a, b = VersionStats(version=3), VersionStats(version=3)
    ok = CallOutcome(ok=True, text="Paris", latency_s=0.1, input_tokens=5, output_tokens=2)
    a.add(ok, reference="paris", expected="Paris")
    b.add(CallOutcome(ok=False, error_type="rate_limit"), expected="Paris")
    b.add(CallOutcome(ok=True, text="Lyon", latency_s=0.3), reference="Paris", expected="Paris")
    a.merge(b)
    s = a.summary()
    assert s["calls"] == 3 and s["error_rate"] == pytest.approx(1 / 3)
    assert s["accuracy_exact"] == pytest.approx(1 / 3) and s["exact_agreement"] == 0.5
    assert a.error_types == {"rate_limit": 1} and sorted(a.latencies_s) == [0.1, 0.3]
    assert s["accuracy_json"] is None  # no expected answer was JSON
    a.add(CallOutcome(ok=True, text='{"a": 1}'), expected='{"a": 1}')
    a.add(CallOutcome(ok=True, text="a: 1"), expected='{"a": 1}')
    assert a.summary()["accuracy_json"] == 0.5
    assert quantile([1.0, 2.0, 3.0], 0.5) == 2.0 and quantile([], 0.5) is None
    assert "33.3%" in format_table([s])


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEST_SERVER, data_converter=pydantic_data_converter)
    yield environment
    await environment.shutdown()


@pytest.mark.temporal
async def test_workflow_runs_chunks_and_reports(env: WorkflowEnvironment, registry: Registry,
                                                dataset: Path) -> None:
    queue = f"eval-{uuid.uuid4().hex[:8]}"
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("pydantic", "canaryflow"))
    async with Worker(env.client, task_queue=queue, workflows=[EvaluationWorkflow],
                      activities=[eval_prepare, eval_chunk], workflow_runner=runner):
        inp = EvalInput(config_key=KEY, versions=[2], dataset=str(dataset), chunk=3)
        handle = await env.client.start_workflow(EvaluationWorkflow.run, inp, id=f"eval-{queue}",
                                                 task_queue=queue)
        result = await handle.result()
        assert await handle.query(EvaluationWorkflow.progress) == {"done": 10, "size": 10}
        history = await handle.fetch_history()
    rows = _rows(result)
    assert rows[1]["accuracy_exact"] == 1.0 and rows[2]["accuracy_exact"] == 0.0
    chunks = [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    assert len(chunks) == 1 + 4  # prepare + ceil(10 / 3) chunks
    assert "Paris" not in str(history)  # numbers only in the history, no answers


@pytest.mark.temporal
def test_cli_runs_the_workflow_on_the_dev_server(registry: Registry, dataset: Path, sim: SimServer,
                                                 tmp_path: Path) -> None:
    """``canaryflow eval`` without --local: the stock worker (``python worker.py``) runs the workflow."""
    server = start_dev_server(port=free_port(), ui_port=None, db_file=tmp_path / "temporal.db",
                              log_file=tmp_path / "server.log")
    env = {**os.environ, "CANARYFLOW_TEMPORAL_ADDRESS": server.address, "CANARYFLOW_DB_URL": registry.url,
           "CANARYFLOW_TASK_QUEUE": f"eval-{uuid.uuid4().hex[:8]}", "OPENAI_BASE_URL": sim.openai_base_url,
           "OPENAI_API_KEY": "sk-test-eval"}
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        cli = str(Path(sys.executable).parent / "canaryflow")
        out = subprocess.run([cli, "eval", KEY, "--versions", "2,3", "--dataset", str(dataset)], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr + (tmp_path / "worker.log").read_text()
        assert "started workflow eval-eval-bot-" in out.stderr
        lines = {line.split()[0] + (" " + line.split()[1] if line.startswith("acc") else ""): line.split()
                 for line in out.stdout.splitlines()[1:] if line.strip()}
        assert lines["measure"][1:] == ["v1", "v2", "v3"]
        assert lines["acc exact"][2:] == ["100.0%", "0.0%", "0.0%"]
        assert lines["acc contains"][2:] == ["100.0%", "0.0%", "100.0%"]
        missing = subprocess.run([cli, "eval", KEY, "--versions", "9", "--dataset", str(dataset)], env=env,
                                 capture_output=True, text=True, timeout=120, check=False)
        assert missing.returncode == 1 and "failed" in missing.stderr
        assert "has no version 9" in missing.stderr, missing.stderr
        assert "Traceback" not in missing.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.stop()
