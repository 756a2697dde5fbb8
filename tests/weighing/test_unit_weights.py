"""Unit weights kept per cabinet (kiosk/unit_weights.py), and what learning them changes."""

from __future__ import annotations

import random

import pytest

from kiosk import db, unit_weights
from kiosk.weighing import LaneStock, learn, solve_scenario

from .streams import HONEY, Shelf, scenario

OIL = {"sku": "oil", "unit_g": 890, "unit_sd_g": 7, "price_fen": 7800}


def test_a_learned_weight_survives_the_database(kdb):
    conn = kdb.conn
    fresh = unit_weights.load(conn, "honey", 735.0, 6.0)
    assert fresh == learn.prior("honey", 735.0, 6.0)
    assert unit_weights.unit(conn, "honey", 735.0, 6.0) == (735.0, 6.0)  # the catalogue's

    rng = random.Random(5)
    w = learn.observe(fresh, sum(rng.gauss(770.0, 6.0) for _ in range(4)), 4, 0.6)
    for _ in range(6):
        w = learn.observe(w, rng.gauss(770.0, 6.0), 1, 0.6)
    with db.transaction(kdb):
        unit_weights.save(conn, w, "2025-03-01T08:00:00.000Z")
    back = unit_weights.load(conn, "honey", 735.0, 6.0)
    assert (back.mean_g, back.sd_g, back.n) == pytest.approx((w.mean_g, w.sd_g, w.n))
    # the weigher sees the learned mean, with an sd that still carries its uncertainty
    unit_g, sd_g = unit_weights.unit(conn, "honey", 735.0, 6.0)
    assert unit_g == pytest.approx(w.mean_g) and back.sd_g < sd_g < back.sd_g + 1.0

    # saving again replaces the row; a transaction that fails leaves the last one
    w2 = learn.observe(back, 771.0, 1, 0.6)
    with db.transaction(kdb):
        unit_weights.save(conn, w2, "2025-03-01T08:01:00.000Z")
    with pytest.raises(RuntimeError), db.transaction(kdb):
        unit_weights.save(conn, learn.observe(w2, 772.0, 1, 0.6), "2025-03-01T08:02:00.000Z")
        raise RuntimeError("power lost before the transaction committed")
    rows = conn.execute("SELECT n, updated_at FROM unit_weights").fetchall()
    assert rows == [(w.n + 1, "2025-03-01T08:01:00.000Z")]


def test_a_take_the_catalogue_misreads_is_read_right_with_the_learned_weight():
    """Jars 4.8 % heavier than the catalogue: four of them weigh what three jars and a bottle
    of oil should. Once learned, the same readings say four jars."""

    def four_jars(honey: dict) -> dict:
        sc = scenario([Shelf("D1-S2", [(honey, 10), (OIL, 4)], steps=[(4.0, -4 * 770.0)])])
        return solve_scenario(sc)

    w = learn.prior("honey", 735.0, 6.0)
    for _ in range(3):
        w = learn.observe(w, 2 * 770.0, 2, 0.6)
    lane = learn.refined(LaneStock("honey", 735.0, 6.0, 6800, 10), w)
    before = four_jars(HONEY)
    after = four_jars({**HONEY, "unit_g": lane.unit_g, "unit_sd_g": lane.unit_sd_g})
    assert before["uncertain"] or before["taken"] != {"honey": 4}
    assert after["taken"] == {"honey": 4} and not after["uncertain"]
