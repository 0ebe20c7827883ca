"""Payload encryption: a rollout on the time-skipping server with AES-GCM payloads (history unreadable without
the key, readable with it), and the codec server the Temporal UI calls."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from canaryflow.codec_server import build_codec_app
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.errors import CanaryflowError, ValidationFailed
from canaryflow.sim.server import ThreadedServer
from canaryflow.temporal import ensure_search_attributes, workflow_id
from canaryflow.temporal_codec import AesGcmCodec, data_converter, parse_key
from tests.rollout_fixtures import ScriptedAnalysis, drive, make_registry, unique_key
from worker import build_worker

pytestmark = pytest.mark.temporal
TEST_SERVER = str(Path(".venv/bin/temporal-test-server").resolve())
KEY = bytes.fromhex(secrets.token_hex(32))
REASON = "PLAINTEXT-REASON-" + uuid.uuid4().hex


async def test_rollout_payloads_are_encrypted_in_the_history(tmp_path: Path) -> None:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER,
                                                        data_converter=data_converter(KEY))
    key = unique_key("enc")
    registry = make_registry(tmp_path / "registry.db", key)
    try:
        await ensure_search_attributes(env.client)
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        plan = {"stages": [{"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "2m"},
                           {"name": "full", "kind": "full"}], "gates": []}
        async with build_worker(env.client, registry, task_queue=queue,
                                activities=[ScriptedAnalysis().analyze_stage]):
            handle = await env.client.start_workflow(
                "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": plan,
                                    "requested_by": "carol", "reason": REASON},
                id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)

            async def never(_: RolloutStatus) -> bool:
                return False

            await drive(env, handle, never, step=60)
            status = await handle.result()
        assert status.state == "promoted" and status.reason == REASON
        raw = (await handle.fetch_history()).to_json()
        assert REASON not in raw and "requested_by" not in raw
        assert base64.b64encode(b"binary/encrypted").decode() in raw
        # A client without the key sees ciphertext; the codec decodes it back.
        plain = Client(env.client.service_client, namespace=env.client.namespace,
                       data_converter=pydantic_data_converter)
        events = [e async for e in plain.get_workflow_handle(handle.id).fetch_history_events()]
        payload = events[0].workflow_execution_started_event_attributes.input.payloads[0]
        assert payload.metadata["encoding"] == b"binary/encrypted"
        decoded = await AesGcmCodec(KEY).decode([payload])
        assert REASON in decoded[0].data.decode()
        assert registry.serving_state(key).stable_version == 2
    finally:
        registry.close()
        await env.shutdown()


async def test_a_wrong_key_is_named_by_id_and_never_shown() -> None:
    other = bytes.fromhex(secrets.token_hex(32))
    sealed = await AesGcmCodec(KEY).encode([Payload(metadata={"encoding": b"json/plain"}, data=b'{"a":1}')])
    with pytest.raises(CanaryflowError) as err:
        await AesGcmCodec(other).decode(sealed)
    assert AesGcmCodec(KEY).key_id in str(err.value) and KEY.hex() not in str(err.value)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b"1")
    assert (await AesGcmCodec(KEY).decode([plain]))[0] == plain  # histories from before encryption
    with pytest.raises(ValidationFailed) as bad:
        parse_key("not-a-key")
    assert bad.value.source == "CANARYFLOW_PAYLOAD_KEY" and "not-a-key" not in str(bad.value)
    assert parse_key(base64.urlsafe_b64encode(KEY).decode()) == KEY == parse_key(KEY.hex())


def test_codec_server_round_trip_and_cors() -> None:
    server = ThreadedServer(build_codec_app(KEY, ["http://localhost:8233"]))
    server.start()
    try:
        body = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                              "data": base64.b64encode(b'{"by": "alice"}').decode()}]}
        enc = httpx.post(f"{server.url}/encode", json=body, headers={"origin": "http://localhost:8233"})
        assert enc.status_code == 200
        assert enc.headers["access-control-allow-origin"] == "http://localhost:8233"
        sealed = enc.json()
        assert base64.b64decode(sealed["payloads"][0]["metadata"]["encoding"]) == b"binary/encrypted"
        dec = httpx.post(f"{server.url}/decode", json=sealed, headers={"x-namespace": "default"})
        assert dec.json() == body
        pre = httpx.options(f"{server.url}/decode", headers={"origin": "http://localhost:8233"})
        assert pre.status_code == 204 and "x-namespace" in pre.headers["access-control-allow-headers"]
        foreign = httpx.options(f"{server.url}/decode", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers
        bad = httpx.post(f"{server.url}/decode", content=b"{not json")
        assert bad.status_code == 400 and "payloads" in bad.json()["error"]
        wrong = ThreadedServer(build_codec_app(bytes(32), []))
        wrong.start()
        try:
            refused = httpx.post(f"{wrong.url}/decode", content=json.dumps(sealed))
            assert refused.status_code == 400 and "key id" in refused.json()["error"]
        finally:
            wrong.stop()
    finally:
        server.stop()
