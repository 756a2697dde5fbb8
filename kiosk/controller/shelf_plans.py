"""What the weigher knows of a door: its shelves, lanes, unit weights and prices."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kiosk import clock as wall
from kiosk import journal, unit_weights
from kiosk.controller.base import Base

log = logging.getLogger("kiosk.controller")


def division_for(capacity_g: int) -> float:
    """Transmitters show at most ~30000 divisions: heavy shelves count in 2 g or 5 g."""
    return 1.0 if capacity_g <= 30_000 else 2.0 if capacity_g <= 60_000 else 5.0


def price_at(db: Any, sku: str, at: str) -> int | None:
    try:
        from kiosk import catalog

        return int(catalog.price_at(db, sku, at))
    except LookupError:  # no price yet at that time: the product's current price
        return journal.price_at(db, sku, at)


def _take_text(take: Sequence[tuple[str, int]], name: Callable[[str], str]) -> str:
    return " + ".join(name(sku) + (f" x{n}" if n > 1 else "") for sku, n in take)


class ShelfPlans(Base):
    def _unit_weight(self, sku: str) -> tuple[float, float]:
        """Grams and sd of one unit: learned on this cabinet (the sd also carries what is
        still unknown about the mean), else the catalogue's. The weigher, the planogram check
        and restock counts all use it."""
        p = self._products[sku]
        return unit_weights.unit(self.db.conn, sku, float(p.unit_g), float(p.unit_sd_g))

    def _shelf_warnings(self, shelf: str, skus: Sequence[str]) -> tuple[list[str], list[str]]:
        """The weighing warnings for these lanes on ``shelf``: texts naming the products
        (Chinese names, English names), ``"{shelf}: A x2 (530 g) / B + C (530 g)"``."""
        from kiosk.weighing import LaneStock, ShelfPlan, planogram_warnings

        s = next(x for x in self.cfg.shelves if x.id == shelf)
        stock = []
        for sku in skus:
            if sku in self._products:
                unit, sd = self._unit_weight(sku)
                stock.append(LaneStock(sku, unit, sd, self._products[sku].price_fen, 1))
        plan = ShelfPlan(shelf, tuple(stock), division_for(s.capacity_g), float(s.capacity_g))
        zh: list[str] = []
        en: list[str] = []
        for w in planogram_warnings([plan]):
            for out, attr in ((zh, "zh"), (en, "en")):

                def name(sku: str, attr: str = attr) -> str:
                    p = self._products.get(sku)
                    return getattr(p, attr) if p else sku

                out.append(
                    f"{shelf}: {_take_text(w.take_a, name)} ({w.grams_a:.0f} g) / "
                    f"{_take_text(w.take_b, name)} ({w.grams_b:.0f} g)"
                )
        return zh, en

    # -- weighing ----------------------------------------------------------------------------------
    def _new_weigher(
        self, door: str, prices: Mapping[str, int], synthetic: Mapping[str, Any] | None = None
    ) -> Any:
        from kiosk.weighing.model import LaneStock, ShelfPlan

        factory = self._weigher_factory
        if factory is None:
            from kiosk.weighing.session import SessionWeigher

            factory = SessionWeigher
        lanes = self._door_lanes(door)
        plans = []
        for s in self.cfg.shelves_of(door):
            stock = []
            for ln in lanes:
                p = self._products.get(ln.sku)
                if ln.shelf != s.id or p is None:
                    continue
                unit, sd = self._unit_weight(ln.sku)
                stock.append(LaneStock(ln.sku, unit, sd, prices.get(ln.sku, p.price_fen), ln.count))
            plans.append(
                ShelfPlan(s.id, tuple(stock), division_for(s.capacity_g), float(s.capacity_g))
            )
        w = factory(plans)
        if synthetic:
            t0 = self.clock() - 1.5
            for sid, b in synthetic.items():
                samples = [g for g in (b.get("samples") or []) if g is not None] or (
                    [b["g"]] * 8 if b.get("g") is not None else []
                )
                for i, g in enumerate(samples):
                    w.feed(sid, t0 + i * (1.4 / max(1, len(samples))), float(g), True)
        return w

    def _prices_at(self, door: str, at: str) -> dict[str, int]:
        out = {}
        for ln in self._door_lanes(door):
            p = price_at(self.db, ln.sku, at)
            if p is not None:
                out[ln.sku] = p
        return out

    def _door_value(self, door: str) -> int:
        prices = self._prices_at(door, wall.now_iso())
        return sum(ln.count * prices.get(ln.sku, 0) for ln in self._door_lanes(door))

    def _door_of_shelf(self, shelf: str) -> str | None:
        for s in self.cfg.shelves:
            if s.id == shelf:
                return s.door
        return None
