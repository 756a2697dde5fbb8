"""Lock request to answer through the simulated cabinet at 9600 baud, p50/p95, against the
wire time of the bytes (10 bits a byte). Target: p95 <= 2 x wire time + 5 ms.

    .venv/bin/python bench/serial_roundtrip.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(n: int = 300) -> int:
    import shutil

    import drivers
    from kiosk import config
    from simulators.cabinet import SimulatedCabinet

    folder = Path(tempfile.mkdtemp(prefix="bench-rt-"))
    for name in ("cabinet.toml", "catalog.json", "cabinet.key"):
        shutil.copy(ROOT / "examples" / name, folder / name)
    cfg = config.load(folder / "cabinet.toml")
    door = cfg.door("D1")
    with SimulatedCabinet(cfg) as cab:
        board = drivers.open_lock_board("8a80", cab.urls()["locks"]["D1"], door.baud)
        try:
            for what, call, n_bytes in (
                ("query one (5+5 bytes)", lambda: board.is_open(door.board, door.lock), 10),
                ("query all (5+7 bytes)", lambda: board.open_locks(door.board), 12),
            ):
                call()  # open the port
                times = []
                for _ in range(n):
                    t = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t)
                wire = n_bytes * 10 / door.baud
                q = statistics.quantiles(times, n=20)
                p50, p95 = statistics.median(times), q[18]
                target = 2 * wire + 0.005
                print(
                    f"{what} at {door.baud} baud: wire {wire * 1e3:.2f} ms, "
                    f"p50 {p50 * 1e3:.2f} ms ({p50 / wire:.2f}x wire), "
                    f"p95 {p95 * 1e3:.2f} ms ({p95 / wire:.2f}x wire); "
                    f"target p95 <= {target * 1e3:.2f} ms: {'met' if p95 <= target else 'MISSED'}"
                )
        finally:
            board.close()
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:2])))
