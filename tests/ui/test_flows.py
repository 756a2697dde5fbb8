"""Whole flows on the real screens, offscreen, by touch: what a customer or operator does."""

from __future__ import annotations

from kivy.tests.common import GraphicUnitTest, UnitTestTouch

from kiosk import intents as I
from tests.ui.fakes import PIN, FakeController
from ui import fixtures


class Flow(GraphicUnitTest):
    def setUp(self):
        super().setUp()
        from kivy.core.window import Window

        Window.size = (540, 960)

    def start(self, ctl=None):
        from ui.app import KioskApp

        self.ctl = ctl or FakeController()
        self.app = KioskApp(
            self.ctl,
            animate=False,
            households=fixtures.households(fixtures.load_catalog()),
            shelf_lanes={s: k for s, (_d, k) in fixtures.SHELVES.items()},
        )
        self.render(self.app.attach())
        self.frames()
        return self.app

    def frames(self, n: int = 3) -> None:
        self.advance_frames(n)

    @property
    def screen(self) -> str:
        return self.app.sm.current

    def tap(self, widget) -> None:
        x, y = widget.to_window(*widget.center)
        t = UnitTestTouch(x, y)
        t.touch_down()
        t.touch_up()
        self.frames()

    def find(self, text: str):
        """The visible button (or tile) showing ``text``."""
        from ui.widgets import KButton, TapPanel

        root = self.app.sm.current_screen
        for w in root.walk():
            if isinstance(w, KButton) and w.text == text:
                return w
            if isinstance(w, TapPanel) and any(getattr(c, "text", "") == text for c in w.children):
                return w
        raise AssertionError(f"no {text!r} on {self.screen}")

    def texts(self) -> str:
        return " | ".join(
            getattr(w, "text", "")
            for w in self.app.sm.current_screen.walk()
            if getattr(w, "text", "")
        )


class TestCustomer(Flow):
    def test_purchase_by_card(self):
        self.start()
        assert self.screen == "idle"
        self.ctl.card("0001")
        self.frames()
        assert self.screen == "authorise" and "D1 号门已开锁" in self.texts()
        self.ctl.door(True)
        self.frames()
        assert self.screen == "door-open" and "请取走您需要的商品" in self.texts()
        self.ctl.door(False)
        self.frames()
        assert self.screen == "settling"
        self.ctl.settle((("hs-honey-500g", 1),))
        self.frames()
        assert self.screen == "receipt"
        shown = self.texts()
        assert "¥68.00" in shown and "本次消费帮扶了 会山农旅体验馆, 带动 100 户" in shown
        self.tap(self.find("完成"))
        assert isinstance(self.ctl.intents[-1], I.DismissReceipt)
        assert self.screen == "idle"

    def test_uncertain_purchase_confirmed_on_screen(self):
        self.start()
        self.ctl.card("0001")
        self.ctl.door(True)
        self.ctl.door(False)
        self.ctl.settle((("bo-coco-candy", 2),), (("zr-pepper-powder", 1),))
        self.frames()
        assert self.screen == "confirm"
        # Cheaper first: the pepper (¥26) before two candies (¥36); pick the second card.
        picks = [
            w for w in self.app.sm.current_screen.walk() if getattr(w, "text", "") == "就是这个"
        ]
        assert len(picks) == 2
        self.tap(picks[1])
        assert self.ctl.intents[-1] == I.ConfirmBasket(0)  # the ¥36 basket's own index
        assert self.screen == "receipt" and "¥36.00" in self.texts()

    def test_none_of_these_flags_for_staff(self):
        self.start()
        self.ctl.card("0001")
        self.ctl.door(True)
        self.ctl.door(False)
        self.ctl.settle((("bo-coco-candy", 2),), (("zr-pepper-powder", 1),))
        self.frames()
        self.tap(self.find("都不对, 请工作人员核对"))
        assert self.ctl.intents[-1] == I.ConfirmBasket(None)
        assert "本单将由工作人员复核" in self.texts()

    def test_refusal_says_why_and_goes_back(self):
        self.start()
        self.ctl.card("blocked")
        self.frames()
        assert self.screen == "refused"
        assert "请联系您单位的管理员" in self.texts()
        self.tap(self.find("知道了"))
        assert self.screen == "idle"

    def test_language_toggle_and_category_filter(self):
        self.start()
        self.tap(self.find("EN"))
        assert self.app.lang == "en" and "Tap staff card" in self.texts()
        self.tap(self.find("Drinks and brews"))
        wall = self.app.sm.current_screen.ids.wall.data
        drinks = {p.sku for p in self.ctl.snap.products if p.category == "drinks"}
        assert wall and {d["sku"] for d in wall} == drinks

    def test_wall_redraws_after_a_stock_change(self):
        from ui.viewmodels import with_stock

        self.start()
        self.ctl._set(products=with_stock(self.ctl.snap, "zr-rice-5kg", 0).products)
        self.frames()
        rice = next(
            d for d in self.app.sm.current_screen.ids.wall.data if d["sku"] == "zr-rice-5kg"
        )
        assert rice["stock"] == "售罄"

    def test_attract_after_inactivity_and_back_on_touch(self):
        app = self.start()
        app._go_attract(0)
        self.frames()
        assert self.screen == "attract" and "带动" in self.texts()
        self.tap(app.sm.current_screen)
        assert self.screen == "idle"

    def test_customers_cannot_close_the_app(self):
        app = self.start()
        assert app._on_request_close() is True


class TestOperator(Flow):
    def login(self, pin: str) -> None:
        for d in pin:
            self.tap(self.find(d))
        self.tap(self.find("确定"))

    def test_login_with_lockout(self):
        self.start()
        self.tap(self.find("维护"))
        assert self.screen == "operator-login"
        self.tap(self.find("1"))
        assert self.app.sm.current_screen.ids.mask.text == "●"
        self.tap(self.find("清除"))
        self.login("1111")
        assert "密码不对" in self.texts()
        self.login("2222")
        self.login("3333")
        assert "已锁定" in self.texts() and self.screen == "operator-login"
        self.login(PIN)  # the right PIN, too late
        assert self.screen == "operator-login" and "已锁定" in self.texts()
        assert not any(isinstance(i, I.OperatorLogin) and i.pin is None for i in self.ctl.intents)

    def test_restock_a_door(self):
        self.start()
        self.tap(self.find("维护"))
        self.login(PIN)
        assert self.screen == "operator-menu"
        self.tap(self.find("补货"))
        assert self.screen == "restock"
        self.tap(self.find("D2 号门"))
        assert self.ctl.intents[-1] == I.OpenDoorForRestock("D2")
        shown = self.texts()
        assert "重量对不上整数件" in shown  # the lanes whose weight fits no count
        plus = [w for w in self.app.sm.current_screen.walk() if getattr(w, "text", "") == "+"]
        self.tap(plus[0])  # one more on the first lane: 6 -> 7
        self.tap(self.find("全部确认并关门"))
        sent = self.ctl.intents[-1]
        assert isinstance(sent, I.ConfirmCounts) and sent.door == "D2"
        assert sent.counts[0].count == 7 and sent.counts[1].count == 4
        assert self.screen == "restock"  # back to picking a door
        self.tap(self.find("返回"))
        assert self.screen == "operator-menu"

    def test_acknowledge_an_alarm_and_leave_needs_two_taps(self):
        ctl = FakeController(fixtures.screens()["alarms"][0])
        ctl.snap = ctl.snap.__class__(**{**ctl.snap.__dict__, "operator": None})
        self.start(ctl)
        self.tap(self.find("维护"))
        self.login(PIN)
        self.tap(self.find("告警"))
        acks = [
            w for w in self.app.sm.current_screen.walk() if getattr(w, "text", "") == "确认处理"
        ]
        assert len(acks) == 3
        self.tap(acks[0])
        assert isinstance(self.ctl.intents[-1], I.AckAlarm)
        assert self.texts().count("确认处理") == 2
        self.tap(self.find("返回"))
        stopped = []
        self.app.stop = lambda: stopped.append(True)
        self.tap(self.find("退出"))
        assert not stopped and "再点一次退出售货程序" in self.texts()
        self.tap(self.find("再点一次退出售货程序"))
        assert stopped and self.app._on_request_close() is False
