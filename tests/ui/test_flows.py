"""Whole flows on the real screens, offscreen, by touch, against the real controller driving the
simulated cabinet (real ptys, real drivers, a real SQLite file): what a customer or operator
does and sees. The hardware side (a card on the reader, a door pulled, goods taken) is the
simulator's control port; the screen side is taps on the widgets."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kivy.tests.common import GraphicUnitTest, UnitTestTouch

from tests.conftest import write_sim_config
from tests.controller.conftest import BLOCKED, KEY, OPERATOR_CARD, PIN, STAFF, prepare_db

# Examples' limits shortened so a flow never waits on a real-life timeout.
FAST = {"settle_timeout_s = 8": "settle_timeout_s = 3"}
# D1-S3 holding products whose sums collide: 2 candies (2 x 265 g, ¥36) weigh what a radish
# and a pepper (412 g + 118 g, ¥41) weigh. The card opens D1, so this shelf is behind it.
COLLIDING = {
    'lanes = [{sku = "hs-tea-100g", count = 8},'
    ' {sku = "zr-chili-sauce", count = 6, low_stock = 2}]': (
        'lanes = [{sku = "bo-coco-candy", count = 8}, {sku = "hs-radish-400g", count = 6},'
        ' {sku = "zr-pepper-powder", count = 8}]'
    ),
}


class Flow(GraphicUnitTest):
    replace: dict[str, str] = FAST

    @pytest.fixture(autouse=True)
    def _cabinet(self, tmp_path: Path):
        from kiosk import config
        from kiosk.cli import open_devices
        from kiosk.controller import Controller
        from simulators.cabinet import SimulatedCabinet
        from simulators.control import ControlClient

        cfg = config.load(write_sim_config(tmp_path, {**FAST, **self.replace}))
        self.sim = SimulatedCabinet(cfg).start()
        self.hw = ControlClient(self.sim.control_address)
        prepare_db(cfg.database, cfg)
        locks, scales, scanner = open_devices(cfg)
        self.cfg = cfg
        self.ctl = Controller(cfg, cfg.database, locks, scales, scanner, None, key=KEY)
        self.ctl.start()
        yield
        self.ctl.stop()
        self.hw.close()
        self.sim.stop()

    def setUp(self):
        super().setUp()
        from kivy.core.window import Window

        Window.size = (540, 960)

    def start(self):
        from ui.app import KioskApp

        # Attract mode is driven by hand (test_attract_...): Kivy's clock, not ticked while
        # earlier tests of this worker ran, would otherwise fire a 60 s timer at once.
        self.app = KioskApp(self.ctl, animate=False, attract_after_s=3600)
        self.render(self.app.attach())
        # Every shelf weighed once: until then the controller would pick another door.
        self.until(
            lambda: (
                self.screen == "idle"
                and self.app.snap.products
                and all(s.grams is not None for s in self.app.snap.shelves)
            ),
            "the idle wall, every shelf read",
            timeout=30.0,  # seven shelves polled while the rest of the suite loads the machine
        )
        self.frames(5)  # layouts settle before anything is tapped
        return self.app

    # -- waiting on the cabinet, frame by frame --
    def frames(self, n: int = 3) -> None:
        self.advance_frames(n)

    def until(self, pred, what: str, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.frames(1)
            if pred():
                return
            time.sleep(0.02)
        raise AssertionError(
            f"timed out waiting for {what}; on {self.screen}: {self.texts()}; {self.diagnosis()}"
        )

    def diagnosis(self) -> str:
        """What the controller and the simulator know, for a failure message."""
        now = self.ctl.clock()
        last = {s: (round(now - r.t, 2), r.grams, r.fault) for s, r in self.ctl.last.items()}
        snap = self.ctl.snapshot()
        doors = self.hw.command("state")["doors"]
        sessions = self.rows("SELECT kind, state, outcome, verdict_json FROM sessions")
        return (
            f"state={snap.state} session={snap.session} refusal={snap.refusal} doors={doors} "
            f"sessions={sessions} "
            f"oos={self.ctl.oos} faults={self.ctl.shelf_fault} last(age, g, fault)={last}"
        )

    def until_screen(self, name: str, timeout: float = 15.0) -> None:
        self.until(lambda: self.screen == name, f"screen {name}", timeout)
        self.frames()

    def hold(self, door: str = "D1") -> None:
        """The customer's hand is on the handle before the lock lets go, so the door swings
        open at once: a pulsed latch nobody pulls relocks after 3 s, and a loaded machine can
        take that long to draw the frames of a tap."""

        def pull() -> None:
            end = time.monotonic() + 15.0
            while time.monotonic() < end:
                if self.hw.pull(door):
                    self._opened = True
                    return
                time.sleep(0.02)

        self._opened = False
        self._hand = threading.Thread(target=pull, daemon=True)
        self._hand.start()

    def pull(self) -> None:
        """The held door is open, and the controller sees it."""
        self._hand.join()
        assert self._opened, f"the lock never let go; {self.diagnosis()}"
        self.until(lambda: self.ctl.snapshot().state == "open", "the controller to see it open")

    # -- the screen --
    def type_keys(self, text: str, gap_s: float) -> None:
        """Keys on a USB keyboard (a scanner or a person), then Enter, as SDL hands them to
        the real Window: a key-down per key, and the typed character as text input."""
        from kivy.core.window import Window

        for ch in text:
            Window.dispatch("on_key_down", ord(ch.lower()), 0, ch.lower(), [])
            Window.dispatch("on_textinput", ch)
            if gap_s:
                time.sleep(gap_s)
                self.frames(1)
        Window.dispatch("on_key_down", 13, 40, None, [])

    @property
    def screen(self) -> str:
        return self.app.sm.current

    def tap(self, widget) -> None:
        x, y = widget.to_window(*widget.center)
        t = UnitTestTouch(x, y)
        t.touch_down()
        t.touch_up()
        self.frames()

    def all_with(self, text: str) -> list:
        from ui.widgets import KButton, TapPanel

        out = []
        for w in self.app.sm.current_screen.walk():
            if (isinstance(w, KButton) and w.text == text) or (
                isinstance(w, TapPanel) and any(getattr(c, "text", "") == text for c in w.children)
            ):
                out.append(w)
        return out

    def find(self, text: str):
        """The visible button (or tile) showing ``text``."""
        found = self.all_with(text)
        if not found:
            raise AssertionError(f"no {text!r} on {self.screen}: {self.texts()}")
        return found[0]

    def texts(self) -> str:
        return " | ".join(
            getattr(w, "text", "")
            for w in self.app.sm.current_screen.walk()
            if getattr(w, "text", "")
        )

    def rows(self, sql: str) -> list[tuple]:
        from kiosk import db

        d = db.connect(self.cfg.database)
        try:
            return d.execute(sql).fetchall()
        finally:
            d.close()


class TestCustomer(Flow):
    def test_purchase_by_card(self):
        self.start()
        assert "蜂蜜" in self.texts() and "扶贫产品" in self.texts()
        self.hold()
        self.hw.scan(STAFF)  # a staff card on the reader
        self.pull()
        self.until_screen("door-open")
        assert self.ctl.snapshot().session.door == "D1"  # the door the test pulled
        assert "D1 号门已打开" in self.texts() and "请取走您需要的商品" in self.texts()
        self.hw.take("D1-S2", "hs-honey-500g")
        self.hw.push("D1")
        self.until_screen("receipt")
        shown = self.texts()
        assert "¥68.00" in shown and "本次消费帮扶了" in shown and "户" in shown
        self.tap(self.find("完成"))
        self.until_screen("idle")
        assert self.rows("SELECT total_fen FROM sales") == [(6800,)]
        # The wall shows the new stock: one honey fewer, on the card that was there before.
        honey = next(
            d for d in self.app.sm.current_screen.ids.wall.data if d["sku"] == "hs-honey-500g"
        )
        assert honey["stock"] == "有货 5"

    def test_refusal_says_why_and_goes_back(self):
        self.start()
        self.hw.scan(BLOCKED)
        self.until_screen("refused")
        assert "请联系您单位的管理员" in self.texts()
        self.tap(self.find("知道了"))
        self.until_screen("idle")
        assert self.rows("SELECT COUNT(*) FROM sessions WHERE outcome = 'sold'") == [(0,)]

    def test_a_keyboard_scanner_typing_into_the_screen_is_a_scan_a_person_is_not(self):
        self.start()
        self.type_keys(BLOCKED, gap_s=0.15)  # a person typing a card number by hand
        self.frames()
        assert self.screen == "idle"
        assert self.rows("SELECT COUNT(*) FROM auth_attempts") == [(0,)]
        self.type_keys(BLOCKED, gap_s=0.0)  # the USB scanner: the whole code in one burst
        self.until_screen("refused")  # what a serial scan of that card shows
        assert "请联系您单位的管理员" in self.texts()
        assert self.rows("SELECT COUNT(*) FROM auth_attempts") == [(1,)]

    def test_language_toggle_and_category_filter(self):
        self.start()
        self.tap(self.find("EN"))
        assert self.app.lang == "en" and "Tap staff card" in self.texts()
        self.tap(self.find("Drinks and brews"))
        wall = self.app.sm.current_screen.ids.wall.data
        drinks = {p.sku for p in self.ctl.snapshot().products if p.category == "drinks"}
        assert wall and {d["sku"] for d in wall} == drinks

    def test_attract_after_inactivity_and_back_on_touch(self):
        app = self.start()
        app._go_attract(0)
        self.frames()
        assert self.screen == "attract" and "带动" in self.texts()
        self.tap(app.sm.current_screen)
        assert self.screen == "idle"
        assert app._on_request_close() is True  # and customers cannot close the app


class TestUncertain(Flow):
    replace = COLLIDING

    def test_uncertain_purchase_confirmed_on_screen(self):
        self.start()
        self.hold()
        self.hw.scan(STAFF)
        self.pull()
        self.until_screen("door-open")
        self.hw.take("D1-S3", "hs-radish-400g")
        self.hw.take("D1-S3", "zr-pepper-powder")
        self.hw.push("D1")
        self.until_screen("confirm", timeout=20)
        shown = self.texts()
        # Both readings of 530 g, cheaper first: 2 candies ¥36, radish + pepper ¥41.
        assert shown.index("¥36.00") < shown.index("¥41.00")
        picks = self.all_with("就是这个")
        assert len(picks) >= 2
        self.tap(picks[1])  # what was really taken
        self.until_screen("receipt")
        assert "¥41.00" in self.texts()
        assert self.rows("SELECT sku, qty FROM sale_items ORDER BY sku") == [
            ("hs-radish-400g", 1),
            ("zr-pepper-powder", 1),
        ]
        assert self.rows("SELECT total_fen, review FROM sales") == [(4100, 0)]


class TestOperator(Flow):
    def to_login(self, by_staff_button: bool = False) -> None:
        """The operator's card on the reader: the idle screen goes to the PIN pad by itself
        (or the operator pressed 维护 first) and greets the card's owner."""
        self.start()
        if by_staff_button:
            self.tap(self.find("维护"))
            assert self.screen == "operator-login"
        self.hw.scan(OPERATOR_CARD)
        self.until(lambda: self.app.snap.operator_pending is not None, "the operator card")
        self.until_screen("operator-login")
        assert f"{self.app.snap.operator_pending}, 请输入密码" in self.texts()

    def pin(self, digits: str) -> None:
        for d in digits:
            self.tap(self.find(d))
        self.tap(self.find("确定"))

    def test_login_with_lockout(self):
        self.to_login()
        self.tap(self.find("1"))
        assert self.app.sm.current_screen.ids.mask.text == "●"
        self.tap(self.find("清除"))
        self.pin("1111")
        assert "密码不对" in self.texts()
        for wrong in ("2222", "3333", "4444", "5555"):
            self.pin(wrong)
        assert "已锁定" in self.texts() and self.screen == "operator-login"
        self.pin(PIN)  # the right PIN, too late
        assert self.screen == "operator-login" and "已锁定" in self.texts()
        assert self.ctl.snapshot().operator is None
        assert self.rows("SELECT locked_until IS NOT NULL FROM operators") == [(1,)]

    def test_restock_a_door(self):
        self.to_login(by_staff_button=True)
        self.pin(PIN)
        self.until_screen("operator-menu")
        self.tap(self.find("补货"))
        assert self.screen == "restock"
        self.hold()
        self.tap(self.find("D1 号门"))
        self.pull()
        self.hw.stock("D1-S2", "hs-honey-500g", 8)  # two more jars than the 6 on record
        self.until(lambda: "D1-S2 · 应有 6 · 称重 8" in self.texts(), "the weighed count")
        self.tap(self.find("全部确认并关门"))
        self.hw.push("D1")
        # counts confirmed before the door shut: done at once, not after a receipt's 10 s
        self.until(lambda: self.ctl.snapshot().restock is None, "restock done", timeout=3.0)
        self.until(
            lambda: self.rows("SELECT count FROM inventory WHERE sku = 'hs-honey-500g'") == [(8,)],
            "the new count",
        )
        self.until_screen("restock")  # back to picking a door
        self.tap(self.find("返回"))
        assert self.screen == "operator-menu"

    def test_acknowledge_an_alarm_and_leave_needs_two_taps(self):
        self.hw.force("D2")  # a door opened without a session: an alarm
        self.to_login()
        self.pin(PIN)
        self.until_screen("operator-menu")
        self.hw.push("D2")
        self.tap(self.find("告警"))
        self.until(lambda: self.all_with("确认处理"), "the alarm")
        before = len(self.all_with("确认处理"))
        self.tap(self.find("确认处理"))
        self.until(lambda: len(self.all_with("确认处理")) == before - 1, "the alarm acknowledged")
        self.tap(self.find("返回"))
        stopped = []
        self.app.stop = lambda: stopped.append(True)
        self.tap(self.find("退出"))
        assert not stopped and "再点一次退出售货程序" in self.texts()
        self.tap(self.find("再点一次退出售货程序"))
        assert stopped and self.app._on_request_close() is False
