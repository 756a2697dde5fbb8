"""Unit weights learned on the cabinet: the simulated honey is heavier than the catalogue says,
a restock and a few sales teach the controller its real weight, and a take the catalogue's
weight misreads is then read right."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kiosk import intents as I
from kiosk.controller.learning import shelf_change
from kiosk.payments import FakePaymentPort

from .conftest import OPERATOR_CARD, PIN
from .test_e2e_sim import PAY_CODE, Cab

HONEY, OIL = "hs-honey-500g", "bo-coconut-oil"
CATALOGUE_G = 735.0
TRUE_G = 770.0  # the jars on the shelf: 4.8 % heavier than the catalogue


@pytest.fixture
def sim_config_path(tmp_path: Path) -> Path:
    """The example cabinet whose simulated honey weighs TRUE_G (the controller's database
    still imports the catalogue's 735 g)."""
    from tests.conftest import write_sim_config

    path = write_sim_config(tmp_path)
    cat = json.loads((tmp_path / "catalog.json").read_text(encoding="utf-8"))
    for p in cat["products"]:
        if p["sku"] == HONEY:
            assert p["unit_g"] == CATALOGUE_G
            p["unit_g"] = TRUE_G
    (tmp_path / "catalog.json").write_text(json.dumps(cat), encoding="utf-8")
    return path


def learned(c: Cab, seen: list[float]) -> float:
    """Once the shelf is still and every jar seen is learned: the learned mean's distance
    from the mean of those jars' true weights."""
    end = time.monotonic() + 15.0
    while time.monotonic() < end:
        rows = c.rows("SELECT mean_g, n FROM unit_weights WHERE sku = ?", (HONEY,))
        if rows and rows[0][1] == len(seen):
            return abs(rows[0][0] - sum(seen) / len(seen))
        time.sleep(0.1)
    raise AssertionError(f"{len(seen)} jars not learned: {rows}")


def sell(c: Cab, n: int) -> list[float]:
    # the next customer comes once the shelf is still: a baseline taken on the last
    # session's settling tail teaches nothing
    time.sleep(2.5)
    c.open_session(PAY_CODE)  # a staff card's offline limit is under three jars a day
    grams = c.c.take("D1-S2", HONEY, n)
    c.close()
    r = c.receipt()
    assert [(i.sku, i.qty) for i in r.items] == [(HONEY, n)] and not r.review
    c.ctl.submit(I.DismissReceipt())
    return grams


def test_restock_and_sales_teach_the_real_weight(sim_cabinet, sim_control):
    c = Cab(sim_cabinet, sim_control, FakePaymentPort())
    try:
        c.wait(lambda s: s.state == "idle", what="idle")
        # the operator sets four jars down and counts every lane of the shelf
        assert c.ctl.submit(I.OperatorLogin(card=OPERATOR_CARD, pin=PIN)).ok
        assert c.ctl.submit(I.OpenDoorForRestock("D1")).ok
        c.pull("D1", "restock door")
        seen = c.c.put("D1-S2", HONEY, 4)
        counts = (I.LaneCount("D1-S2", HONEY, 10), I.LaneCount("D1-S2", OIL, 4))
        assert c.ctl.submit(I.ConfirmCounts("D1", counts)).ok
        c.close()  # at once: the restock is recorded while the jars still settle
        c.wait(lambda s: s.session is None, what="restock recorded")
        c.ctl.submit(I.OperatorLogout())
        # four jars against the catalogue's prior: most of the way there at once
        assert learned(c, seen) < 0.2 * (TRUE_G - CATALOGUE_G), seen

        # two customers take a jar each (sure verdicts: they teach too) ...
        for _ in range(2):
            seen += sell(c, 1)
            assert learned(c, seen) < 5, seen
        # ... and four jars at once, which the catalogue's 735 g reads as 3 jars and a
        # bottle of oil (3 x 735 + 890 = 3095 g against about 3080 g), are charged as 4 jars
        seen += sell(c, 4)
        assert learned(c, seen) < 4, seen
        assert c.rows("SELECT COUNT(*) FROM sales WHERE review = 0") == [(3,)]
    finally:
        c.ctl.stop()


def test_a_shelf_still_moving_measures_nothing():
    base = [1000.0, 1000.8, 999.4, 1000.2, 999.9, 1000.5]
    settled = [264.7, 265.5, 265.1, 264.9, 265.3]
    ch = shelf_change(base, settled, 1.0)
    assert ch is not None and abs(ch.grams - (265.1 - 1000.15)) < 0.2 and 0.3 < ch.noise_g < 1.0
    assert shelf_change(base, [300.0, 285.0, 275.0, 270.0, 267.0], 1.0) is None
    assert shelf_change([], settled, 1.0) is None
