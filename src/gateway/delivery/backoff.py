"""When to try a push delivery again, and whether to try at all (pure: no I/O, no framework).

Exponential backoff with *full jitter* (the delay is uniform in ``[0, min(cap, base · 2^(attempt-1))]``),
so that recipients coming back after an outage are not hit by every gateway worker in the same second; a
``Retry-After`` the recipient sent is a floor, never shortened by the jitter. The bounds are the number of
attempts and the age of the delivery (from its creation, or from an operator's re-queue): a retry that
would start after the age bound is not scheduled, the delivery is dead instead.

What counts as transient (retry) and what is final:

=====================================  =========================================================
answer                                 outcome
=====================================  =========================================================
2xx                                    delivered; the instant the answer arrived is received_at
timeout, connection error, 5xx, 408,   retry (or dead when the attempts or the age are used up)
429
any other status (3xx, 4xx, 1xx)       dead at once, with the status as the reason
=====================================  =========================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

__all__ = [
    "RETRYABLE_STATUSES",
    "Decision",
    "Policy",
    "backoff_delay",
    "classify_status",
    "decide_failure",
    "parse_retry_after",
]

RETRYABLE_STATUSES = frozenset({408, 429})

#: a Retry-After beyond this is treated as this (a recipient cannot park a delivery for a year)
MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600.0

Outcome = Literal["delivered", "retry", "dead"]


def classify_status(status: int) -> Outcome:
    """What an HTTP answer status means for the delivery."""
    if 200 <= status < 300:
        return "delivered"
    if status >= 500 or status in RETRYABLE_STATUSES:
        return "retry"
    return "dead"


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in ``[0, min(cap, base · 2^(attempt-1))]`` seconds; ``attempt`` counts from 1."""
    exponent = min(max(attempt - 1, 0), 62)  # 2**62 · base is beyond any cap; avoids float overflow
    ceiling = min(cap, base * (2.0**exponent))
    return (rng or _rng).uniform(0.0, max(ceiling, 0.0))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date); None if absent or
    unreadable (an unreadable header is ignored, not trusted)."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isdigit():
        return min(float(int(text)), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER_SECONDS)


@dataclass(frozen=True)
class Policy:
    max_attempts: int
    max_age: timedelta
    base: float
    cap: float


@dataclass(frozen=True)
class Decision:
    """After a transient failure: retry at ``next_attempt_at``, or give up (``dead``) with ``reason``."""

    dead: bool
    next_attempt_at: datetime | None
    delay: float | None
    reason: str | None


def decide_failure(
    *,
    attempt: int,
    window_start: datetime,
    now: datetime,
    policy: Policy,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """The next step after transient failure number ``attempt`` of a delivery whose retry window began at
    ``window_start`` (its creation, or its last re-queue)."""
    if attempt >= policy.max_attempts:
        return Decision(dead=True, next_attempt_at=None, delay=None, reason="attempts-exhausted")
    delay = backoff_delay(attempt, base=policy.base, cap=policy.cap, rng=rng)
    if retry_after is not None:
        delay = max(delay, retry_after)
    at = now + timedelta(seconds=delay)
    if at - window_start > policy.max_age:
        return Decision(dead=True, next_attempt_at=None, delay=None, reason="age-exceeded")
    return Decision(dead=False, next_attempt_at=at, delay=delay, reason=None)


# Jitter needs no cryptographic strength; a module-level generator keeps the functions pure for callers
# that pass their own seeded ``rng``.
_rng = random.Random()  # noqa: S311  # jitter only, not a secret
