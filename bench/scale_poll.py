"""Readings per second per shelf through the simulated cabinet, for 4 and 8 shelves at 9600
and 19200 baud, against the wire-limited maximum: a read of 2 registers is 8 request bytes
+ 9 reply bytes, plus two 3.5-character gaps. Target: >= 80 % of it.

    .venv/bin/python bench/scale_poll.py [SECONDS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELF = """
[[shelves]]
id = "S{i}"
door = "D1"
slave = {i}
capacity_g = 15000
lanes = [{{sku = "hs-tea-100g", count = 5}}]
"""


def cabinet_toml(shelves: int, baud: int) -> str:
    text = (ROOT / "examples" / "cabinet.toml").read_text(encoding="utf-8")
    head = text.split("\n[[shelves]]\n")[0]
    tail = "\n[scales]\n" + text.split("\n[scales]\n")[1]
    tail = tail.replace("baud = 9600\ntimeout_s", f"baud = {baud}\ntimeout_s", 1)
    return head + "".join(SHELF.format(i=i) for i in range(1, shelves + 1)) + "\n" + tail


def wire_max_per_shelf(shelves: int, baud: int) -> float:
    char_s = 10 / baud
    poll_s = (8 + 9) * char_s + 2 * 3.5 * char_s
    return 1 / poll_s / shelves


def measure(shelves: int, baud: int, seconds: float) -> tuple[float, float]:
    import shutil

    import drivers
    from kiosk import config
    from simulators.cabinet import SimulatedCabinet

    folder = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    for name in ("catalog.json", "cabinet.key"):
        shutil.copy(ROOT / "examples" / name, folder / name)
    (folder / "cabinet.toml").write_text(cabinet_toml(shelves, baud), encoding="utf-8")
    cfg = config.load(folder / "cabinet.toml")
    counts: dict[str, int] = {}
    started = [float("inf")]  # nothing counts until the bus has warmed up

    def on_reading(r) -> None:
        if r.grams is not None and r.t >= started[0]:
            counts[r.shelf] = counts.get(r.shelf, 0) + 1

    with SimulatedCabinet(cfg) as cab:
        bus = drivers.open_scale_bus(
            cab.urls()["scales"], baud, {s.id: s.slave for s in cfg.shelves}, cfg.scales.timeout_s
        )
        bus.start(on_reading)
        time.sleep(1.0)  # connect, learn divisions
        started[0] = time.monotonic()
        time.sleep(seconds)
        started[0] = float("inf")  # what arrives while stopping does not count
        bus.stop()
    shutil.rmtree(folder, ignore_errors=True)
    return sum(counts.values()) / shelves / seconds, wire_max_per_shelf(shelves, baud)


def main(seconds: float = 5.0) -> int:
    for baud in (9600, 19200):
        for shelves in (4, 8):
            got, best = measure(shelves, baud, seconds)
            print(
                f"{shelves} shelves at {baud} baud: {got:.2f} readings/s per shelf, "
                f"wire-limited max {best:.2f}: {got / best:.0%} "
                f"(target >= 80 %: {'met' if got >= 0.8 * best else 'MISSED'})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(*(float(a) for a in sys.argv[1:2])))
