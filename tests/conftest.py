"""Shared fixtures. Keep each one small; add yours below with a line saying what it is for."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def example_config() -> Path:
    """The working cabinet configuration (two doors, seven shelves)."""
    return EXAMPLES / "cabinet.toml"


@pytest.fixture
def example_catalog() -> Path:
    """The sample catalogue (version 1, 18 products)."""
    return EXAMPLES / "catalog.json"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a fresh database goes (nothing created yet)."""
    return tmp_path / "kiosk.db"


@pytest.fixture
def kdb(db_path: Path):
    """A fresh, migrated database (sqlite_utils.Database), closed afterwards."""
    from kiosk import db

    database = db.open_db(db_path)
    yield database
    database.close()


# -- the simulated cabinet (simulators/; reused by the controller's tests) ----------------------
# The simulated transmitters answer from a thread of the test's own process, which a loaded CI
# machine (xdist workers, the demo's processes) can starve for longer than a real transmitter's
# 0.1 s: missed answers there are the machine's, not the cabinet's.
UNDER_LOAD = {"timeout_s = 0.1": "timeout_s = 0.4"}


def write_sim_config(folder: Path, replace: dict[str, str] | None = None) -> Path:
    """Copy examples/cabinet.toml (+ catalog and key) into ``folder``; device links land in
    ``folder/run``. ``replace`` edits the TOML text (e.g. ``{"baud = 9600": "baud = 19200"}``)."""
    import shutil

    for name in ("cabinet.toml", "catalog.json", "cabinet.key"):
        shutil.copy(EXAMPLES / name, folder / name)
    path = folder / "cabinet.toml"
    text = path.read_text(encoding="utf-8")
    for old, new in {**UNDER_LOAD, **(replace or {})}.items():
        assert old in text, f"{old!r} is not in examples/cabinet.toml"
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def sim_config_path(tmp_path: Path) -> Path:
    """examples/cabinet.toml written to tmp_path (device links in tmp_path/run)."""
    return write_sim_config(tmp_path)


@pytest.fixture
def sim_cabinet(sim_config_path: Path):
    """A running simulators.cabinet.SimulatedCabinet on ``sim_config_path``: ``.urls()`` for
    the drivers, ``.control_address`` for a ControlClient, ``.config``; stopped afterwards."""
    from kiosk import config
    from simulators.cabinet import SimulatedCabinet

    cabinet = SimulatedCabinet(config.load(sim_config_path)).start()
    yield cabinet
    cabinet.stop()


@pytest.fixture
def sim_control(sim_cabinet):
    """A simulators.control.ControlClient connected to ``sim_cabinet``."""
    from simulators.control import ControlClient

    with ControlClient(sim_cabinet.control_address) as client:
        yield client


# -- loopback servers (mosquitto, the central simulator) ----------------------------------------
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    """Until something accepts connections on 127.0.0.1:``port``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {port}")
