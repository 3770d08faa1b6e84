"""Refusals of the delivery endpoints (inbox, ack, re-queue) each with its slug."""

from __future__ import annotations

from gateway.problems import Conflict, GatewayError, NotFound


class DeliveryNotFound(NotFound):
    slug = "delivery-not-found"
    title = "No such delivery, or not one addressed to you"


class DeliveryNotFetched(Conflict):
    slug = "delivery-not-fetched"
    title = "Download the document (GET /v1/inbox/{delivery_id}) before acknowledging it"


class AckConflict(Conflict):
    slug = "delivery-ack-conflict"
    title = "The delivery was already acknowledged with the other result"


class DeliveryNotRetryable(Conflict):
    slug = "delivery-not-retryable"
    title = "Only a dead (push) or failed (pull) delivery can be re-queued"


class InboxCursorInvalid(GatewayError):
    status = 400
    slug = "inbox-cursor-invalid"
    title = "The inbox cursor is not one the gateway gave out"
