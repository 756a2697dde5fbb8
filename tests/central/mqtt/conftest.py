"""Fixtures of the MQTT tests: a broker, a store with cabinets QH-A and QH-B, a probe (the
cabinet side), and a running ingest worker with its metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from central.metrics import Metrics
from central.mqtt_ingest import IngestWorker
from central.store import Store
from tests.central.mqtt.parts import Probe, open_broker, open_probe, open_store, running_worker
from tests.sync.conftest import Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with open_broker(tmp_path) as b:
        yield b


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_store(db_url) as s:
        yield s


@pytest.fixture
def probe(broker: Broker) -> Iterator[Probe]:
    with open_probe(broker) as p:
        yield p


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def worker(store: Store, broker: Broker, metrics: Metrics) -> Iterator[IngestWorker]:
    with running_worker(store, broker, metrics=metrics) as w:
        yield w
