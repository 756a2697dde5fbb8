"""The physical model on a hand-moved clock: doors, items, load-cell signal, calibration."""

from __future__ import annotations

import pytest

from kiosk.config import Config
from simulators.model import (
    PULSE_S,
    STATUS_AT_ZERO,
    STATUS_OVERLOAD,
    STATUS_UNSTABLE,
    TAU_S,
    CabinetModel,
    ModelError,
    load_unit_weights,
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(cfg: Config, clock: FakeClock) -> CabinetModel:
    return CabinetModel(cfg, load_unit_weights(cfg.simulator.catalog), clock)


def grams(m: CabinetModel, shelf: str) -> float:
    r = m.reading(shelf)
    return r.divisions * r.division


def test_door_opens_only_after_a_pulse_and_a_pull(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    assert not m.pull("D1") and not m.unlatched("D1")
    m.pulse("D1")
    assert m.unlatched("D1")  # the board reports the latch released at once
    clock.advance(PULSE_S / 2)
    assert m.pull("D1")
    clock.advance(PULSE_S * 3)
    assert m.unlatched("D1") and m.state()["doors"]["D1"] == {"latched": False, "open": True}
    m.push("D1")
    assert not m.unlatched("D1") and m.state()["doors"]["D1"] == {"latched": True, "open": False}


def test_a_pulse_nobody_follows_relatches(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    m.pulse("D2")
    clock.advance(PULSE_S + 0.1)
    assert not m.unlatched("D2")
    assert not m.pull("D2")


def test_force_opens_without_the_lock(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    m.force("D1")
    assert m.unlatched("D1") and m.state()["doors"]["D1"]["open"]


def test_stuck_sensor_keeps_its_value(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    m.stick_sensor("D1", True)
    m.force("D1")
    assert not m.unlatched("D1")
    m.stick_sensor("D1", False)
    assert m.unlatched("D1")


def test_take_needs_an_open_door_and_drops_the_shelf_by_the_item(
    example_cfg: Config, clock: FakeClock
) -> None:
    m = make(example_cfg, clock)
    with pytest.raises(ModelError, match="shut"):
        m.take("D1-S2", "hs-honey-500g")
    before = grams(m, "D1-S2")
    m.force("D1")
    (w,) = m.take("D1-S2", "hs-honey-500g")
    mean, sd = load_unit_weights(example_cfg.simulator.catalog)["hs-honey-500g"]
    assert abs(w - mean) <= 5 * sd
    clock.advance(12 * TAU_S)
    assert grams(m, "D1-S2") == pytest.approx(before - w, abs=5)
    assert m.state()["shelves"]["D1-S2"]["items"]["hs-honey-500g"] == 5


def test_an_item_keeps_its_weight_when_moved(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    m.force("D1")
    (w,) = m.take("D1-S2", "hs-honey-500g")
    assert m.put("D1-S3", "hs-honey-500g") == [w]
    assert m.put("D1-S3", "hs-honey-500g") != [w]  # the hand is empty: a new jar


def test_weights_vary_between_items_but_repeat_with_the_seed(
    example_cfg: Config, clock: FakeClock
) -> None:
    a, b = make(example_cfg, clock), make(example_cfg, clock)
    assert a.state() == b.state()
    rice = a.shelves["D1-S1"].lanes["zr-rice-5kg"]
    assert len(set(rice)) == len(rice)


def test_settling_and_unstable_flag_after_a_put(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    m.force("D1")
    clock.advance(10)
    start = grams(m, "D1-S3")
    assert not m.reading("D1-S3").status & STATUS_UNSTABLE
    (w,) = m.put("D1-S3", "hs-tea-100g")
    clock.advance(0.1)
    r = m.reading("D1-S3")
    assert r.status & STATUS_UNSTABLE
    assert grams(m, "D1-S3") - start < w * 1.3  # still on its way (impact included)
    clock.advance(12 * TAU_S)
    assert not m.reading("D1-S3").status & STATUS_UNSTABLE
    assert grams(m, "D1-S3") == pytest.approx(start + w, abs=4)


def test_lean_presses_for_a_while(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    start = grams(m, "D2-S1")
    m.lean("D2-S1", 3000, 5)
    clock.advance(4)
    assert grams(m, "D2-S1") == pytest.approx(start + 3000, abs=20)
    clock.advance(10)
    assert grams(m, "D2-S1") == pytest.approx(start, abs=4)
    assert m.state()["shelves"]["D2-S1"]["load_g"] == pytest.approx(start, abs=4)


def test_noise_is_the_same_for_every_reader_at_one_instant(
    example_cfg: Config, clock: FakeClock
) -> None:
    m = make(example_cfg, clock)
    assert m.reading("D1-S2") == m.reading("D1-S2")
    seen = set()
    for _ in range(50):
        clock.advance(0.05)
        seen.add(m.reading("D1-S2").divisions)
    assert 2 <= len(seen) <= 12  # noise of a gram or so, not zero, not wild


def test_zero_and_gain_calibration(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    m.stock("D2-S2", "bo-coco-powder", 0)
    m.stock("D2-S2", "hs-radish-400g", 0)
    m.foreign("D2-S2", 250)  # a tray nobody told the shelf about
    clock.advance(10)
    m.zero("D2-S2")
    assert abs(grams(m, "D2-S2")) <= 3
    assert m.reading("D2-S2").status & STATUS_AT_ZERO or abs(grams(m, "D2-S2")) > 0
    m.foreign("D2-S2", 1000)
    clock.advance(10)
    m.calibrate("D2-S2", 2000)  # told 2 kg: every gram now shows as two
    m.foreign("D2-S2", 1000)
    clock.advance(10)
    assert grams(m, "D2-S2") == pytest.approx(4000, abs=8)


def test_overload_and_divisions(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    assert m.reading("D1-S1").division == 2  # 50 kg cell
    assert m.reading("D1-S2").division == 1
    m.foreign("D1-S2", 20_000)
    clock.advance(10)
    assert m.reading("D1-S2").status & STATUS_OVERLOAD


def test_stock_is_immediate_and_rejects_unknown_skus(example_cfg: Config, clock: FakeClock) -> None:
    m = make(example_cfg, clock)
    m.stock("D2-S4", "hs-fish-150g", 0)
    m.stock("D2-S4", "bo-shell-craft", 0)
    assert abs(grams(m, "D2-S4")) <= 4
    with pytest.raises(ModelError, match="catalogue"):
        m.stock("D2-S4", "no-such-sku", 1)
