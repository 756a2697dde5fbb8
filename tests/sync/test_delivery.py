"""Every sale reaches the centre once: MQTT, HTTP, and the failures in between."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import requests

from tests.sync.conftest import (
    CABINET,
    add_sales,
    assert_all_delivered_once,
    cabinet_counts,
    make_broker,
    wait_for,
)


def delivered(path: Path) -> int:
    return cabinet_counts(path).get("delivered", 0)


def test_sales_stream_over_mqtt_and_are_acknowledged(tmp_path, central, broker, sync_proc, cabinet_db):
    add_sales(cabinet_db, 300)
    sync_proc(mqtt=broker.url, http=central.http_url, batch_max_records=50)
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 1) == 0, 30, "drain")
    add_sales(cabinet_db, 20, start=300)
    wait_for(lambda: central.store.stats().sales == 320, 30, "new sales")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 1) == 0, 30, "drain")
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")


def test_http_only_cabinet_delivers_with_idempotency(tmp_path, central, sync_proc, cabinet_db):
    add_sales(cabinet_db, 120)
    sync_proc(http=central.http_url, batch_max_records=40)
    wait_for(lambda: central.store.stats().sales == 120, 30, "http delivery")
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 1) == 0, 30, "drain")
    assert_all_delivered_once(cabinet_db, tmp_path / "central.db")
