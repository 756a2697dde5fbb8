"""What ``GET /metrics`` shows, in Prometheus' text format: one registry per service process.

The HTTP side and the MQTT ingest workers of one process count into the same ``Metrics``;
each ``kiosk central ingest`` process has its own (``--metrics HOST:PORT`` serves it).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Store-to-ack latency buckets (seconds): the target is p95 <= 1 s at ten times a lunch hour.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, connected: Callable[[], float] | None = None) -> None:
        """``connected``: how many cabinets are online now (read at each scrape)."""
        r = self.registry = CollectorRegistry()
        self.records_stored = Counter(
            "kiosk_central_records_stored",
            "Records stored for the first time",
            ["path"],
            registry=r,
        )
        self.duplicates = Counter(
            "kiosk_central_duplicates",
            "Records received again and acknowledged",
            ["path"],
            registry=r,
        )
        self.batches = Counter(
            "kiosk_central_batches", "Batches stored and answered", ["path"], registry=r
        )
        self.rejects = Counter(
            "kiosk_central_rejects",
            "Records, batches and requests refused, by reason",
            ["path", "reason"],
            registry=r,
        )
        self.ack_latency = Histogram(
            "kiosk_central_ack_latency_seconds",
            "From a batch's arrival to its ack (after commit)",
            ["path"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.connected = Gauge(
            "kiosk_central_connected_cabinets", "Cabinets whose status is online", registry=r
        )
        if connected is not None:
            self.connected.set_function(connected)

    def render(self) -> bytes:
        return generate_latest(self.registry)
