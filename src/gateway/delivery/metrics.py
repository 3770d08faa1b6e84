"""Prometheus metrics of delivery (served at ``/metrics`` by ``gateway serve``, summed over its worker processes;
``gateway worker`` can serve them with ``--metrics-port``). ``gateway_deliveries_dead_total`` is the one to
alert on; the queue itself (deliveries by state, the oldest waiting) is read from the database at scrape time
(:mod:`gateway.health.figures`).

``recipient`` is the recipient agency's code (bounded by the register), or :data:`UPSTREAM` for a forward to the
upstream axis (one call carries a document to all its upstream recipients).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPSTREAM = "upstream"

DEAD = Counter(
    "gateway_deliveries_dead",
    "Push deliveries given up (dead), by reason: attempts-exhausted, age-exceeded, refused (a final HTTP "
    "status), no-endpoint, not-forwardable",
    ["reason"],
)
ATTEMPTS = Counter(
    "gateway_delivery_attempts",
    "Push (and upstream forward) attempts by outcome: delivered, forwarded, retry, dead, lease-lost; and recipient",
    ["outcome", "recipient"],
)
DELIVERED = Counter("gateway_deliveries_delivered", "Deliveries whose received instant was fixed", ["mode"])
LATENCY = Histogram(
    "gateway_push_seconds", "Duration of one push POST (or upstream forward) until its answer arrived, by recipient",
    ["recipient"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
