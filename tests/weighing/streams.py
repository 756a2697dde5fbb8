"""Small hand-made scenarios: shelves, load steps, noise, and the odd glitch."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CANDY = {"sku": "candy", "unit_g": 265, "unit_sd_g": 3, "price_fen": 1800}
PEPPER = {"sku": "pepper", "unit_g": 530, "unit_sd_g": 3, "price_fen": 3900}
HONEY = {"sku": "honey", "unit_g": 735, "unit_sd_g": 6, "price_fen": 6800}
TEA = {"sku": "tea", "unit_g": 210, "unit_sd_g": 3, "price_fen": 5800}
RICE = {"sku": "rice", "unit_g": 5020, "unit_sd_g": 15, "price_fen": 4500}


@dataclass
class Shelf:
    id: str
    lanes: list[tuple[dict[str, Any], int]]  # (product, count)
    steps: list[tuple[float, float]] = field(default_factory=list)  # (t, grams change)
    division: float = 1.0
    capacity: float = 30000.0
    tweak: Callable[[float, float | None], float | None] | None = None  # (t, g) -> g

    def load0(self) -> float:
        return sum(p["unit_g"] * n for p, n in self.lanes) + 1200.0  # tray and tare


def scenario(
    shelves: list[Shelf],
    *,
    hz: float = 10.0,
    open_s: float = 2.0,
    close_s: float = 8.0,
    end_s: float = 16.0,
    noise_g: float = 0.8,
    seed: int = 1,
) -> dict[str, Any]:
    rng = random.Random(seed)
    readings = {}
    for sh in shelves:
        g: list[float | None] = []
        for i in range(int(end_s * hz) + 1):
            t = i / hz
            load = sh.load0()
            for t1, dg in sh.steps:  # a 0.3 s ramp per load change
                load += dg * min(max((t - t1) / 0.3, 0.0), 1.0)
            v: float | None = round((load + rng.gauss(0, noise_g)) / sh.division) * sh.division
            if sh.tweak is not None:
                v = sh.tweak(t, v)
            g.append(v)
        readings[sh.id] = {"t0": 0.0, "g": g, "stable": "0" * len(g)}
    return {
        "id": "hand-made",
        "sample_hz": hz,
        "door_open_s": open_s,
        "door_close_s": close_s,
        "end_s": end_s,
        "shelves": [
            {
                "id": sh.id,
                "division_g": sh.division,
                "capacity_g": sh.capacity,
                "stock": [{**p, "count": n} for p, n in sh.lanes],
            }
            for sh in shelves
        ],
        "readings": readings,
    }


def lean(t1: float, t2: float, grams: float) -> Callable[[float, float | None], float | None]:
    """Someone leans on the cabinet from t1 to t2, swaying."""

    def f(t: float, g: float | None) -> float | None:
        if g is None or not t1 <= t <= t2:
            return g
        return round(g + grams * (1.0 + 0.3 * math.sin(2 * math.pi * 0.7 * (t - t1))))

    return f
