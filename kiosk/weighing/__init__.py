"""Weighing: what left the cabinet, from the shelves' load cells (pure, no I/O)."""

from kiosk.weighing.model import Basket, LaneStock, Move, ShelfPlan, Verdict
from kiosk.weighing.scenario import plans_of, solve_scenario
from kiosk.weighing.session import SessionWeigher, Tuning

__all__ = [
    "Basket",
    "LaneStock",
    "Move",
    "ShelfPlan",
    "SessionWeigher",
    "Tuning",
    "Verdict",
    "plans_of",
    "solve_scenario",
]
