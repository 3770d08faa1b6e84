"""Every ledger event type, in one place. ``details`` never holds document content or secrets."""

from __future__ import annotations

from gateway.ledger.chain import GENESIS_TYPE

EVENT_TYPES: dict[str, str] = {
    GENESIS_TYPE: "the first entry of the chain",
    # The register and credentials (actor: the operator, or cli:<os user> for the local console).
    "agency.registered": "an agency was added to the register",
    "agency.updated": "an agency's register entry changed (details: the changed fields)",
    "certificate.added": "a signing certificate was registered for an agency",
    "certificate.revoked": "a signing certificate was revoked",
    "token.issued": "an API token was issued (details: token id, never the token)",
    "token.revoked": "an API token was revoked",
    "operator.created": "an operator account was created",
    # Intake.
    "envelope.accepted": "an envelope was accepted: this entry's instant is the sent instant",
    "envelope.refused": "an envelope was refused (details: rule, envelope digest; never content)",
}
