"""sd_notify over a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk import notify

ROOT = Path(__file__).resolve().parents[2]


class FakeSystemd:
    """The receiving end of $NOTIFY_SOCKET: collects datagrams as systemd would."""

    def __init__(self, address: str):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)

    def messages(self, within_s: float) -> list[str]:
        """Every datagram that arrives within ``within_s`` seconds."""
        out = []
        deadline = time.monotonic() + within_s
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                out.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    # A short directory: socket paths are limited to 108 bytes.
    folder = tempfile.mkdtemp(prefix="kn-")
    fake = FakeSystemd(os.path.join(folder, "notify"))
    monkeypatch.setenv("NOTIFY_SOCKET", fake.address)
    yield fake
    fake.close()
    os.unlink(fake.address)
    os.rmdir(folder)


@pytest.fixture
def systemd_abstract(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(f"@kiosk-notify-test-{os.getpid()}-{time.monotonic_ns()}")
    monkeypatch.setenv("NOTIFY_SOCKET", fake.address)
    yield fake
    fake.close()


def test_ready_arrives_with_this_pid(systemd_path: FakeSystemd) -> None:
    assert notify.ready(status="doors D1 D2,\n7 shelves")
    (msg,) = systemd_path.messages(0.5)
    lines = msg.split("\n")
    assert "READY=1" in lines
    assert f"MAINPID={os.getpid()}" in lines
    assert "STATUS=doors D1 D2, 7 shelves" in lines  # one line: systemd shows one line


def test_abstract_namespace_socket(systemd_abstract: FakeSystemd) -> None:
    assert notify.status("syncing 12 records")
    assert notify.stopping()
    assert systemd_abstract.messages(0.5) == ["STATUS=syncing 12 records", "STOPPING=1"]


def test_without_systemd_nothing_is_sent_and_nothing_breaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.ready() is False
    assert notify.watchdog() is False
    assert notify.Watchdog(env={}).tick() is False


def test_gone_socket_is_not_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert notify.ready() is False


def test_watchdog_pings_at_most_every_half_interval(systemd_path: FakeSystemd) -> None:
    now = [100.0]
    env = {"NOTIFY_SOCKET": systemd_path.address, "WATCHDOG_USEC": "2000000"}
    wd = notify.Watchdog(env=env, clock=lambda: now[0])
    assert wd.interval == 1.0
    sent = []
    for _ in range(40):  # 4 s of a loop turning every 0.1 s
        sent.append(wd.tick())
        now[0] += 0.1
    assert sum(sent) == 4
    assert systemd_path.messages(0.3) == ["WATCHDOG=1"] * 4


def test_watchdog_for_another_pid_is_off(systemd_path: FakeSystemd) -> None:
    env = {
        "NOTIFY_SOCKET": systemd_path.address,
        "WATCHDOG_USEC": "1000000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    }
    assert not notify.Watchdog(env=env).enabled


HANGING_SERVICE = textwrap.dedent(
    """
    import sys, time
    from kiosk import notify

    notify.ready()
    wd = notify.Watchdog()
    hang_at = time.monotonic() + float(sys.argv[1])
    while True:                      # the service's main loop
        wd.tick()
        if time.monotonic() > hang_at:
            time.sleep(60)           # stuck: a blocking call that never returns
        time.sleep(0.01)
    """
)


def test_a_hung_loop_stops_pinging(systemd_path: FakeSystemd) -> None:
    env = dict(os.environ, WATCHDOG_USEC="200000", PYTHONPATH=str(ROOT))  # ping every 0.1 s
    proc = subprocess.Popen([sys.executable, "-c", HANGING_SERVICE, "0.6"], env=env)
    try:
        systemd_path.sock.settimeout(10)
        assert systemd_path.sock.recv(4096).startswith(b"READY=1")
        msgs = systemd_path.messages(0.4)
        assert msgs.count("WATCHDOG=1") >= 2  # alive: pinging from its loop
        systemd_path.messages(0.5)  # drain until the loop has hung (0.6 s after READY)
        # Hung: not one ping in three whole watchdog periods.
        assert systemd_path.messages(0.6) == []
        assert proc.poll() is None  # still running: only the pings stopped
    finally:
        proc.kill()
        proc.wait()
