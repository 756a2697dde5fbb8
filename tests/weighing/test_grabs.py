"""What the shelf did while the door was open: the size and the order of each hand's action."""

from __future__ import annotations

from kiosk.weighing import explain, solve_scenario
from tests.weighing.streams import CANDY, RICE, Shelf, scenario

EGGS = {"sku": "eggs", "unit_g": 620, "unit_sd_g": 25, "price_fen": 2000}
DOUCHI = {"sku": "douchi", "unit_g": 262, "unit_sd_g": 3, "price_fen": 1200}


def test_each_grab_is_whole_items_of_one_product():
    # 1781 g left: 3 light eggs, or 2 eggs and 2 candies. The shelf rested between grabs:
    # an egg (636 g), then 530 g (2 candies; no egg weighs that), then an egg (615 g).
    shelves = [
        Shelf("D1-S1", [(EGGS, 6), (CANDY, 6)], [(3.0, -636), (4.5, -530), (6.0, -615)]),
        Shelf("D1-S2", [(RICE, 3)]),
    ]
    r = solve_scenario(scenario(shelves, close_s=7.5, end_s=16.0))
    # The cheaper 3 eggs stays possible (a grab may be misread): the customer confirms, but
    # the reading shown first is the right one, and by a wide margin.
    assert r["taken"] == {"eggs": 2, "candy": 2}
    assert r["confidence"] > 0.9


def test_an_item_is_put_down_after_it_was_lifted():
    # D1-S2 dips by one douchi (262 g) and is back before D1-S1 loses a candy (265 g): a
    # douchi lifted and put back, not a douchi taken and the candy moved onto D1-S2.
    shelves = [
        Shelf("D1-S1", [(CANDY, 5)], [(6.0, -265)]),
        Shelf("D1-S2", [(DOUCHI, 6)], [(3.0, -262), (4.5, +265)]),
    ]
    r = solve_scenario(scenario(shelves, close_s=7.5, end_s=16.0))
    assert r["taken"] == {"candy": 1}
    assert not r["misplaced"]
    assert not r["uncertain"]


def test_more_grabs_show_a_rest_more_often_but_a_sweep_stays_possible():
    seen = explain.level_seen
    # Two of one product often leave in one grab; more items, or two products, in more.
    assert seen((2,), ()) < seen((3,), ())
    assert seen((2,), ()) < seen((1, 1), ())
    # A hand sweeping several items off at once is never ruled out, however many ...
    assert seen((8,), ()) == seen((2, 2, 2), ()) == 1.0 - explain.SWEEP
    # ... but putting an item down and lifting another are two motions, never one sweep.
    assert seen((3,), ("tea",)) > 0.9
