"""``gateway verify-proof``: a document's proof bundle verified offline (gateway.ledger.bundle).

A module of its own so that both scripts carry it: the whole command (:mod:`gateway.cli`) and the agency client
alone (:mod:`gateway.command`, where the server is not installed): checking a proof needs no server, no
database and no network, only ``cryptography`` and the standard library (and asn1crypto for a timestamp token).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer


def verify_proof(
    bundle: Annotated[str, typer.Argument(help="the proof bundle JSON file, or - for standard input")],
    gateway_cert: Annotated[Path | None, typer.Option(
        "--gateway-cert", metavar="PEM",
        help="the gateway certificate, learnt out of band (without it the bundle's own is used, NOT pinned)")] = None,
    tsa_cert: Annotated[list[Path] | None, typer.Option(
        "--tsa-cert", metavar="PEM",
        help="the timestamping authority's certificate(s) to pin (repeatable; without it the token's own)")] = None,
) -> None:
    """Verify a document's proof bundle offline (GET /v1/documents/{id}/proof): no database, no network.

    Prints what was proven and exits 0, or the step that failed and exits 1.

    Proven: the sent instant and each recipient's received instant (+07:00 and UTC), their ledger entries
    included in the tree the gateway's signed checkpoint names, the checkpoint's signer, and the timestamp.

    Not verified offline: the receipt's own XML signature (the proof rests on the ledger entries instead).
    A bundle with a timestamp token needs asn1crypto.
    """
    # No Settings(), no database: everything comes from the files named on the command line.
    from cryptography import x509 as crypto_x509

    from gateway.ledger.bundle import MAX_BUNDLE_BYTES, BundleError, describe, verify_bundle

    def refuse(message: str) -> NoReturn:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(code=1)

    def certificates(path: Path, option: str) -> list[crypto_x509.Certificate]:
        try:
            found = crypto_x509.load_pem_x509_certificates(path.read_bytes())
        except OSError as exc:
            refuse(f"{option}: cannot read {path}: {exc.strerror or exc}")
        except ValueError:
            refuse(f"{option}: {path} holds no readable PEM certificate")
        return found

    try:
        if bundle == "-":
            data = sys.stdin.buffer.read(MAX_BUNDLE_BYTES + 1)
        else:
            with Path(bundle).open("rb") as handle:
                data = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        refuse(f"cannot read {bundle}: {exc.strerror or exc}")
    pinned: crypto_x509.Certificate | None = None
    if gateway_cert is not None:
        given = certificates(gateway_cert, "--gateway-cert")
        if len(given) != 1:
            refuse(f"--gateway-cert: {gateway_cert} holds {len(given)} certificates, not one")
        pinned = given[0]
    authorities = [c for path in tsa_cert or () for c in certificates(path, "--tsa-cert")] or None
    try:
        verdict = verify_bundle(data, gateway_certificate=pinned, tsa_certificates=authorities)
    except BundleError as exc:
        typer.echo(f"NOT VERIFIED: {exc}")
        raise typer.Exit(code=1) from None
    for line in describe(verdict):
        typer.echo(line)
