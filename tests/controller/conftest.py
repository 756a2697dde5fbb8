"""The controller's test rig: small in-test fakes of the hardware interfaces (unit tests), a
real database from examples/, and helpers to wait for the controller's snapshots."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kiosk import catalog, config, db, signing
from kiosk.hardware import HardwareError, LockBoardOffline, Reading

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = bytes.fromhex((EXAMPLES / "cabinet.key").read_text().strip())
STAFF = "04A1B2C3"  # an active staff card
BLOCKED = "0BADCAFE"
OPERATOR_CARD = "0A0B0C0D"
PIN = "2468"

UNITS = {}  # sku -> grams, from the sample catalogue
for p in catalog.load_catalog_file(EXAMPLES / "catalog.json").products:
    UNITS[p.sku] = float(p.unit_g)


class FakeLocks:
    """One lock line: ``unlatched`` per (board, lock); a pulse unlatches until ``push``."""

    def __init__(self) -> None:
        self.unlatched: set[tuple[int, int]] = set()
        self.pulses: list[tuple[int, int]] = []
        self.offline = False
        self.pulse_opens = True
        self.lock = threading.Lock()

    def unlock(self, board: int, lock: int) -> bool:
        with self.lock:
            if self.offline:
                raise LockBoardOffline("locks", "no answer")
            self.pulses.append((board, lock))
            if self.pulse_opens:
                self.unlatched.add((board, lock))
            return self.pulse_opens

    def unlock_all(self, board: int) -> None: ...

    def is_open(self, board: int, lock: int) -> bool:
        return (board, lock) in self.open_locks_set()

    def open_locks_set(self) -> set[tuple[int, int]]:
        with self.lock:
            if self.offline:
                raise LockBoardOffline("locks", "no answer")
            return set(self.unlatched)

    def open_locks(self, board: int) -> frozenset[int]:
        return frozenset(lk for b, lk in self.open_locks_set() if b == board)

    def push(self, board: int, lock: int) -> None:
        with self.lock:
            self.unlatched.discard((board, lock))

    def force(self, board: int, lock: int) -> None:
        with self.lock:
            self.unlatched.add((board, lock))

    def close(self) -> None: ...


class FakeScales:
    """Every shelf read at 20 Hz from ``grams`` (set by the test), with small noise."""

    def __init__(self, shelves: dict[str, float], period_s: float = 0.05):
        self.grams = dict(shelves)
        self.faulty: set[str] = set()
        self.period_s = period_s
        self.zeroed: list[str] = []
        self.calibrated: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._n = 0

    def start(self, on_reading: Callable[[Reading], None]) -> None:
        def run() -> None:
            while not self._stop.is_set():
                self._n += 1
                for shelf, g in list(self.grams.items()):
                    t = time.monotonic()
                    if shelf in self.faulty:
                        on_reading(Reading(shelf, t, None, False, "timeout"))
                    else:
                        noise = 0.4 if self._n % 2 else -0.4
                        on_reading(Reading(shelf, t, g + noise, True))
                self._stop.wait(self.period_s)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def zero(self, shelf: str) -> None:
        if shelf in self.faulty:
            raise HardwareError(shelf, "no answer")
        self.zeroed.append(shelf)

    def calibrate(self, shelf: str, known_g: int) -> None:
        self.calibrated.append((shelf, known_g))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(1)

    def take(self, shelf: str, sku: str, n: int = 1) -> None:
        self.grams[shelf] -= UNITS[sku] * n

    def put(self, shelf: str, sku: str, n: int = 1) -> None:
        self.grams[shelf] += UNITS[sku] * n


def prepare_db(db_path: Path, cfg: config.Config) -> None:
    """A cabinet database: schema, lanes from the config, catalogue, accounts, one operator."""
    from kiosk import auth, operators
    from kiosk.clock import now_iso

    d = db.connect(db_path)
    db.init(d, cfg)
    catalog.apply_catalog(d, catalog.load_catalog_file(EXAMPLES / "catalog.json"), "test")
    with db.transaction(d):
        auth.import_accounts(
            d.conn,
            KEY,
            [
                auth.AccountRow(STAFF, "Nurse Li", 10_000, "active"),
                auth.AccountRow(BLOCKED, "Former staff", 10_000, "blocked"),
            ],
            now_iso(),
        )
        operators.add(
            d.conn, "Operator Wang", signing.card_account(KEY, OPERATOR_CARD), PIN, now_iso()
        )
    d.close()


def shelf_loads(cfg: config.Config) -> dict[str, float]:
    return {s.id: sum(UNITS[ln.sku] * ln.count for ln in s.lanes) for s in cfg.shelves}


class Rig:
    def __init__(
        self,
        tmp_path: Path,
        payments=None,
        limits: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        from kiosk.controller import Controller

        text = (EXAMPLES / "cabinet.toml").read_text(encoding="utf-8")
        for k, v in (limits or {}).items():
            text = text.replace(f"\n{k} = ", f"\n{k} = {v}\n#{k} = ", 1)
        for name in ("catalog.json", "cabinet.key"):
            (tmp_path / name).write_bytes((EXAMPLES / name).read_bytes())
        (tmp_path / "cabinet.toml").write_text(text, encoding="utf-8")
        self.cfg = config.load(tmp_path / "cabinet.toml")
        self.db_path = tmp_path / "kiosk.db"
        prepare_db(self.db_path, self.cfg)
        self.locks = FakeLocks()
        self.scales = FakeScales(shelf_loads(self.cfg))
        self.payments = payments
        self.snaps: list = []
        self.make = lambda: Controller(
            self.cfg,
            self.db_path,
            {d.id: self.locks for d in self.cfg.doors},
            self.scales,
            None,
            payments,
            clock,
            key=KEY,
        )
        self.ctl = self.make()

    def start(self) -> Rig:
        self.ctl.subscribe(self.snaps.append)
        self.ctl.start()
        return self

    def door(self, door_id: str) -> tuple[int, int]:
        d = self.cfg.door(door_id)
        return d.board, d.lock

    def wait(self, pred, timeout: float = 10.0, what: str = "condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            snap = self.ctl.snapshot()
            if pred(snap):
                return snap
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; state {self.ctl.snapshot().state}")

    def wait_state(self, *states: str, timeout: float = 10.0):
        return self.wait(lambda s: s.state in states, timeout, f"state in {states}")

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        d = db.connect(self.db_path)
        try:
            return d.execute(sql, args).fetchall()
        finally:
            d.close()

    def stop(self) -> None:
        self.ctl.stop()


@pytest.fixture
def rig(tmp_path: Path):
    made: list[Rig] = []

    def build(**kw) -> Rig:
        r = Rig(tmp_path, **kw).start()
        made.append(r)
        return r

    yield build
    for r in made:
        r.stop()
