"""Learning unit weights from what a sale or a restock measured on its shelves.

Only a shelf whose weight change belongs to one product teaches anything: a restock that
changed one lane of it, or a sure (or customer-confirmed) sale that took one product from it
with nothing moved, left or faulted there. Recording the session notes such a shelf
(``Observation``, in memory); the change is measured once the shelf is still (the verdict, and
a restock closed right after the last jar went down, come while a cell still creeps towards
its level: about 1 % of a jar in the simulator), as the settled level minus the session's
baseline, and ``learn.observe`` weighs it by the shelf's noise and ignores one that is far off
(a wrong count is not a weight). The row is written in one transaction; a crash before that
loses one observation, never a sale, and a weight is only ever learned from a recorded one.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kiosk import clock as wall
from kiosk import db as kdb
from kiosk import unit_weights
from kiosk.controller.base import Base
from kiosk.controller.live import BASELINE_LEVEL_SAMPLES, Live
from kiosk.controller.shelf_plans import division_for
from kiosk.weighing import Move, learn

log = logging.getLogger("kiosk.controller")

SETTLE_S = 1.5  # after the session is recorded, look for a still shelf from then on ...
GIVE_UP_S = 20.0  # ... for this long (or until the next session on the door)
LEVEL_S = 1.0  # the shelf's level now: its readings over this last stretch ...
FLAT_SIGMAS = 5.0  # ... whose spread stays under this many sds (plus a division) ...
TREND_SIGMAS = 3.0  # ... and whose halves differ by less than this many sds of that difference


@dataclass(frozen=True)
class ShelfChange:
    grams: float  # settled level now minus the baseline
    noise_g: float  # its sd from the reading noise


@dataclass(frozen=True)
class Observation:
    """``items`` of ``sku`` (negative: taken) are the whole change of ``shelf`` since ``base``."""

    door: str
    shelf: str
    sku: str
    items: int
    base: tuple[float, ...]  # the shelf's samples before the door opened
    due: float  # controller clock: measure from then on


def shelf_change(
    baseline: Sequence[float], recent: Sequence[float], division: float
) -> ShelfChange | None:
    """The change from ``baseline`` (samples before the door opened) to ``recent`` (the
    last readings); None when either is missing or the shelf was or is still moving."""
    base = list(baseline[-BASELINE_LEVEL_SAMPLES:])  # as the session's baseline level
    if not base or len(recent) < 3:
        return None
    diffs = [b - a for xs in (baseline, recent) for a, b in itertools.pairwise(xs)]
    # successive differences: the reading noise, blind to a slow creep of the level
    sigma = math.sqrt(sum(d * d for d in diffs) / (2 * len(diffs))) if len(diffs) >= 4 else division
    sigma = max(sigma, division / math.sqrt(12.0))  # a quiet cell still rounds to its division
    if not (_still(baseline, sigma, division) and _still(recent, sigma, division)):
        return None
    grams = sum(recent) / len(recent) - sum(base) / len(base)
    return ShelfChange(grams, sigma * math.sqrt(1.0 / len(base) + 1.0 / len(recent)))


def _still(xs: Sequence[float], sigma: float, division: float) -> bool:
    if len(xs) < 3 or max(xs) - min(xs) > FLAT_SIGMAS * sigma + division:
        return False
    half = len(xs) // 2  # the tail of a settling cell: too slow for the spread to show
    trend = sum(xs[half:]) / (len(xs) - half) - sum(xs[:half]) / half
    return abs(trend) <= TREND_SIGMAS * sigma * math.sqrt(4.0 / len(xs))


class Learning(Base):
    _to_learn: list[Observation]  # noted by recorded sessions, waiting for still shelves

    def _learn_when_still(self, now: float, door: str | None = None) -> None:
        """Learn from every noted shelf that is still now; drop those that waited too long,
        and (``door``: a session opens there) those of that door, whose baseline moves on."""
        ready = [o for o in self._to_learn if now >= o.due or o.door == door]
        if not ready:
            return
        done: list[tuple[Observation, ShelfChange]] = []
        for o in ready:
            ch = self._shelf_change(o)
            if ch is not None:
                done.append((o, ch))
            elif now < o.due + GIVE_UP_S and o.door != door:
                continue
            else:
                log.info("unit weight %s: %s never still, nothing learned", o.sku, o.shelf)
            self._to_learn.remove(o)
        if done:
            at = wall.now_iso()
            with kdb.transaction(self.db):
                for o, ch in done:
                    self._observe(o, ch, at)

    def _forget_learning(self, shelf: str) -> None:
        """The shelf was recalibrated: a change noted before measures nothing."""
        self._to_learn = [o for o in self._to_learn if o.shelf != shelf]

    def _shelf_change(self, o: Observation) -> ShelfChange | None:
        ring = self.ring.get(o.shelf) or ()
        if not ring:
            return None
        end = ring[-1].t
        recent = [r.grams for r in ring if r.grams is not None and r.t > end - LEVEL_S]
        s = next(x for x in self.cfg.shelves if x.id == o.shelf)
        ch = shelf_change(o.base, recent, division_for(s.capacity_g))
        return ch if ch is not None and ch.grams * o.items > 0 else None

    def _observe(self, o: Observation, ch: ShelfChange, at: str) -> None:
        p = self._products.get(o.sku)
        if p is None:
            return
        w = unit_weights.load(self.db.conn, o.sku, float(p.unit_g), float(p.unit_sd_g))
        new = learn.observe(w, ch.grams, abs(o.items), ch.noise_g)
        if new is w:
            log.info("unit weight %s: %+.1f g for %+d ignored (off)", o.sku, ch.grams, o.items)
            return
        unit_weights.save(self.db.conn, new, at)
        log.info("unit weight %s: %.1f g sd %.1f n %d", o.sku, new.mean_g, new.sd_g, new.n)

    def _note(self, live: Live, shelf: str, sku: str, items: int) -> None:
        base = [g for g in (live.baseline.get(shelf) or {}).get("samples") or () if g is not None]
        if base:
            obs = Observation(live.door, shelf, sku, items, tuple(base), self.clock() + SETTLE_S)
            self._to_learn.append(obs)

    def _learn_from_restock(
        self,
        live: Live,
        before: Mapping[tuple[str, str], int],
        after: Iterable[Mapping[str, Any]],
    ) -> None:
        """``before``: (shelf, sku) -> count; ``after``: the lanes as the restock set them."""
        added: dict[str, list[tuple[str, int]]] = {}
        for ln in after:
            shelf, sku, count = str(ln["shelf"]), str(ln["sku"]), int(ln["count"])
            if count != before.get((shelf, sku), 0):
                added.setdefault(shelf, []).append((sku, count - before.get((shelf, sku), 0)))
        for shelf, lanes in added.items():
            if len(lanes) == 1:
                self._note(live, shelf, *lanes[0])

    def _learn_from_sale(
        self,
        live: Live,
        taken: Mapping[str, int],
        moves: Sequence[Move],
        unexplained: Iterable[str],
    ) -> None:
        """``unexplained``: shelves with a foreign object or a fault (they teach nothing)."""
        skip = set(unexplained) | {m.src for m in moves} | {m.dst for m in moves}
        shelves_of: dict[str, set[str]] = {}
        for ln in self._door_lanes(live.door):
            shelves_of.setdefault(ln.sku, set()).add(ln.shelf)
        took: dict[str, list[str]] = {}
        for sku in taken:
            for shelf in shelves_of.get(sku, ()):
                took.setdefault(shelf, []).append(sku)
        for shelf, skus in took.items():
            # one product, and from this shelf only: the whole change is its items
            if shelf in skip or len(skus) != 1 or shelves_of[skus[0]] != {shelf}:
                continue
            self._note(live, shelf, skus[0], -taken[skus[0]])
