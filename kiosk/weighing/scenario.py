"""Whole-file weighing: a scenario (spec/weighing.md) replayed through ``SessionWeigher``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiosk.weighing.model import LaneStock, ShelfPlan
from kiosk.weighing.session import SessionWeigher, Tuning


def plans_of(scenario: Mapping[str, Any]) -> list[ShelfPlan]:
    return [
        ShelfPlan(
            id=str(sh["id"]),
            stock=tuple(
                LaneStock(
                    sku=str(ln["sku"]),
                    unit_g=float(ln["unit_g"]),
                    unit_sd_g=float(ln.get("unit_sd_g", 0.0)),
                    price_fen=int(ln.get("price_fen", 0)),
                    count=int(ln.get("count", 0)),
                )
                for ln in sh.get("stock", [])
            ),
            division_g=float(sh.get("division_g", 1.0)),
            capacity_g=float(sh.get("capacity_g", 30000.0)),
        )
        for sh in scenario["shelves"]
    ]


def solve_scenario(scenario: Mapping[str, Any], tuning: Tuning | None = None) -> dict[str, Any]:
    """Replay the readings in time order as the controller would see them; never reads truth."""
    hz = float(scenario["sample_hz"])
    t_open, t_close = float(scenario["door_open_s"]), float(scenario["door_close_s"])
    end = float(scenario.get("end_s", 0.0))
    w = SessionWeigher(plans_of(scenario), tuning)
    events: list[tuple[float, int, str, float | None]] = []
    for sid, rd in scenario["readings"].items():
        t0 = float(rd.get("t0", 0.0))
        for i, g in enumerate(rd["g"]):
            events.append((t0 + i / hz, 1, sid, g))
    # Door events sort before readings at the same instant.
    events += [(t_open, 0, "open", None), (t_close, 0, "close", None)]
    events.sort(key=lambda e: (e[0], e[1]))
    verdict = None
    for t, kind, sid, g in events:
        if kind == 0:
            (w.door_opened if sid == "open" else w.door_closed)(t)
            continue
        w.feed(sid, t, g)
        if t >= t_close:
            verdict = w.poll(t)
            if verdict is not None:
                break
    if verdict is None:
        verdict = w.decide_now(max(end, events[-1][0]))
    return verdict.to_json(str(scenario.get("id", "")))
