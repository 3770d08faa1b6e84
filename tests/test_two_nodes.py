"""Two gateway nodes that share only PostgreSQL: no disk, with ``GATEWAY_BLOB_STORE=postgresql``.

Two real ``gateway serve`` processes, each with its own data directory, on the same database and with the same
gateway key files. Node 1 takes documents in and runs no push worker; node 2 runs the workers. A document with a
20 MiB attachment sent as a multipart part is accepted by node 1, pushed by node 2's worker to a real recipient
server, and downloaded through node 2's API by a pull recipient: the same bytes everywhere (SHA-256), although
node 2 never saw the upload, and neither data directory holds a blob file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from delivery_support import Recipient, eventually, split_multipart
from gateway.auth.service import AuthService
from gateway.db import create_database
from gateway.envelope import InlineFile, LargeFile
from gw import PDF, register
from pg import free_port
from real_processes import serving

BIG = PDF + os.urandom(20 * 1024 * 1024)  # a PDF head and 20 MiB more


def _blob_files(data_dir: Path) -> list[Path]:
    root = data_dir / "blobs"
    return [p for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts]


@pytest.fixture
def push_recipient(gateway_key_files: tuple[Path, Path]) -> Iterator[Recipient]:
    certificate = x509.load_pem_x509_certificate(gateway_key_files[1].read_bytes())
    server = Recipient("000.00.00.H41", certificate).start()
    yield server
    server.stop()


async def _admin(pg_url: str) -> dict[str, str]:
    db = create_database(pg_url)
    try:
        async with db.transaction() as session:
            _, _, token = await AuthService(session).create_operator("admin", "admin", actor="console:test")
    finally:
        await db.dispose()
    return {"Authorization": f"Bearer {token}"}


async def test_a_document_accepted_by_one_node_is_delivered_by_the_other(
    pg_url: str, tmp_path: Path, gateway_key_files: tuple[Path, Path], push_recipient: Recipient
) -> None:
    key_file, cert_file = gateway_key_files
    common = {**os.environ, "GATEWAY_DATABASE_URL": pg_url, "GATEWAY_BLOB_STORE": "postgresql",
              "GATEWAY_SIGNING_KEY_FILE": str(key_file), "GATEWAY_SIGNING_CERT_FILE": str(cert_file),
              "GATEWAY_WORKERS": "1", "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_WORKER_POLL_SECONDS": "0.1"}
    common.pop("PROMETHEUS_MULTIPROC_DIR", None)
    nodes = []
    with ExitStack() as stack:
        for n, run_workers in ((1, "false"), (2, "true")):
            port = free_port()
            data_dir = tmp_path / f"node{n}"
            env = {**common, "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_PORT": str(port),
                   "GATEWAY_RUN_WORKERS": run_workers}
            stack.enter_context(serving(env, port, tmp_path, tmp_path / f"node{n}.log"))
            nodes.append((f"http://127.0.0.1:{port}", data_dir))
        (one, one_dir), (two, two_dir) = nodes
        admin = await _admin(pg_url)
        async with httpx.AsyncClient(base_url=one, timeout=60) as node1, \
                httpx.AsyncClient(base_url=two, timeout=60) as node2:
            g22 = await register(node1, admin, "000.00.00.G22", "Văn phòng Chính phủ")
            h41 = await register(node1, admin, push_recipient.code, "UBND tỉnh Nghệ An",
                                 delivery=push_recipient.delivery)
            k10 = await register(node1, admin, "000.00.00.K10", "Sở Tư pháp tỉnh Nghệ An")
            xml = g22.envelope(h41, k10, attachments=(
                InlineFile("cong-van.pdf", PDF, "application/pdf"),
                LargeFile.from_bytes("phu-luc.pdf", BIG, content_type="application/pdf", content_id="cid:phu-luc"),
            ))
            r = await node1.post("/v1/envelopes", headers=g22.headers, files={
                "envelope": ("envelope.edxml", xml, "application/xml"),
                "phu-luc": ("phu-luc.pdf", BIG, "application/pdf"),
            })
            assert r.status_code == 201, r.text
            document = r.headers["X-Gateway-Document-Id"]
            big_digest = hashlib.sha256(BIG).hexdigest()

            # pushed by node 2's worker (node 1 runs none): the envelope and the 20 MiB part, exact
            await eventually(lambda: bool(push_recipient.delivered()), within=60, what="the push delivery")
            arrival = push_recipient.delivered()[0]
            assert (arrival.document, arrival.verified, arrival.error) == (document, True, None)
            assert arrival.envelope == xml
            assert arrival.parts == {"phu-luc": big_digest}

            # pulled through node 2's API: inbox, then the download with its parts
            inbox = (await node2.get("/v1/inbox", headers=k10.headers)).json()["items"]
            assert [(i["id"], i["multipart"]) for i in inbox] == [(document, True)]
            download = await node2.get(f"/v1/inbox/{inbox[0]['delivery_id']}", headers=k10.headers)
            assert download.status_code == 200
            assert download.headers["X-Gateway-Content-Sha256"] == hashlib.sha256(xml).hexdigest()
            parts = split_multipart(download.content, download.headers["Content-Type"])
            assert parts["envelope"][1] == xml
            assert hashlib.sha256(parts["phu-luc"][1]).hexdigest() == big_digest
            assert len(parts["phu-luc"][1]) == len(BIG)
            ack = await node2.post(f"/v1/inbox/{inbox[0]['delivery_id']}/ack", headers=k10.headers,
                                   json={"result": "done"})
            assert ack.status_code == 200, ack.text

    # nothing went through a disk the nodes would have to share
    assert _blob_files(one_dir) == []
    assert _blob_files(two_dir) == []
