"""Delivery: the push worker, the pull inbox, routing rules, the automatic 01 and backoff.

- :mod:`~gateway.delivery.service`: the state machine per (document, recipient), every transition ledgered;
- :mod:`~gateway.delivery.worker`: the push worker (in ``gateway serve`` and as ``gateway worker``);
- :mod:`~gateway.delivery.repository`: claims (``FOR UPDATE SKIP LOCKED`` / conditional update), leases,
  the inbox;
- :mod:`~gateway.delivery.push`, :mod:`~gateway.delivery.body`: one
  push attempt, the bytes it carries and the gateway's signed headers (:mod:`gateway.envelope.push_signature`);
- :mod:`~gateway.delivery.backoff` (pure): exponential backoff with full jitter, Retry-After, bounds;
- :mod:`~gateway.delivery.rules` (pure): who a status goes to, which deliveries a message needs;
- :mod:`~gateway.delivery.arrival`: the gateway's automatic status 01 (build, sign, accept through
  :mod:`gateway.acceptance`);
- :mod:`~gateway.delivery.endpoints`: ``/v1/inbox…`` and ``POST /v1/deliveries/{id}/retry``.

Nothing here imports :mod:`gateway.intake`: intake uses :mod:`~gateway.delivery.rules`, never the reverse.
"""
