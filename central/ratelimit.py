"""How often one cabinet may call the centre over HTTP: a token bucket per cabinet.

Pure (no I/O); the clock is injected so a test can drive it. A cabinet may send ``burst``
requests at once and ``rate_per_s`` a second after that; a request over the limit is refused
with the whole seconds to wait (``Retry-After``), at least 1.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0  # whole seconds until a token is free again (>= 1 when refused)


class RateLimiter:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate_per_s > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (tokens, when counted). Grows with the keys asked about: the HTTP side asks
        # only for cabinets it knows, so this stays as large as the fleet.
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> Decision:
        """Whether ``key`` has a token now, without spending it."""
        return self._decide(key, spend=False)

    def take(self, key: str) -> Decision:
        """Spend one of ``key``'s tokens if it has one."""
        return self._decide(key, spend=True)

    def _decide(self, key: str, spend: bool) -> Decision:
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(key, (float(self.burst), now))
            # max(0, ...): a clock that steps back must not take tokens away.
            tokens = min(float(self.burst), tokens + max(0.0, now - then) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0 if spend else tokens, now)
                return Decision(True)
            self._buckets[key] = (tokens, now)
            return Decision(False, max(1, math.ceil((1.0 - tokens) / self.rate_per_s)))
