"""Exponential backoff with full jitter: many cabinets reconnecting do not stampede the centre."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None):
        self.base_s, self.cap_s = base_s, cap_s
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The wait before the next attempt: uniform in [base/2, min(cap, base * 2**n)]."""
        ceiling = min(self.cap_s, self.base_s * 2**self.failures)
        self.failures = min(self.failures + 1, 32)
        return self._rng.uniform(min(self.base_s / 2, ceiling), ceiling)

    def after(self, retry_after_s: float | None) -> float:
        """The wait the centre asked for (``Retry-After``), plus up to a tenth more (at most
        1 s) so a fleet told the same does not come back in one instant, and never less than
        base/2 (``Retry-After: 0`` is no licence to spin); ``next()`` when it did not say."""
        if retry_after_s is None:
            return self.next()
        wait = max(retry_after_s, self.base_s / 2)
        return wait + self._rng.uniform(0.0, min(1.0, wait / 10))

    def reset(self) -> None:
        self.failures = 0
