"""Per-agency request rate limit (``limits``, moving window, in process memory).

An agency over its limit gets 429 ``rate-limited`` with ``Retry-After``. The window is kept per gateway
process: behind a load balancer with N processes an agency can reach N times the limit, which is the
intended order of magnitude (the limit protects each process). Operators are not limited.
"""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from gateway.problems import TooManyRequests


class AgencyRateLimiter:
    def __init__(self, rate: str) -> None:
        self.item = parse(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, agency: str) -> None:
        if self.limiter.hit(self.item, agency):
            return
        stats = self.limiter.get_window_stats(self.item, agency)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(f"more than {self.item} requests; retry after {retry_after} s",
                              retry_after=retry_after)
