"""Planogram warnings and unit-weight learning."""

from __future__ import annotations

import random

from kiosk.weighing import LaneStock, ShelfPlan, learn, planogram_warnings


def lane(sku: str, g: float, sd: float) -> LaneStock:
    return LaneStock(sku, g, sd, 1000, 5)


def test_two_of_one_product_against_one_of_another_is_named():
    plan = ShelfPlan("D1-S1", (lane("bo-coco-candy", 265, 3), lane("big-jar", 530, 3)))
    warnings = planogram_warnings([plan])
    text = [str(w) for w in warnings]
    assert any("2 x bo-coco-candy" in t and "1 x big-jar" in t for t in text), text
    assert all(w.shelf == "D1-S1" for w in warnings)


def test_products_far_apart_give_no_warning():
    plan = ShelfPlan("D1-S2", (lane("honey", 735, 6), lane("tea", 210, 3)))
    assert planogram_warnings([plan]) == []


def test_a_noisier_cell_warns_about_more():
    plan = ShelfPlan("D1-S3", (lane("a", 262, 2), lane("b", 280, 2)))
    assert planogram_warnings([plan], noise_g=1.0, max_items=1) == []
    assert planogram_warnings([plan], noise_g=6.0, max_items=1)


def test_learning_moves_a_wrong_catalogue_mean_to_the_measured_one():
    rng = random.Random(3)
    w = learn.prior("honey", 735.0, 6.0)
    for _ in range(40):
        w = learn.observe(w, rng.gauss(750.0, 4.0), 1)
    w = learn.observe(w, sum(rng.gauss(750.0, 4.0) for _ in range(6)), 6)
    assert abs(w.mean_g - 750.0) < 2.0
    assert 2.5 < w.sd_g < 6.0
    assert w.n == 46
    lane_ = learn.refined(LaneStock("honey", 735.0, 6.0, 6800, 3), w)
    assert abs(lane_.unit_g - 750.0) < 2.0


def test_a_wrong_count_does_not_poison_the_weight():
    w = learn.prior("honey", 735.0, 6.0)
    w2 = learn.observe(w, 735.0 * 3, 2)  # three items counted as two
    assert w2 == w


def test_resuming_from_a_row_keeps_what_was_learned():
    w = learn.from_row("honey", 735.0, 6.0, 748.0, 4.0, 30)
    assert w.mean_g == 748.0 and w.n == 30 and abs(w.sd_g - 4.0) < 1e-9
    w = learn.observe(w, 749.0, 1)
    assert 748.0 < w.mean_g < 749.0
