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
    "token.issued": "an API token was issued (details: token_id, agency or operator, expires_at when it expires; "
                    "never the token)",
    "token.revoked": "an API token was revoked (details: token_id, agency or operator)",
    "operator.created": "an operator account was created (details: operator, role, token_id of its first token, "
                        "expires_at when that token expires)",
    "operator.revoked": "an operator account was revoked: its tokens were revoked and its console sessions ended "
                        "(details: operator, role, tokens_revoked, console_sessions_ended)",
    "console.signed_in": "an operator signed in to the web console with a token (details: token_id; never the "
                         "token or the session cookie)",
    "console.signed_out": "an operator signed out of the web console (details: token_id)",
    "vxp_system.created": "a VXP system (national axis protocol credential) was created for an agency "
                          "(details: system_id, serves; never the secret)",
    "vxp_system.revoked": "a VXP system was revoked (details: system_id)",
    "vxp.refused": "a call on the national axis face (/vxp) was refused, other than sendEdoc's (whose refusals "
                   "are envelope.refused / status.refused) (details: rule, operation, system_id as claimed; never "
                   "content)",
    # The upstream axis (issue 15; actor: the console user for the register sync).
    "upstream.agencies_synced": "the upstream axis's register was imported into the local one (`gateway upstream "
                                "agencies sync`): agencies of delivery mode upstream added, updated, deactivated "
                                "(details: upstream URL and system_id, counts, the codes, what was skipped or "
                                "dropped and why; lists capped at 1000; never the secret)",
    "upstream.forwarded": "a document or status was forwarded to the upstream axis (VXP sendEdoc) and accepted "
                          "there: this entry's forwarded_at is the hand-off instant of its upstream deliveries "
                          "(details: upstream, upstream_doc_id, deliveries, recipients, attempt)",
    "upstream.acknowledged": "a message fetched from the upstream axis was acknowledged there (updateStatus): done "
                             "after its acceptance committed, or fail after a refusal (details: upstream_doc_id, "
                             "messagetype, status, document or rule)",
    # The ledger's witnesses (issue 18).
    "ledger.witness_added": "a witness was registered: its cosignatures of checkpoints are taken (details: witness "
                            "name, key_id)",
    "ledger.cosigned": "a registered witness's cosignature of a checkpoint was verified and stored (details: "
                       "witness, size)",
    # Intake.
    "envelope.accepted": "an envelope was accepted: this entry's instant is the sent instant (details: recipients, "
                         "attachments, business_doc_type, refers_to for a recall/update/replacement, deviations)",
    "envelope.refused": "an envelope was refused (details: rule, envelope digest; never content)",
    # Delivery: one entry per transition of a (document, recipient) delivery (gateway.delivery.service draws
    # the state machine). Actor: `gateway` for the push worker, the agency for pull, the operator for re-queue.
    # details.delivery is the delivery id.
    "delivery.in_flight": "a push attempt was claimed by a worker (details: attempt, worker, reclaimed_from "
                          "when it was taken over from a worker whose lease expired)",
    "delivery.delivered": "the received instant was fixed (Điều 11.2): a push answered 2xx, or a pull recipient "
                          "acknowledged `done` (details: mode, received_at, attempt, http_status)",
    "delivery.retry_scheduled": "a push attempt failed transiently; next attempt planned (details: attempt, "
                                "error, http_status, next_attempt_at)",
    "delivery.dead": "a push delivery was given up (details: reason attempts-exhausted | age-exceeded | "
                     "refused | no-endpoint, error, http_status)",
    "delivery.fetched": "a pull recipient downloaded the delivery for the first time",
    "delivery.failed": "a pull recipient acknowledged `fail` (details: its reason)",
    "delivery.requeued": "an operator re-queued a dead or failed delivery (details: from_state, mode)",
    "delivery.refused": "an acknowledgement or re-queue request was refused (details: action, rule)",
    # Status messages (EDXML.md codes), routed like documents.
    "status.accepted": "a status message from an agency was accepted: this entry's instant is its sent "
                       "instant (details: status_code, refers_to, routed_to, deviations)",
    "status.refused": "a status message was refused (details: rule, envelope digest; never content)",
    "status.auto_arrived": "the gateway's own status 01 (Đã đến), signed with the gateway key, made when a "
                           "recipient's received instant was fixed, and routed to the sender",
}
