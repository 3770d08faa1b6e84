"""Every agency-side CLI command, round-tripped against a real ``gateway serve`` subprocess on 127.0.0.1
(both databases): keys generate (PEM and PKCS#12), send (inline and multipart), inbox, fetch, ack (done and
fail), status send, document, a refusal, and the installed entry point itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from typer.testing import CliRunner, Result

from client_support import serve_process
from gateway.cli import app
from gateway.envelope import verify_receipt
from gw import PDF

G22, H41 = "000.00.00.G22", "000.00.00.H41"


class Cli:
    """``gateway …`` in this process (fast), with the serve subprocess's environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.runner = CliRunner()

    def invoke(self, *args: str | Path, token: str | None = None) -> Result:
        env = {**self.env, "GATEWAY_TOKEN": token or ""}
        return self.runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)

    def __call__(self, *args: str | Path, token: str | None = None) -> str:
        result = self.invoke(*args, token=token)
        assert result.exit_code == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result.stdout


def _field(output: str, label: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(label)]
    return line[len(label):].split()[0]


def test_every_cli_command_round_trips_against_gateway_serve(
    db_url: str, tmp_path: Path, gateway_key_files: tuple[Path, Path]
) -> None:
    keys, inbox_dir = tmp_path / "keys", tmp_path / "inbox"
    small = tmp_path / "cong-van.pdf"
    small.write_bytes(PDF)
    big = tmp_path / "phu-luc.pdf"
    big.write_bytes(PDF + os.urandom(1_200_000))
    with serve_process(db_url, tmp_path / "var", gateway_key_files) as (base, env):
        gateway = Cli({**env, "GATEWAY_URL": base})

        # keys generate: a PEM pair for G22, a password-protected PKCS#12 for H41; both say TEST ONLY.
        out = gateway("keys", "generate", "--agency", G22, "--name", "Văn phòng Chính phủ", "--out", keys)
        assert out.startswith("TEST ONLY")
        assert "UID=000.00.00.G22" in _line(out, "subject")
        out = gateway("keys", "generate", "--agency", H41, "--p12", "--password", "bí-mật", "--out", keys)
        assert (keys / f"{H41}.p12").exists()

        # The register from the console, on the same database the server uses.
        gateway("agency", "add", G22, "--name", "Văn phòng Chính phủ", "--pull", "--cert", keys / f"{G22}.cert.pem")
        gateway("agency", "add", H41, "--name", "UBND tỉnh Nghệ An", "--pull", "--cert", keys / f"{H41}.cert.pem")
        t22 = gateway("token", "create", "--agency", G22).strip().splitlines()[-1]
        t41 = gateway("token", "create", "--agency", H41).strip().splitlines()[-1]

        # send: the small file inline, the big one as a multipart part; the receipt verified and saved.
        g22_key = ("--key", keys / f"{G22}.key.pem", "--cert", keys / f"{G22}.cert.pem")
        out = gateway("send", *g22_key, "--to", H41, "--type", "Công văn", "--subject", "Về việc thử nghiệm CLI",
                      "--agency-name", "Văn phòng Chính phủ", "--number", "7", "--notation", "VPCP-TTĐT",
                      "--inline-limit", "2048", "--receipt", tmp_path / "receipt.xml", small, big, token=t22)
        assert out.startswith("receipt verified")
        doc = _field(out, "gateway document id")
        gateway_cert = x509.load_pem_x509_certificate(gateway_key_files[1].read_bytes())
        receipt = verify_receipt((tmp_path / "receipt.xml").read_bytes(), gateway_cert)
        assert (receipt.gateway_document_id, receipt.sender, receipt.recipients) == (doc, G22, (H41,))
        assert [a.name for a in receipt.attachments] == ["cong-van.pdf", "phu-luc.pdf"]

        # inbox: a table for people, JSON for scripts.
        table = gateway("inbox", token=t41)
        assert f"{G22},{receipt.document_id.split(',')[1]},7/VPCP-TTĐT" in table
        [item] = json.loads(gateway("inbox", "--json", token=t41))
        assert (item["id"], item["multipart"]) == (doc, True)

        # fetch writes the original bytes and both files; ack fixes the received instant.
        out = gateway("fetch", item["delivery_id"], "-o", inbox_dir, "--agency", H41, token=t41)
        assert out.startswith("delivery verified")
        assert (inbox_dir / "cong-van.pdf").read_bytes() == PDF
        assert (inbox_dir / "phu-luc.pdf").read_bytes() == big.read_bytes()
        envelope = (inbox_dir / f"{doc}.edxml").read_text(encoding="utf-8")
        assert "<edXML:OrganName>Văn phòng Chính phủ</edXML:OrganName>" in envelope
        out = gateway("ack", item["delivery_id"], token=t41)
        assert _field(out, "state") == "delivered"
        assert "received at" in out

        # status send, signing with the PKCS#12 file.
        out = gateway("status", "send", "--document", doc, "--code", "03", "--description", "Đã vào sổ",
                      "--key", keys / f"{H41}.p12", "--key-password", "bí-mật", token=t41)
        assert (_field(out, "kind"), _field(out, "recipients")) == ("status", G22)

        # document: where it is, as the sender sees it.
        out = gateway("document", doc, token=t22)
        [row] = [line for line in out.splitlines() if H41 in line]
        assert "delivered" in row
        assert row.rstrip(" │").endswith("03")

        # The sender's inbox: the gateway's 01 and the recipient's 03.
        statuses = {i["status_code"]: i for i in json.loads(gateway("inbox", "--json", token=t22))}
        assert set(statuses) == {"01", "03"}
        out = gateway("fetch", statuses["03"]["delivery_id"], "-o", tmp_path / "g22", token=t22)
        assert "status                03 Đã vào sổ" in out
        assert _field(gateway("ack", statuses["03"]["delivery_id"], token=t22), "state") == "delivered"
        gateway("fetch", statuses["01"]["delivery_id"], "-o", tmp_path / "g22", token=t22)
        out = gateway("ack", statuses["01"]["delivery_id"], "--fail", "hệ thống bận", token=t22)
        assert _field(out, "state") == "failed"

        # A recall by the sender reaches the recipient.
        gateway("status", "send", "--document", doc, "--code", "13", "--description", "Ban hành nhầm", *g22_key,
                token=t22)
        [recall] = json.loads(gateway("inbox", "--json", token=t41))
        assert (recall["kind"], recall["status_code"], recall["refers_to"]) == ("status", "13", doc)

        # A refusal: a line for people, then the problem alone on the last line of standard error.
        refused = gateway.invoke("send", *g22_key, "--to", "000.00.00.H99", "--subject", "x", small, token=t22)
        assert refused.exit_code == 1
        problem = json.loads(refused.stderr.strip().splitlines()[-1])
        assert problem["type"] == "urn:gateway:problem:recipient-unknown"

        # The installed entry point, as a separate process.
        proc = subprocess.run([sys.executable, "-m", "gateway", "inbox", "--json"], capture_output=True, text=True,
                              timeout=120, check=False, env={**env, "GATEWAY_URL": base, "GATEWAY_TOKEN": t41})
        assert proc.returncode == 0, proc.stderr
        assert [i["status_code"] for i in json.loads(proc.stdout)] == ["13"]


def _line(output: str, label: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(label)]
    return line
