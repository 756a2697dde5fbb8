"""The fleet in one event loop: connect every cabinet, offer a lunch hour's records, keep the
links alive, resend on ack timeouts, wait for the last ack.

A busy lunch hour (1x), per cabinet, from the programme's busiest sites: a sale every ~167 s
(60 sales/s across a 10,000-cabinet fleet), each with its inventory and session records; one
door session in ten closed with nothing taken (a session record alone); telemetry every 5
minutes; a low-stock event every ~55 minutes. ``rate`` multiplies all of it: at 10x a 10,000
fleet offers 600 sales/s, about 2,200 records/s in about 1,000 batches/s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from kiosk import wire

from .cabinets import Cabinet, Shop
from .mqtt5 import MqttError

LUNCH_PER_CABINET_S: dict[str, float] = {
    "sale": 60 / 10_000,
    "empty_session": 6 / 10_000,
    "telemetry": 1 / 300,
    "event": 1 / 3_300,
}
RECORDS_PER_EVENT = {"sale": 3, "empty_session": 1, "telemetry": 1, "event": 1}
KEEPALIVE_S = 60  # mqtt5.Client's default; a PINGREQ after half of it idle
TICK_S = 0.005


def records_per_s(cabinets: int, rate: float) -> float:
    """Records/s the mix offers (the expected value)."""
    return sum(
        cabinets * rate * per_s * RECORDS_PER_EVENT[kind]
        for kind, per_s in LUNCH_PER_CABINET_S.items()
    )


class Fleet:
    def __init__(self, cabinets: Sequence[Cabinet]):
        self.cabinets = list(cabinets)
        self.failed: list[str] = []  # connect errors
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def connected(self) -> int:
        return sum(c.client.connected for c in self.cabinets)

    async def connect(self, host: str, port: int, concurrency: int = 200) -> float:
        """Seconds to connect every cabinet, ``concurrency`` handshakes at a time (a fleet
        coming back does not arrive in one millisecond, and the listen backlog is finite)."""
        gate = asyncio.Semaphore(concurrency)

        async def one(cab: Cabinet) -> None:
            async with gate:
                try:
                    await cab.connect(host, port)
                except (OSError, MqttError, TimeoutError) as e:
                    self.failed.append(f"{cab.id}: {e!r}")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for c in self.cabinets))
        self._sweeper = asyncio.create_task(self._sweep())
        return time.perf_counter() - t0

    async def _sweep(self) -> None:
        """Once a second: ack timeouts (rewind and resend) and keepalive pings."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for cab in self.cabinets:
                if cab.inflight:
                    cab.check_timeouts(now)
                if cab.client.connected and now - cab.client.last_sent > KEEPALIVE_S / 2:
                    cab.client.ping()

    async def offer(self, shop: Shop, rate: float, duration: float) -> float:
        """Lunch at ``rate`` for ``duration`` seconds: events arrive as a Poisson process
        over the whole fleet, each at a cabinet drawn at random. Returns the seconds taken."""
        rng = shop.rng
        kinds = list(LUNCH_PER_CABINET_S)
        weights = [LUNCH_PER_CABINET_S[k] for k in kinds]
        total = len(self.cabinets) * rate * sum(weights)
        makers: dict[str, Callable[[Cabinet, str], None]] = {
            "sale": shop.sale,
            "empty_session": shop.empty_session,
            "telemetry": shop.telemetry,
            "event": shop.event,
        }
        t0 = time.monotonic()
        due = t0 + rng.expovariate(total)
        while (now := time.monotonic()) < t0 + duration:
            at = wire.now_iso()
            while due <= now:
                cab = rng.choice(self.cabinets)
                makers[rng.choices(kinds, weights)[0]](cab, at)
                cab.pump()
                due += rng.expovariate(total)
            await asyncio.sleep(min(TICK_S, max(0.0, due - now)))
        return time.monotonic() - t0

    def pending_ids(self) -> set[str]:
        return {i for c in self.cabinets for i in c.pending}

    def unacked(self) -> int:
        return sum(len(c.pending) for c in self.cabinets)

    async def settle(self, timeout: float) -> float:
        """Wait until every record made has been acked; the seconds it took (``timeout`` if
        some never were)."""
        t0 = time.monotonic()
        while self.unacked() and time.monotonic() - t0 < timeout:
            await asyncio.sleep(0.05)
        return time.monotonic() - t0

    def pump_all(self) -> None:
        for c in self.cabinets:
            c.pump()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for c in self.cabinets:
            c.client.disconnect()
        await asyncio.sleep(0.1)
