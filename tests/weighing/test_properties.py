"""Property tests: what must hold for any small perturbation of a clear session."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.weighing import solve_scenario
from tests.weighing.streams import HONEY, RICE, TEA, Shelf, scenario

BASE = scenario(
    [
        Shelf("D1-S1", [(HONEY, 4), (TEA, 6)], [(4.0, -735.0), (5.0, -210.0)]),
        Shelf("D1-S2", [(RICE, 3)]),
    ]
)
CLEAR = solve_scenario(BASE)


def test_the_base_session_is_clear():
    assert CLEAR["taken"] == {"honey": 1, "tea": 1} and not CLEAR["uncertain"]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), share=st.floats(0.0, 1.0))
def test_noise_below_the_resolution_never_changes_a_clear_verdict(seed, share):
    """Moving any share of the readings by one division (the least a reading can show)."""
    rng = random.Random(seed)
    sc = {**BASE, "readings": {}}
    for sid, rd in BASE["readings"].items():
        g = [
            v + rng.choice((-1.0, 1.0)) if v is not None and rng.random() < share else v
            for v in rd["g"]
        ]
        sc["readings"][sid] = {**rd, "g": g}
    r = solve_scenario(sc)
    assert r["taken"] == CLEAR["taken"] and not r["uncertain"] and not r["fault"]


@settings(max_examples=20, deadline=None)
@given(offset=st.floats(-5000.0, 5000.0), scale_hz=st.sampled_from([5.0, 10.0, 20.0]))
def test_the_verdict_does_not_depend_on_tare_or_sample_rate(offset, scale_hz):
    shelves = [
        Shelf("D1-S1", [(HONEY, 4), (TEA, 6)], [(4.0, -735.0)]),
        Shelf("D1-S2", [(RICE, 3)], [(5.0, -5020.0)]),
    ]
    sc = scenario(shelves, hz=scale_hz)
    for rd in sc["readings"].values():
        rd["g"] = [None if v is None else v + round(offset) for v in rd["g"]]
    r = solve_scenario(sc)
    assert r["taken"] == {"honey": 1, "rice": 1} and not r["uncertain"]
