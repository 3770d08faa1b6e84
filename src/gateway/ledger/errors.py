"""The ledger's answers to bad requests (problem+json); slugs are stable once published."""

from __future__ import annotations

from gateway.problems import GatewayError, NotFound, ServiceUnavailable


class LedgerFilterInvalid(GatewayError):
    """A filter, cursor or limit of ``GET /v1/ledger`` (or ``/checkpoints``) is malformed; ``field`` names it."""

    status = 422
    slug = "ledger-filter-invalid"
    title = "A ledger query parameter is invalid"


class CheckpointNotFound(NotFound):
    slug = "ledger-checkpoint-not-found"
    title = "No such ledger checkpoint"


class ProofUnavailable(GatewayError):
    """A proof was asked for sizes the checkpointed tree does not cover, or that cannot hold the entry (``seq`` ≥
    ``size``, ``from`` > ``to``): proofs exist up to the latest checkpoint's size (the tree is extended when a
    checkpoint is signed). ``field`` names the parameter."""

    status = 422
    slug = "ledger-proof-unavailable"
    title = "No proof for these sizes: the tree covers the entries up to the latest checkpoint"


class TimestampingUnavailable(ServiceUnavailable):
    """``GATEWAY_TSA_FAIL_CLOSED``: the timestamping authority has failed for longer than
    ``GATEWAY_TSA_MAX_FAILURE_SECONDS`` (a checkpoint that old has no token), so nothing new is accepted until it
    answers again: an instant the gateway fixes must be vouched for by a third party within that time."""

    slug = "timestamping-unavailable"
    title = "The timestamping authority has failed for too long: nothing is accepted until it answers again"


class WitnessInvalid(GatewayError):
    """A witness's verifier key cannot be read (C2SP ``<name>+<key ID>+<base64 key>``, Ed25519 or ECDSA), or
    a witness of that name is registered already."""

    status = 422
    slug = "ledger-witness-invalid"
    title = "The witness cannot be registered"


class CosignatureInvalid(GatewayError):
    """A cosignature line that is not one signature line, not from a registered witness, or that does not verify
    over the checkpoint's note text: nothing is stored. ``reason`` says which."""

    status = 422
    slug = "ledger-cosignature-invalid"
    title = "The cosignature is not a registered witness's valid signature of this checkpoint"
