"""Delivery: the push worker, the pull inbox, status routing and backoff.

- :mod:`~gateway.delivery.service`: the state machine per (document, recipient), every transition ledgered;
- :mod:`~gateway.delivery.worker`: the push worker (in ``gateway serve`` and as ``gateway worker``);
- :mod:`~gateway.delivery.repository`: claims (``FOR UPDATE SKIP LOCKED`` / conditional update), leases,
  the inbox;
- :mod:`~gateway.delivery.push`, :mod:`~gateway.delivery.body`, :mod:`~gateway.delivery.signature`: one
  push attempt, the bytes it carries and the gateway's signed headers;
- :mod:`~gateway.delivery.backoff` (pure): exponential backoff with full jitter, Retry-After, bounds;
- :mod:`~gateway.delivery.routing`: where a status goes, and the gateway's automatic status 01;
- :mod:`~gateway.delivery.endpoints`: ``/v1/inbox…``, ``POST /v1/statuses``,
  ``POST /v1/deliveries/{id}/retry``.
"""
