"""Restock arithmetic: which whole counts per lane the shelf's weight change says.

A shelf carries several lanes on one load cell, so its weight change is a sum; we look for the
combination of per-lane count changes closest to it (fewest lanes changed on a tie) and call it
exact when it lies within three standard deviations of the measured change.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class LaneUnit:
    sku: str
    count: int  # before the restock
    unit_g: float
    unit_sd_g: float


@dataclass(frozen=True)
class Counted:
    counts: dict[str, int]  # sku -> whole count the weight says now
    exact: bool


MAX_ADD = 40  # per lane and session; more than a lane can hold


def weighed_counts(lanes: Sequence[LaneUnit], delta_g: float, noise_g: float = 2.0) -> Counted:
    if not lanes:
        return Counted({}, abs(delta_g) < 3 * noise_g + 5)
    if len(lanes) > 3:  # too many combinations to tell apart: keep what inventory says
        return Counted({ln.sku: ln.count for ln in lanes}, False)
    ranges = [range(-ln.count, MAX_ADD + 1) for ln in lanes]
    best: tuple[float, int, tuple[int, ...]] | None = None
    for ds in itertools.product(*ranges):
        g = sum(d * ln.unit_g for d, ln in zip(ds, lanes, strict=True))
        key = (abs(g - delta_g), sum(1 for d in ds if d), ds)
        if best is None or key[:2] < best[:2]:
            best = key
    assert best is not None
    ds = best[2]
    sd = math.sqrt(
        noise_g**2 * 2 + sum((abs(d) * ln.unit_sd_g) ** 2 for d, ln in zip(ds, lanes, strict=True))
    )
    return Counted(
        {ln.sku: ln.count + d for d, ln in zip(ds, lanes, strict=True)}, best[0] <= 3 * sd + 1
    )


def default_expiry(today: date, shelf_life_days: int | None) -> str:
    """A new batch's expiry: today plus the product's shelf life (a year when unknown)."""
    return (today + timedelta(days=shelf_life_days or 365)).isoformat()
