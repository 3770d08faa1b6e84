"""Acceptance: the one place where a message becomes a sent document (Điều 11.1).

Every way a document or a status enters the gateway — ``POST /v1/envelopes``, ``POST /v1/statuses``, the
gateway's own status 01 when a recipient's received instant is fixed, and later the national-axis face and
the upstream poller — checks it first (:mod:`gateway.envelope`, pure) and then calls :func:`accept`, in a
transaction its caller owns. :func:`accept` is the only function that writes a document row, its
attachments, its delivery rows and its ledger entry, and the only one that fixes the sent instant
(:func:`accept_many` is the same for a group commit's batch of messages). See
CONTRIBUTING.md for who opens and commits that transaction.
"""

from gateway.acceptance.service import (
    Acceptance,
    Accepted,
    Event,
    Message,
    NewAttachment,
    Target,
    accept,
    accept_many,
    accept_unless_duplicate,
)

__all__ = ["Acceptance", "Accepted", "Event", "Message", "NewAttachment", "Target", "accept", "accept_many",
           "accept_unless_duplicate"]
