"""Prometheus metrics of delivery (served at ``/metrics`` by ``gateway serve``; ``gateway worker`` can serve
them with ``--metrics-port``). ``gateway_deliveries_dead_total`` is the one to alert on."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DEAD = Counter(
    "gateway_deliveries_dead",
    "Push deliveries given up (dead), by reason: attempts-exhausted, age-exceeded, refused (a final HTTP "
    "status), no-endpoint",
    ["reason"],
)
ATTEMPTS = Counter(
    "gateway_delivery_attempts",
    "Push delivery attempts by outcome: delivered, retry, dead, lease-lost",
    ["outcome"],
)
DELIVERED = Counter("gateway_deliveries_delivered", "Deliveries whose received instant was fixed", ["mode"])
LATENCY = Histogram(
    "gateway_push_seconds", "Duration of one push POST until its answer arrived",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
