"""Scenario helpers: register agencies with real keys and tokens, build and sign real envelopes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from certs import KeyPair, make_keypair
from gateway.documents.models import Attachment, Delivery, Document
from gateway.envelope import DocumentSpec, InlineFile, Organ, build_document, sign
from gateway.ledger.models import LedgerEntry

# A minimal but well-formed PDF (content sniffing needs the real magic).
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


@dataclass
class Agency:
    code: str
    name: str
    keys: KeyPair
    token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def organ(self) -> Organ:
        return Organ(self.code, self.name)

    def envelope(self, *to: Agency, sign_it: bool = True, **spec: Any) -> bytes:
        spec.setdefault("attachments", (InlineFile("cong-van.pdf", PDF, "application/pdf"),))
        document = DocumentSpec(sender=self.organ, recipients=tuple(a.organ for a in to), **spec)
        xml = build_document(document)
        return self.sign(xml) if sign_it else xml

    def sign(self, xml: bytes, keys: KeyPair | None = None) -> bytes:
        k = keys or self.keys
        return sign(xml, k.key, k.cert, algorithm="ecdsa-sha256")  # type: ignore[arg-type]


async def register(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    code: str,
    name: str = "Cơ quan thử nghiệm",
    *,
    delivery: dict[str, Any] | None = None,
    policy: str = "required",
    keys: KeyPair | None = None,
    aliases: Sequence[str] = (),
) -> Agency:
    body: dict[str, Any] = {"code": code, "name": name, "delivery": delivery or {"mode": "pull"},
                            "signature_policy": policy}
    if aliases:
        body["aliases"] = list(aliases)
    r = await client.post("/v1/agencies", json=body, headers=admin)
    assert r.status_code == 201, r.text
    kp = keys or make_keypair(name)
    r = await client.post(f"/v1/agencies/{code}/certificates", json={"pem": kp.cert_pem}, headers=admin)
    assert r.status_code == 201, r.text
    token = (await client.post(f"/v1/agencies/{code}/tokens", headers=admin)).json()["token"]
    return Agency(code=code, name=name, keys=kp, token=token)


def with_spec(**kwargs: Any) -> dict[str, Any]:
    return kwargs


async def submit(client: httpx.AsyncClient, agency: Agency, xml: bytes) -> httpx.Response:
    return await client.post("/v1/envelopes", content=xml,
                             headers={**agency.headers, "Content-Type": "application/xml"})


@dataclass(frozen=True)
class Stored:
    documents: int
    attachments: int
    deliveries: int
    ledger: int
    blobs: int


async def stored(app: FastAPI) -> Stored:
    async with app.state.db.transaction() as session:
        async def count(model: Any) -> int:
            return int((await session.execute(select(func.count()).select_from(model))).scalar_one())

        docs, atts, dels, led = (await count(Document), await count(Attachment), await count(Delivery),
                                 await count(LedgerEntry))
    root = app.state.blobs.root
    blobs = sum(1 for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts)
    return Stored(docs, atts, dels, led, blobs)


async def last_entry(app: FastAPI) -> LedgerEntry:
    async with app.state.db.transaction() as session:
        result = await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1))
        return result.scalar_one()


def only_ledger_grew(before: Stored, after: Stored, by: int = 1) -> bool:
    return dataclasses.replace(after, ledger=before.ledger) == before and after.ledger == before.ledger + by
