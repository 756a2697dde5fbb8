"""Weighing: what left the cabinet, from the shelves' load cells (pure, no I/O)."""

from kiosk.weighing.model import Basket, LaneStock, Move, ShelfPlan, Verdict
from kiosk.weighing.planogram import PlanogramWarning, planogram_warnings
from kiosk.weighing.scenario import plans_of, solve_scenario
from kiosk.weighing.session import SessionWeigher, Tuning

__all__ = [
    "Basket",
    "LaneStock",
    "Move",
    "PlanogramWarning",
    "SessionWeigher",
    "ShelfPlan",
    "Tuning",
    "Verdict",
    "planogram_warnings",
    "plans_of",
    "solve_scenario",
]
