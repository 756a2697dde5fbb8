"""``kiosk central`` as a province runs it: processes on PostgreSQL, the real sync agent.

The service refuses a database that is not migrated, ``kiosk central db upgrade`` migrates it,
``kiosk central ingest`` workers split the MQTT traffic with the service's own, and a worker
killed with -9 in the middle of a catch-up loses nothing: the cabinet sends again what was not
acknowledged, and the centre stores every sale once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from central.store import Store
from tests.central.pg import PgCluster
from tests.conftest import free_port, wait_port
from tests.sync.conftest import (
    CABINET,
    add_sales,
    cabinet_counts,
    wait_for,
)


def kiosk(*args: str) -> list[str]:
    return [sys.executable, "-m", "kiosk", *args]


class Procs:
    """Processes this test started, each with its log file; all stopped at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.running.append(p)
        return p

    def first_line(self, name: str, proc: subprocess.Popen) -> dict:
        path = self.folder / f"{name}.log"
        wait_for(
            lambda: path.read_text().strip() or proc.poll() is not None, 30, f"{name} announces"
        )
        return json.loads(path.read_text().splitlines()[0])

    def stop_all(self) -> None:
        for p in self.running:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


def test_postgres_centre_with_ingest_workers_killed_mid_catch_up(
    tmp_path: Path, pg_cluster: PgCluster, broker, keyfile, sync_proc, cabinet_db, procs
) -> None:
    url = pg_cluster.create_database(f"svc{os.getpid()}")
    port = free_port()
    serve = kiosk(
        "central",
        "--db",
        url,
        "--http",
        f"127.0.0.1:{port}",
        "--mqtt",
        broker.url,
        "--cabinet",
        f"{CABINET}={keyfile}",
    )
    # A PostgreSQL database is migrated by its operator, never behind their back.
    refused = subprocess.run(serve, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "kiosk central db upgrade" in refused.stderr
    upgraded = subprocess.run(
        kiosk("central", "db", "upgrade", "--db", url), capture_output=True, text=True, timeout=60
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database at schema" in upgraded.stdout

    centre = procs.start("central", serve)
    info = procs.first_line("central", centre)
    assert info["cabinets"] == [CABINET] and info["simulate"] is False
    wait_port(port)
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/healthz", timeout=5).json()["db"] is True
    # A real centre has no /admin at all (faults exist only with --simulate).
    assert requests.post(f"{base}/admin/faults", json={}, timeout=5).status_code == 404
    ingest = kiosk(
        "central", "ingest", "--db", url, "--mqtt", broker.url, "--cabinet", f"{CABINET}={keyfile}"
    )
    workers = [procs.start(f"ingest-{n}", ingest) for n in range(2)]
    for n, w in enumerate(workers):
        assert procs.first_line(f"ingest-{n}", w)["group"] == "ingest"

    add_sales(cabinet_db, 3000)
    sync_proc(mqtt=broker.url, tune=["window=4"], batch_max_records=50)
    store = Store(url)
    try:
        wait_for(lambda: store.stats().sales >= 300, 60, "the catch-up under way")
        for w in workers:  # both extra workers die in the middle; the service's own goes on
            w.send_signal(signal.SIGKILL)
            w.wait()
        wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 90, "all delivered")
        stats = store.stats()
        sales = store.records(CABINET, "sale")
    finally:
        store.close()
    assert stats.sales == 3000 == len({r["id"] for r in sales})
    assert cabinet_counts(cabinet_db).get("dead", 0) == 0
    out = subprocess.run(
        kiosk("central", "stats", "--db", url, "--json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout)["sales"] == 3000


def test_postgres_restarted_during_ingest_loses_and_doubles_nothing(
    tmp_path: Path, pg_cluster: PgCluster, broker, keyfile, sync_proc, cabinet_db, procs
) -> None:
    url = pg_cluster.create_database(f"rst{os.getpid()}")
    subprocess.run(kiosk("central", "db", "upgrade", "--db", url), check=True, timeout=60)
    centre = procs.start(
        "central",
        kiosk(
            "central",
            "--db",
            url,
            "--http",
            f"127.0.0.1:{free_port()}",
            "--mqtt",
            broker.url,
            "--cabinet",
            f"{CABINET}={keyfile}",
        ),
    )
    procs.first_line("central", centre)
    add_sales(cabinet_db, 2000)
    sync_proc(mqtt=broker.url, batch_max_records=50)
    store = Store(url)
    try:
        wait_for(lambda: store.stats().sales >= 200, 60, "the catch-up under way")
        pg_cluster.restart()  # every connection of the pool is cut mid-stream
        wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 90, "all delivered")
        stats = store.stats()
        sales = store.records(CABINET, "sale")
    finally:
        store.close()
    assert centre.poll() is None, "the service died with the database"
    assert stats.sales == 2000 == len({r["id"] for r in sales})
    assert cabinet_counts(cabinet_db).get("dead", 0) == 0
