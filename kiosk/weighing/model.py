"""The weighing contract: what the solver is told about the shelves, and what it answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class LaneStock:
    """One product's lane on a shelf, as the catalogue and inventory believe it to be."""

    sku: str
    unit_g: float
    unit_sd_g: float
    price_fen: int
    count: int


@dataclass(frozen=True)
class ShelfPlan:
    """One load cell and what stands on it."""

    id: str
    stock: tuple[LaneStock, ...]
    division_g: float = 1.0
    capacity_g: float = 30000.0


@dataclass(frozen=True)
class Move:
    """An item lifted from shelf ``src`` and put down on shelf ``dst`` (inventory, no sale)."""

    sku: str
    src: str
    dst: str

    def to_json(self) -> dict[str, str]:
        return {"sku": self.sku, "from": self.src, "to": self.dst}


@dataclass(frozen=True)
class Basket:
    """One explanation of the whole session, as shown to a customer asked to confirm."""

    taken: Mapping[str, int]
    misplaced: tuple[Move, ...]
    foreign: tuple[str, ...]
    charge_fen: int
    score: float  # posterior probability among the candidates considered


@dataclass(frozen=True)
class Verdict:
    """What left the cabinet. ``candidates`` are best first (>= 2 when ``uncertain``)."""

    taken: Mapping[str, int]
    misplaced: tuple[Move, ...]
    foreign: tuple[str, ...]
    fault: tuple[str, ...]
    uncertain: bool
    confidence: float
    decided_s: float
    candidates: tuple[Basket, ...]
    # Per-shelf notes for operators and logs: why a shelf was faulted, how it was read.
    faults_why: Mapping[str, str] | None = None

    @property
    def charge_fen(self) -> int:
        return self.candidates[0].charge_fen if self.candidates else 0

    def to_json(self, scenario_id: str | None = None) -> dict[str, object]:
        out: dict[str, object] = {} if scenario_id is None else {"id": scenario_id}
        out.update(
            taken={k: v for k, v in sorted(self.taken.items()) if v},
            misplaced=[m.to_json() for m in self.misplaced],
            foreign=list(self.foreign),
            fault=list(self.fault),
            uncertain=self.uncertain,
            confidence=round(self.confidence, 4),
            decided_s=round(self.decided_s, 3),
        )
        return out
