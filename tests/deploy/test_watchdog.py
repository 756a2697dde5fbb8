"""The two long-running processes under a stand-in for systemd: a real AF_UNIX datagram socket
as ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` set, real ``kiosk run --headless`` on the simulated
cabinet (real ptys) and real ``kiosk sync`` against the central simulator (real HTTP).

A hung loop is made with the debug hook: ``KIOSK_DEBUG=1`` then SIGUSR2 blocks the loop that
does the work for ``KIOSK_DEBUG_HANG_S`` seconds; the watchdog pings must stop meanwhile.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiosk import auth, catalog, control, db
from kiosk.clock import now_iso
from tests.conftest import EXAMPLES, write_sim_config

KEY = bytes.fromhex((EXAMPLES / "cabinet.key").read_text().strip())
STAFF = "04A1B2C3"  # a staff card UID: must never reach a log line
WATCHDOG_USEC = 800_000  # a ping due every 0.4 s: every tick of a loop turning at 2 Hz pings
HANG_S = 4.0


class FakeSystemd:
    """The receiving end of ``$NOTIFY_SOCKET`` (abstract namespace: no path-length limit),
    read promptly by a thread as systemd would."""

    def __init__(self) -> None:
        self.address = f"@kiosk-wd-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.address[1:].encode())
        self.sock.settimeout(0.1)
        self.got: list[tuple[float, str]] = []  # (monotonic arrival, one KEY=VALUE line)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            now = time.monotonic()
            with self._lock:
                self.got += [(now, line) for line in data.split("\n")]

    def wait_for(self, line: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while line not in self.lines():
            if time.monotonic() >= end:
                raise AssertionError(f"no {line!r} within {timeout} s; got {self.lines()}")
            time.sleep(0.05)

    def pings(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t, line in self.got if line == "WATCHDOG=1" and start <= t < end)

    def lines(self) -> list[str]:
        with self._lock:
            return [line for _, line in self.got]

    def close(self) -> None:
        self._done.set()
        self._thread.join(1)
        self.sock.close()


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    fake = FakeSystemd()
    yield fake
    fake.close()


@pytest.fixture
def spawn(tmp_path: Path, systemd: FakeSystemd) -> Iterator[Callable[..., subprocess.Popen]]:
    """``spawn(*kiosk_args)``: a ``kiosk`` process as systemd would start it; killed after."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "NOTIFY_SOCKET": systemd.address,
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            "KIOSK_DEBUG": "1",
            "KIOSK_DEBUG_HANG_S": str(HANG_S),
            "PYTHONUNBUFFERED": "1",
        }
        log = (tmp_path / f"{args[0]}.log").open("ab")
        p = subprocess.Popen(
            [sys.executable, "-m", "kiosk", *args], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(5)


def prepare_db(cfg_path: Path) -> Path:
    """Schema, lanes, the sample catalogue and one staff card account."""
    from kiosk import config

    cfg = config.load(cfg_path)
    d = db.connect(cfg.database)
    db.init(d, cfg)
    catalog.apply_catalog(d, catalog.load_catalog_file(EXAMPLES / "catalog.json"), "test")
    with db.transaction(d):
        rows = [auth.AccountRow(STAFF, "Nurse Li", 10_000, "active")]
        auth.import_accounts(d.conn, KEY, rows, now_iso())
    d.close()
    return cfg.database


def assert_pings_stop_while_hung(systemd: FakeSystemd, proc: subprocess.Popen) -> None:
    time.sleep(1.5)
    now = time.monotonic()
    assert systemd.pings(now - 1.5, now) >= 2, systemd.lines()  # a live loop pings
    proc.send_signal(signal.SIGUSR2)
    hung_at = time.monotonic()
    time.sleep(HANG_S - 0.4)
    # The hang starts within a loop turn; from 1 s on, five ping intervals pass in silence.
    assert systemd.pings(hung_at + 1.0, hung_at + HANG_S - 0.4) == 0, "a hung loop still pinged"
    assert proc.poll() is None, "hung, not dead"
    time.sleep(2.0)  # the loop comes back: so do the pings
    assert systemd.pings(hung_at + HANG_S, time.monotonic()) >= 1


def stop_cleanly(systemd: FakeSystemd, proc: subprocess.Popen, within_s: float = 8.0) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(within_s) == 0
    time.sleep(0.1)
    assert "STOPPING=1" in systemd.lines()


def test_run_is_ready_pings_stops_pinging_when_hung_and_stops_on_sigterm(
    tmp_path, sim_cabinet, sim_config_path, systemd, spawn
):
    prepare_db(sim_config_path)
    proc = spawn("run", "--headless", "--config", str(sim_config_path))
    systemd.wait_for("READY=1", 30)
    assert f"MAINPID={proc.pid}" in systemd.lines()
    assert any(line.startswith("STATUS=state=") for line in systemd.lines()), systemd.lines()
    assert_pings_stop_while_hung(systemd, proc)
    stop_cleanly(systemd, proc)
    out = (tmp_path / "run.log").read_text()
    assert "event=ready" in out and "event=stopping signal=SIGTERM" in out


def test_sync_is_ready_pings_stops_pinging_when_hung_and_stops_on_sigterm(tmp_path, systemd, spawn):
    from central.service import CentralService

    central = CentralService(tmp_path / "central.db", {"QH-0001": KEY}).start()
    try:
        cfg = write_sim_config(
            tmp_path,
            {
                'mqtt = "mqtt://127.0.0.1:1883"': 'mqtt = ""',
                'http = "http://127.0.0.1:8080"': f'http = "{central.http_url}"',
            },
        )
        prepare_db(cfg)
        proc = spawn("sync", "--config", str(cfg))
        systemd.wait_for("READY=1", 20)
        assert_pings_stop_while_hung(systemd, proc)
        stop_cleanly(systemd, proc)
    finally:
        central.stop()
    out = (tmp_path / "sync.log").read_text()
    assert "event=sync_started" in out
    assert "event=batch_delivered" in out  # the first telemetry record went up
    assert "event=sync_stopped signal=SIGTERM" in out
    assert any(line.startswith("STATUS=link=http backlog=") for line in systemd.lines())


def ask(sock: Path, intent: dict, timeout: float = 3.0) -> dict:
    return control.request(sock, json.dumps(intent), timeout)


def wait_state(sock: Path, pred: Callable[[dict], bool], timeout: float, what: str) -> dict:
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = ask(sock, {"intent": "state"})["snapshot"]
        except (OSError, ValueError, KeyError):
            last = None
        if last is not None and pred(last):
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last state {last and last['state']}")


def test_sigterm_during_a_session_leaves_the_journal_consistent(
    tmp_path, sim_cabinet, sim_config_path, sim_control, systemd, spawn
):
    db_path = prepare_db(sim_config_path)
    sock = tmp_path / "ctl.sock"
    argv = ("run", "--headless", "--config", str(sim_config_path), "--control", str(sock))

    def finished(s: dict) -> bool:  # the receipt shows, or the session is gone
        return s["receipt"] is not None or (s["state"] == "idle" and s["session"] is None)

    proc = spawn(*argv)
    systemd.wait_for("READY=1", 30)
    wait_state(sock, lambda s: s["state"] == "idle", 15, "idle")
    assert ask(sock, {"intent": "scan", "text": STAFF, "door": "D1"})["ok"]
    s = wait_state(sock, lambda s: s["state"] == "open", 10, "door D1 unlatched")
    session = s["session"]["id"]
    assert sim_control.pull("D1")
    sim_control.take("D1-S2", "hs-honey-500g")
    sim_control.take("D1-S3", "hs-tea-100g", 2)
    time.sleep(0.5)  # the shelves report the take
    stop_cleanly(systemd, proc)

    d = db.connect(db_path)
    try:
        assert d.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # journaled before the door opened, not yet finished: the restart finishes it
        assert d.execute(
            "SELECT finished_at FROM sessions WHERE id = ?", (session,)
        ).fetchall() == [(None,)]
        assert d.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 0
    finally:
        d.close()

    sim_control.push("D1")  # the customer shut the door while the controller was away
    proc = spawn(*argv)
    s = wait_state(sock, finished, 30, "recovery to finish the session")
    assert s["receipt"]["session"] == session
    stop_cleanly(systemd, proc)
    proc = spawn(*argv)  # once more: nothing left to finish, nothing recorded twice
    s = wait_state(sock, lambda s: s["state"] == "idle", 30, "idle after a restart")
    assert s["receipt"] is None and s["session"] is None
    stop_cleanly(systemd, proc)

    d = db.connect(db_path)
    try:
        assert d.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sales = d.execute(
            "SELECT id, total_fen FROM sales WHERE session = ?", (session,)
        ).fetchall()
        assert len(sales) == 1, sales
        items = dict(d.execute("SELECT sku, SUM(qty) FROM sale_items GROUP BY sku").fetchall())
        assert items == {"hs-honey-500g": 1, "hs-tea-100g": 2}
        assert d.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 1
        seqs = [s for (s,) in d.execute("SELECT seq FROM outbox ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1)), "outbox seq has gaps"
        outbox_sales = d.execute(
            "SELECT COUNT(*) FROM outbox WHERE type = 'sale'"
            " AND json_extract(body, '$.session') = ?",
            (session,),
        ).fetchone()[0]
        assert outbox_sales == 1
        unfinished = d.execute("SELECT id FROM sessions WHERE finished_at IS NULL").fetchall()
        assert unfinished == []
    finally:
        d.close()
    out = (tmp_path / "run.log").read_text()
    assert f"event=session_opened session={session}" in out
    ((sale, total),) = sales
    assert f"event=sale_recorded sale={sale} session={session} door=D1 total_fen={total}" in out
    assert STAFF not in out


def test_a_receiver_that_stops_reading_never_blocks_the_sender() -> None:
    from kiosk import notify

    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stuck.bind(b"\0" + f"kiosk-stuck-{os.getpid()}-{time.monotonic_ns()}".encode())
    env = {"NOTIFY_SOCKET": "@" + stuck.getsockname()[1:].decode()}
    try:
        t0 = time.monotonic()
        sent = [notify.send("WATCHDOG=1", env=env) for _ in range(5000)]
        assert time.monotonic() - t0 < 5.0
        assert sent[0] and not sent[-1]  # the queue filled; later pings are dropped, not waited
    finally:
        stuck.close()


def test_touchscreen_pings_from_kivys_loop_and_stops_on_sigterm(
    tmp_path, sim_cabinet, sim_config_path, systemd, spawn, monkeypatch
):
    """The production path: Kivy's own loop (offscreen SDL2 here) calls the tick."""
    prepare_db(sim_config_path)
    monkeypatch.delenv("KIVY_GL_BACKEND", raising=False)  # "mock" draws nothing
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    monkeypatch.setenv("KIVY_NO_CONSOLELOG", "1")
    monkeypatch.setenv("KIVY_HOME", str(tmp_path / "kivy"))
    proc = spawn("run", "--config", str(sim_config_path), "--window", "800x480")
    systemd.wait_for("READY=1", 30)
    systemd.wait_for("WATCHDOG=1", 40)  # the window is up and its clock ticks
    time.sleep(3.0)  # and keeps ticking (Kivy's clock holds its callbacks weakly)
    now = time.monotonic()
    assert systemd.pings(now - 2.0, now) >= 3, systemd.lines()
    stop_cleanly(systemd, proc)
