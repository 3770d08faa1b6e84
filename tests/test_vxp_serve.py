"""The national axis face over real HTTP: ``gateway serve`` on 127.0.0.1, the agency and the VXP systems made with
the CLI as an operator would, and the SDK-like client sending through a real socket (``Expect: 100-continue``,
the trailing CRLF, the leaking header map). Both databases; bounded in time."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings
from gateway.envelope import DocumentSpec, InlineFile, Organ, build_document
from gw import PDF
from pg import free_port
from real_processes import gateway_cli, serving
from vxp_sdk import VxpSdk


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_PORT": str(port),
           "GATEWAY_DATABASE_URL": settings.effective_database_url, "GATEWAY_RUN_WORKERS": "false"}
    with serving(env, port, tmp_path, tmp_path / "serve.log"):
        yield f"http://127.0.0.1:{port}", env


async def test_an_sdk_like_client_over_a_real_socket(served: tuple[str, dict[str, str]]) -> None:
    base, env = served
    for code, name in (("000.00.00.G22", "Văn phòng Chính phủ"), ("000.00.00.H41", "UBND tỉnh Nghệ An")):
        gateway_cli(env, "agency", "add", code, "--name", name, "--pull", "--policy", "channel")
    sender = json.loads(gateway_cli(env, "vxp", "system", "create", "--agency", "000.00.00.G22")
                        .strip().splitlines()[-1])
    recipient = json.loads(gateway_cli(env, "vxp", "system", "create", "--agency", "000.00.00.H41", "--serves",
                                "agency").strip().splitlines()[-1])
    envelope = build_document(DocumentSpec(
        sender=Organ("000.00.00.G22", "Văn phòng Chính phủ"), recipients=(Organ("000.00.00.H41", "UBND"),),
        attachments=(InlineFile("cong-van.pdf", PDF, "application/pdf"),)))
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        sdk = VxpSdk(client, "/vxp", sender["system_id"], sender["secret"])
        rsdk = VxpSdk(client, "/vxp", recipient["system_id"], recipient["secret"])
        sent = await sdk.send_edoc(envelope, "000.00.00.G22")
        assert sent.json is not None, sent.response.text
        assert sent.json["status"] == "OK", sent.json
        listed = await rsdk.get_received_edoc_list()
        assert listed.json is not None
        assert [i["from"] for i in listed.json["data"]] == ["000.00.00.G22"]
        got = await rsdk.get_edoc(listed.json["data"][0]["docId"])
        assert got.data == envelope
        done = await rsdk.update_status(listed.json["data"][0]["docId"], "done")
        assert done.json is not None
        assert done.json["status"] == "OK", done.json
        rows = await sdk.get_sent_edoc_list(sent.json["DocId"])
        assert rows.json is not None
        assert [r["receiveStatus"] for r in rows.json["data"]] == ["delivered"]
        bad = await VxpSdk(client, "/vxp", sender["system_id"], "wrong").count_receive_edoc()
        assert bad.response.status_code == 401
        assert bad.json is not None
        assert bad.json["ErrorCode"] == "vxp-hmac-invalid"
