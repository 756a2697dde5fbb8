"""Real parts for the sync tests: mosquitto on a free loopback port, the central simulator,
a cabinet database in tmp_path, and ``kiosk sync`` as a real process."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from central.service import CentralService
from central.store import Store
from kiosk import db as kdb
from kiosk import wire
from tests.conftest import free_port, wait_port

MOSQUITTO = "/usr/sbin/mosquitto"
KEY = bytes(range(32))
CABINET = "QH-0001"
HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def wait_for(pred: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or pred}")


@dataclass
class Broker:
    port: int
    conf: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def make_broker(tmp: Path, extra: str = "", port: int | None = None) -> Broker:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = port or free_port()
    conf = tmp / f"mosquitto-{port}.conf"
    # `user`: run as root, mosquitto would drop to its own user, who cannot read tmp_path.
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"user {getpass.getuser()}\n{extra}"
    )
    return Broker(port, conf).start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = make_broker(tmp_path)
    yield b
    b.kill()


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    p = tmp_path / "cabinet.key"
    p.write_text(KEY.hex() + "\n")
    p.chmod(0o600)
    return p


@pytest.fixture
def central(tmp_path: Path, broker: Broker) -> Iterator[CentralService]:
    """The central service, simulated (faults, scripted payments), on a SQLite file."""
    c = CentralService(
        tmp_path / "central.db", {CABINET: KEY}, mqtt_url=broker.url, simulate=True
    ).start()
    assert c.wait_mqtt()
    yield c
    c.stop()


@pytest.fixture
def cabinet_db(tmp_path: Path) -> Path:
    path = tmp_path / "kiosk.db"
    db = kdb.open_db(path)
    db.conn.close()
    return path


def add_sales(path: Path, n: int, start: int = 0, price_fen: int = 4500) -> list[str]:
    """``n`` sales written as the controller writes them: outbox rows in a transaction."""
    db = kdb.connect(path)
    ids = []
    with kdb.transaction(db):
        for i in range(start, start + n):
            rid, _ = kdb.outbox_append(db, "sale", sale_body(i, price_fen))
            ids.append(rid)
    db.conn.close()
    return ids


def sale_body(i: int, price_fen: int = 4500) -> dict:
    at = wire.now_iso()
    return {
        "session": f"s-{i:06d}",
        "door": "D1",
        "opened_at": at,
        "closed_at": at,
        "items": [
            {
                "sku": "zr-rice-5kg",
                "qty": 1,
                "unit_price_fen": price_fen,
                "cert_no": "FP-460002-2020-00117",
                "supplier": "zr-agri",
            }
        ],
        "total_fen": price_fen,
        "payment": {"method": "card", "account": "0" * 32, "status": "captured"},
        "confidence": 0.998,
        "catalog_version": 1,
    }


def cabinet_events(path: Path, kind: str) -> list[dict]:
    """The details of the cabinet's events of one kind, oldest first."""
    db = kdb.connect(path)
    try:
        rows = db.execute(
            "SELECT detail_json FROM events WHERE kind = ? ORDER BY at", (kind,)
        ).fetchall()
    finally:
        db.conn.close()
    return [json.loads(r[0]) for r in rows]


def cabinet_counts(path: Path) -> dict[str, int]:
    db = kdb.connect(path)
    rows = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    sales = db.execute("SELECT count(*) FROM outbox WHERE type = 'sale'").fetchone()[0]
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.conn.close()
    return {**rows, "sales": sales, "integrity_ok": integrity == "ok"}


def assert_all_delivered_once(cabinet: Path, central_db: Path) -> None:
    """Every test ends here: the centre's count equals the cabinet's, no duplicate, integrity."""
    c = cabinet_counts(cabinet)
    assert c.get("pending", 0) == 0, c
    assert c["integrity_ok"]
    store = Store(central_db)
    try:
        got = store.stats()
        sales = store.records(CABINET, "sale")
        seqs = [r["seq"] for r in store.records(CABINET)]
        with store.engine.connect() as conn:
            integ = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
    finally:
        store.close()
    assert got.sales == c["sales"], (got, c)
    assert len({r["id"] for r in sales}) == len(sales)
    assert len(set(seqs)) == len(seqs), "a seq stored twice"
    assert integ == "ok"
    # Every delivered record (not pruned) is at the centre.
    assert got.records >= c.get("delivered", 0)


def write_config(tmp: Path, keyfile: Path, mqtt: str = "", http: str = "", **central) -> Path:
    lines = [f'mqtt = "{mqtt}"', f'http = "{http}"', f'key_file = "{keyfile}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in central.items()]
    text = (ROOT / "examples" / "cabinet.toml").read_text(encoding="utf-8")
    head, _, rest = text.partition("[central]")
    rest = rest[rest.index("\n[") :]  # drop the example's [central] keys
    cfg = tmp / "cabinet.toml"
    cfg.write_text(head + "[central]\n" + "\n".join(lines) + "\n" + rest, encoding="utf-8")
    return cfg


FAST = [
    "backoff_base_s=0.05",
    "backoff_cap_s=0.5",
    "ack_timeout_s=3",
    "http_timeout_s=3",
]


@dataclass
class SyncProc:
    args: list[str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> SyncProc:
        self.proc = subprocess.Popen(
            self.args,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return self

    def kill9(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def sync_proc(tmp_path: Path, keyfile: Path, cabinet_db: Path) -> Iterator[Callable[..., SyncProc]]:
    procs: list[SyncProc] = []

    def make(mqtt: str = "", http: str = "", tune: list[str] | None = None, **central) -> SyncProc:
        cfg = write_config(tmp_path, keyfile, mqtt, http, **central)
        args = [
            sys.executable,
            "-m",
            "kiosk",
            "sync",
            "--config",
            str(cfg),
            "--db",
            str(cabinet_db),
        ]
        for t in FAST + (tune or []):
            args += ["--tune", t]
        p = SyncProc(args, tmp_path / "sync.log").start()
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.stop()
