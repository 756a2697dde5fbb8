"""Planogram check: which small takes on a shelf the load cell cannot tell apart.

Stock is ignored (it changes every day): every take of up to ``max_items`` items is compared
with every other, and a pair closer than ``k`` sigma is a warning. Sigma covers both takes' unit
sds, a catalogue bias of a fraction of a percent, and the cell's noise on both readings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations_with_replacement

from kiosk.weighing.explain import REL_BIAS
from kiosk.weighing.model import LaneStock, ShelfPlan

Take = tuple[tuple[str, int], ...]  # (sku, n), sorted by sku


@dataclass(frozen=True)
class PlanogramWarning:
    shelf: str
    take_a: Take
    take_b: Take
    grams_a: float
    grams_b: float
    sigma_g: float

    @property
    def separation(self) -> float:
        """How many sigma apart the two takes are."""
        return abs(self.grams_a - self.grams_b) / self.sigma_g if self.sigma_g else 0.0

    def __str__(self) -> str:
        def name(t: Take) -> str:
            return " + ".join(f"{n} x {sku}" for sku, n in t)

        return (
            f"{self.shelf}: {name(self.take_a)} ({self.grams_a:.0f} g) and "
            f"{name(self.take_b)} ({self.grams_b:.0f} g) cannot be told apart "
            f"({self.separation:.1f} sigma)"
        )


def _takes(lanes: Sequence[LaneStock], max_items: int) -> list[tuple[Take, float, float]]:
    out = []
    for k in range(1, max_items + 1):
        for combo in combinations_with_replacement(range(len(lanes)), k):
            counts: dict[int, int] = {}
            for i in combo:
                counts[i] = counts.get(i, 0) + 1
            mu = sum(lanes[i].unit_g * n for i, n in counts.items())
            var = sum(
                n * lanes[i].unit_sd_g ** 2 + (n * REL_BIAS * lanes[i].unit_g) ** 2
                for i, n in counts.items()
            )
            take = tuple(sorted((lanes[i].sku, n) for i, n in counts.items()))
            out.append((take, mu, var))
    return out


def planogram_warnings(
    shelves: Sequence[ShelfPlan],
    noise_g: float | None = None,
    max_items: int = 3,
    k_sigma: float = 3.0,
) -> list[PlanogramWarning]:
    """Pairs of takes of 1..``max_items`` items per shelf closer than ``k_sigma`` sigma.

    Pairs made of the same products (2 x A vs 2 x A) never collide; a pair that differs only
    by adding the same items to both sides is reported once, in its smallest form.
    """
    out: list[PlanogramWarning] = []
    for shelf in shelves:
        lanes = [ln for ln in shelf.stock if ln.unit_g > 0]
        noise = noise_g if noise_g is not None else max(shelf.division_g, 1.0)
        takes = _takes(lanes, max_items)
        seen: set[tuple[Take, Take]] = set()
        for i, (ta, ma, va) in enumerate(takes):
            for tb, mb, vb in takes[i + 1 :]:
                sigma = math.sqrt(va + vb + 2.0 * noise**2)
                if abs(ma - mb) >= k_sigma * sigma:
                    continue
                a, b = _reduced(ta, tb)
                if not a or not b or (a, b) in seen:
                    continue
                seen.add((a, b))
                out.append(PlanogramWarning(shelf.id, ta, tb, ma, mb, sigma))
    return out


def _reduced(a: Take, b: Take) -> tuple[Take, Take]:
    """Cancel what both takes share: 2 x A + B vs 2 x A + C is really B vs C."""
    da, db = dict(a), dict(b)
    for sku in set(da) & set(db):
        m = min(da[sku], db[sku])
        da[sku] -= m
        db[sku] -= m
    ra = tuple(sorted((s, n) for s, n in da.items() if n))
    rb = tuple(sorted((s, n) for s, n in db.items() if n))
    return (ra, rb) if ra <= rb else (rb, ra)
