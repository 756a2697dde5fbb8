"""Operator screens: PIN login, menu, restock, planogram, calibration, alarms, sales, sync,
settings. Everything done here is an intent; the controller audits it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kivy.metrics import dp, sp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.image import Image

from kiosk import intents
from kiosk.snapshot import Snapshot
from ui import images, theme
from ui import viewmodels as vm
from ui.i18n import reason
from ui.screens.base import KioskScreen, button, header, row, text
from ui.screens.customer import text_width
from ui.widgets import KButton, Pill, TapPanel, Text

if TYPE_CHECKING:
    from ui.app import KioskApp

PIN_MAX = 8
TILE_ICONS = {
    "restock": "door_open",
    "planogram": "shelves",
    "calibrate": "scale",
    "alarms": "warn",
    "sales": "check",
    "sync": "clock",
    "settings": "wrench",
    "exit": "cross",
}
TONE_BG = {"ok": theme.OK_SOFT, "warn": theme.WARN_BG, "fault": theme.FAULT_SOFT}


class OperatorLoginScreen(KioskScreen):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.digits = ""
        self.error = ""

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        self.app = app
        header(app, self.ids.header, app.t("op_login"), back=self.back)
        self.ids.card_icon.source = images.icon("card", "#1C1B1A")
        who = snap.operator_pending
        self.ids.hint.text = app.t("op_pin_for", name=who) if who else app.t("op_login_hint")
        pad = self.ids.pad
        if not pad.children or getattr(pad, "_lang", None) != app.lang:
            pad._lang = app.lang
            pad.clear_widgets()
            for k in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "enter"):
                if k == "clear":
                    b = button(app.t("op_clear"), self.clear, "plain")
                elif k == "enter":
                    b = button(app.t("op_enter"), self.enter, "ok")
                else:
                    b = button(k, lambda k=k: self.press(k), "plain", font_size=dp(theme.TITLE))
                b.size_hint_y = 1
                pad.add_widget(b)
        self._paint()

    def _paint(self) -> None:
        self.ids.mask.text = vm.pin_mask(self.digits) or " "
        self.ids.error.text = self.error

    def press(self, d: str) -> None:
        if len(self.digits) < PIN_MAX:
            self.digits += d
        self.error = ""
        self._paint()

    def clear(self) -> None:
        self.digits, self.error = "", ""
        self._paint()

    def enter(self) -> None:
        pin, self.digits = self.digits, ""
        res = self.app.submit(intents.OperatorLogin(pin=pin))
        if res.ok:
            self.error = ""
            self.app.navigate("operator-menu")
        else:
            title, _why, todo = reason(res.code, self.app.lang)
            self.error = f"{title}. {todo}"
            self._paint()

    def back(self) -> None:
        self.clear()
        self.app.navigate(None)

    def on_leave_screen(self) -> None:
        self.digits, self.error = "", ""


class _OpScreen(KioskScreen):
    title_key = ""

    def page(self, app: KioskApp, snap: Snapshot, title: str | None = None, back=True):
        self.app = app
        p = self.ids.page
        sub = app.t("op_hello", name=snap.operator.name) if snap.operator else ""
        header(
            app,
            p.ids.header,
            title or app.t(self.title_key),
            sub,
            back=(lambda: app.navigate("operator-menu")) if back else None,
        )
        p.ids.note.text = ""
        p.ids.body.clear_widgets()
        p.ids.actions.clear_widgets()
        return p.ids.body, p.ids.actions, p.ids.note


class OperatorMenuScreen(_OpScreen):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.exit_armed = False

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        body, actions, _note = self.page(
            app,
            snap,
            app.t("op_menu"),
            back=False,
        )
        grid = GridLayout(
            cols=4 if app.landscape else 2,
            spacing=dp(theme.GAP * 2),
            size_hint_y=None,
        )
        grid.bind(minimum_height=grid.setter("height"))
        for tile in vm.menu(snap, app.lang):
            t = TapPanel(
                orientation="vertical", size_hint_y=None, height=dp(128 if app.landscape else 170)
            )
            t.padding = dp(theme.GAP * 2)
            t.add_widget(Image(source=images.icon(TILE_ICONS[tile.page], "#B3261E")))
            t.add_widget(text(tile.label, "title", halign="center"))
            if tile.page == "exit" and self.exit_armed:
                t.children[0].text = app.t("exit_sure")
                t.children[0].role = "small"
                t.bg = theme.FAULT_SOFT
            pill = Pill(text=tile.badge or " ", bg=TONE_BG[tile.tone], pos_hint={"center_x": 0.5})
            pill.opacity = 1 if tile.badge else 0
            t.add_widget(pill)
            t.bind(on_release=lambda _t, page=tile.page: self.open(page))
            grid.add_widget(t)
        body.add_widget(grid)
        actions.add_widget(button(app.t("op_logout"), self.logout, "plain"))

    def open(self, page: str) -> None:
        if page == "exit":
            if self.exit_armed:
                self.app.exit_kiosk()
                return
            self.exit_armed = True
            self.app.redraw()
            return
        self.exit_armed = False
        self.app.navigate(page)

    def logout(self) -> None:
        self.app.submit(intents.OperatorLogout())
        self.app.navigate(None)

    def on_leave_screen(self) -> None:
        self.exit_armed = False


class RestockScreen(_OpScreen):
    title_key = "tile_restock"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.counts: dict[tuple[str, str], int] = {}
        self.confirmed: set[tuple[str, str]] = set()
        self.session = ""

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        if snap.restock is None:
            body, actions, note = self.page(app, snap)
            note.text = app.t("restock_pick")
            grid = GridLayout(cols=2, spacing=dp(theme.GAP * 2), size_hint_y=None)
            grid.bind(minimum_height=grid.setter("height"))
            for d in snap.doors:
                b = button(
                    app.t("door_n", door=d.id),
                    lambda d=d.id: app.submit(intents.OpenDoorForRestock(d)),
                    "accent",
                    height=dp(theme.TOUCH * 2),
                )
                grid.add_widget(b)
            body.add_widget(grid)
            return
        r = snap.restock
        if r.session != self.session:
            self.session, self.counts, self.confirmed = r.session, {}, set()
        body, actions, note = self.page(app, snap, app.t("restock_title", door=r.door))
        for lane in vm.restock_rows(snap, app.lang, app.image_for):
            body.add_widget(self._lane(app, lane))
        actions.add_widget(button(app.t("confirm_all"), lambda: self.confirm_all(app, snap), "ok"))

    def _lane(self, app: KioskApp, lane: vm.RestockRow) -> BoxLayout:
        """Portrait: words above the count controls; landscape: one row, so four lanes fit."""
        key = (lane.shelf, lane.sku)
        count = self.counts.get(key, lane.count)
        done = key in self.confirmed
        wide = app.landscape
        p = row(
            bg=theme.WARN_BG if lane.mismatch else (theme.OK_SOFT if done else theme.CARD),
            spacing=dp(theme.GAP),
            orientation="horizontal" if wide else "vertical",
        )
        top = BoxLayout(spacing=dp(theme.GAP), size_hint_y=None)
        top.add_widget(Image(source=lane.image, size_hint_x=None, width=dp(56 if wide else 72)))
        words = BoxLayout(
            orientation="vertical", size_hint_y=None, spacing=dp(2), pos_hint={"center_y": 0.5}
        )
        words.bind(minimum_height=words.setter("height"))
        words.add_widget(text(f"{lane.name}", bold=True))
        words.add_widget(
            text(
                f"{lane.shelf} · {app.t('expected')} {lane.expected} · {app.t('weighed')} "
                f"{lane.weighed} · {app.t('expires')} {lane.expires_on}",
                "small",
                color=theme.MUTED,
            )
        )
        if lane.mismatch:
            words.add_widget(
                text("▲ " + app.t("weight_mismatch"), "small", color=theme.WARN, bold=True)
            )
        top.add_widget(words)
        top.height = dp(72)
        words.bind(height=lambda _w, h: setattr(top, "height", max(dp(56 if wide else 72), h)))
        p.add_widget(top)
        ctl = BoxLayout(size_hint_y=None, height=dp(theme.TOUCH), spacing=dp(theme.GAP))
        if wide:
            ctl.size_hint_x = None
            ctl.width = dp(theme.TOUCH * 2 + 56 + 130 + theme.GAP * 3)
            ctl.pos_hint = {"center_y": 0.5}
        ctl.add_widget(
            button(
                "−",
                lambda: self.bump(key, count - 1),
                "plain",
                size_hint_x=None,
                width=dp(theme.TOUCH),
            )
        )
        ctl.add_widget(
            text(
                str(count), "price", halign="center", size_hint_x=None, width=dp(56), size_hint_y=1
            )
        )
        ctl.add_widget(
            button(
                "+",
                lambda: self.bump(key, count + 1),
                "plain",
                size_hint_x=None,
                width=dp(theme.TOUCH),
            )
        )
        ctl.add_widget(
            button(
                ("✓ " + app.t("lane_confirmed")) if done else app.t("confirm_lane"),
                lambda: self.toggle(key),
                "ok" if done else "plain",
            )
        )
        p.add_widget(ctl)
        return p

    def bump(self, key: tuple[str, str], n: int) -> None:
        self.counts[key] = max(0, n)
        self.confirmed.discard(key)
        self.app.redraw()

    def toggle(self, key: tuple[str, str]) -> None:
        self.confirmed ^= {key}
        self.app.redraw()

    def confirm_all(self, app: KioskApp, snap: Snapshot) -> None:
        assert snap.restock is not None
        counts = tuple(
            intents.LaneCount(
                lane.shelf,
                lane.sku,
                self.counts.get((lane.shelf, lane.sku), lane.count),
                lane.expires_on,
            )
            for lane in vm.restock_rows(snap, app.lang)
        )
        res = app.submit(intents.ConfirmCounts(snap.restock.door, counts))
        if res.ok:
            self.counts, self.confirmed = {}, set()


class PlanogramScreen(_OpScreen):
    title_key = "planogram_title"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.picking: tuple[str, int] | None = None
        self.warning = ""

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        body, _actions, note = self.page(app, snap)
        note.text = self.warning or app.t("planogram_pick")
        note.color = theme.WARN if self.warning else theme.MUTED
        by = {p.sku: p for p in snap.products}
        for pr in vm.planogram_rows(snap, app.lang):
            shelf, door, skus = pr.shelf, pr.door, pr.skus
            body.add_widget(text(f"{app.t('door_n', door=door)} · {shelf}", bold=True))
            lanes = GridLayout(
                cols=len(skus) + 1,
                spacing=dp(theme.GAP),
                size_hint_y=None,
                height=dp(64 if app.landscape else 88),
            )
            n_lanes = len(skus)
            for i, sku in enumerate(skus):
                p = by.get(sku)
                card = TapPanel(
                    orientation="vertical",
                    bg=theme.ACCENT_SOFT if self.picking == (shelf, i) else theme.CARD,
                )
                card.add_widget(
                    text(
                        vm.name_of(p, app.lang) if p else sku, "small", size_hint_y=1, valign="top"
                    )
                )
                card.bind(on_release=lambda _c, s=shelf, i=i: self.pick(s, i))
                lanes.add_widget(card)
            lanes.add_widget(
                button(
                    app.t("add_lane"),
                    lambda s=shelf, n=n_lanes: self.pick(s, n),
                    "plain",
                    size_hint_y=1,
                )
            )
            body.add_widget(lanes)
            for w in pr.warnings:  # directly under the shelf it is about
                body.add_widget(
                    text("▲ " + app.t("cannot_tell", names=w), "small", color=theme.WARN, bold=True)
                )
            if self.picking and self.picking[0] == shelf:
                body.add_widget(self._picker(app, snap, shelf, skus))

    def _picker(
        self, app: KioskApp, snap: Snapshot, shelf: str, skus: tuple[str, ...]
    ) -> GridLayout:
        g = GridLayout(cols=3 if app.landscape else 2, spacing=dp(theme.GAP), size_hint_y=None)
        g.bind(minimum_height=g.setter("height"))
        for p in snap.products:
            if "#" in p.sku:
                continue
            g.add_widget(
                button(
                    vm.name_of(p, app.lang), lambda sku=p.sku: self.set(shelf, skus, sku), "chip"
                )
            )
        return g

    def pick(self, shelf: str, i: int) -> None:
        self.picking = None if self.picking == (shelf, i) else (shelf, i)
        self.app.redraw()

    def set(self, shelf: str, skus: tuple[str, ...], sku: str) -> None:
        assert self.picking is not None
        i = self.picking[1]
        new = list(skus)
        if i < len(new):
            new[i] = sku
        else:
            new.append(sku)
        self.picking = None
        res = self.app.submit(
            intents.SetPlanogram(shelf, tuple(intents.PlanogramLane(s) for s in dict.fromkeys(new)))
        )
        self.warning = "" if res.ok else (res.detail or reason(res.code, self.app.lang)[0])
        self.app.redraw()


class CalibrateScreen(_OpScreen):
    title_key = "tile_calibrate"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.shelf: str | None = None
        self.step = "empty"
        self.grams = ""
        self.result = ""
        self._big: Text | None = None
        self._state: Text | None = None

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        if self.shelf is None:
            body, actions, note = self.page(app, snap)
            note.text = app.t("calibrate_pick")
            g = GridLayout(cols=4 if app.landscape else 2, spacing=dp(theme.GAP), size_hint_y=None)
            g.bind(minimum_height=g.setter("height"))
            for s in snap.shelves:
                g.add_widget(button(s.id, lambda s=s.id: self.start(s), "plain"))
            body.add_widget(g)
            return
        body, actions, note = self.page(app, snap, app.t("calibrate_title", shelf=self.shelf))
        sv = next((s for s in snap.shelves if s.id == self.shelf), None)
        big, state = vm.shelf_reading(sv.grams if sv else None, bool(sv and sv.stable), app.lang)
        steps = {"empty": "cal_step_empty", "known": "cal_step_known", "done": "cal_done"}
        body.add_widget(text(app.t(steps[self.step]), bold=True))
        self._big = text(big, "huge", halign="center")
        self._state = text(state, halign="center")
        self.live(app, snap)
        body.add_widget(self._big)
        body.add_widget(self._state)
        if self.step == "known":
            body.add_widget(
                text(f"{self.grams or '0'} g", "title", halign="center", color=theme.ACCENT)
            )
            pad = GridLayout(
                cols=6 if app.landscape else 5, spacing=dp(theme.GAP), size_hint_y=None
            )
            pad.bind(minimum_height=pad.setter("height"))
            for k in "1234567890":
                pad.add_widget(button(k, lambda k=k: self.key(k), "plain"))
            pad.add_widget(button(app.t("op_clear"), lambda: self.key(""), "plain"))
            body.add_widget(pad)
            actions.add_widget(button(app.t("cal_apply"), self.known, "ok"))
        elif self.step == "empty":
            actions.add_widget(button(app.t("cal_zero"), self.zero, "ok"))
        else:
            body.add_widget(text(self.result, halign="center", bold=True))
            actions.add_widget(button(app.t("done"), self.finish, "ok"))

    def live(self, app: KioskApp, snap: Snapshot) -> None:
        """The shelf's reading, 20 times a second: two labels, not the page."""
        if self.shelf is None or self._big is None:
            return
        sv = next((s for s in snap.shelves if s.id == self.shelf), None)
        big, state = vm.shelf_reading(sv.grams if sv else None, bool(sv and sv.stable), app.lang)
        self._big.text, self._state.text = big, state
        self._state.color = theme.OK if sv and sv.stable else theme.WARN

    def start(self, shelf: str) -> None:
        self.shelf, self.step, self.grams, self.result = shelf, "empty", "", ""
        self.app.redraw()

    def key(self, k: str) -> None:
        self.grams = (self.grams + k)[:6] if k else ""
        self.app.redraw()

    def zero(self) -> None:
        res = self.app.submit(intents.Calibrate(self.shelf or "", "zero"))
        if res.ok:
            self.step = "known"
        self.app.redraw()

    def known(self) -> None:
        if not self.grams:
            return
        res = self.app.submit(intents.Calibrate(self.shelf or "", "known", int(self.grams)))
        if res.ok:
            d = res.data
            before, after = d.get("error_before_g", "?"), d.get("error_after_g", "?")
            self.result = self.app.t("cal_error", before=before, after=after)
            self.step = "done"
        self.app.redraw()

    def finish(self) -> None:
        self.shelf = None
        self.app.redraw()


class AlarmsScreen(_OpScreen):
    title_key = "alarms_title"

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        body, _actions, note = self.page(app, snap)
        rows = vm.alarm_rows(snap.alarms, app.lang, app.timezone)
        if not rows:
            note.text = app.t("no_alarms")
        for a in rows:
            icon = "check" if a.acked else ("warn" if a.severity != "info" else "clock")
            colour = "#1E7B34" if a.acked else ("#B00020" if a.severity == "alarm" else "#8A5A00")
            r = row(spacing=dp(theme.GAP), height=dp(theme.TOUCH + 24))
            r.add_widget(Image(source=images.icon(icon, colour), size_hint_x=None, width=dp(40)))
            words = BoxLayout(orientation="vertical")
            words.add_widget(text(a.what, bold=not a.acked))
            words.add_widget(text(a.time, "small", color=theme.MUTED))
            r.add_widget(words)
            if a.acked:
                r.add_widget(
                    text(
                        app.t("acked"),
                        "small",
                        color=theme.OK,
                        size_hint_x=0.35,
                        halign="right",
                        size_hint_y=1,
                    )
                )
            else:
                b = button(app.t("ack"), lambda i=a.id: app.submit(intents.AckAlarm(i)), "accent")
                b.size_hint_x = None
                b.width = max(dp(120), text_width(app.t("ack"), sp(theme.BODY)) + dp(36))
                b.height = dp(theme.TOUCH)
                r.add_widget(b)
            body.add_widget(r)


class SalesScreen(_OpScreen):
    """Today's figures and the sales flagged for review: refund one item or the whole sale,
    each with a second tap to be sure."""

    title_key = "sales_title"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.armed: tuple[str, str] | None = None  # (sale, sku); sku "" is the whole sale

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        body, _actions, _note = self.page(app, snap)
        body.add_widget(text(vm.sales_summary(snap, app.lang), "price", color=theme.ACCENT))
        body.add_widget(text(app.t("review_list"), "title"))
        cards = vm.review_cards(snap, app.lang, app.timezone)
        if not cards:
            body.add_widget(text(app.t("no_review"), color=theme.MUTED))
        for c in cards:
            body.add_widget(self._card(app, c))

    def _card(self, app: KioskApp, c: vm.ReviewCard) -> BoxLayout:
        p = row(orientation="vertical", spacing=dp(theme.GAP))
        top = BoxLayout(size_hint_y=None, height=dp(theme.TOUCH * 0.75), spacing=dp(theme.GAP))
        top.add_widget(text(f"{c.time}  {c.refunded}".strip(), size_hint_y=1, bold=True))
        total = text(c.total, "price", halign="right", size_hint_y=1, size_hint_x=None)
        total.width = text_width(c.total, sp(theme.PRICE)) + dp(8)
        top.add_widget(total)
        p.add_widget(top)
        for ln in c.lines:
            r = BoxLayout(size_hint_y=None, height=dp(theme.TOUCH), spacing=dp(theme.GAP))
            r.add_widget(text(f"{ln.name} × {ln.qty}", size_hint_y=1))
            label = app.t("refund_one", amount=ln.unit)
            r.add_widget(self._refund_button(app, c.sale, ln.sku, label))
            p.add_widget(r)
        if c.refundable_fen > 0:
            whole = app.t("refund_all", amount=vm.money(c.refundable_fen))
            p.add_widget(self._refund_button(app, c.sale, "", whole, size_hint_x=1))
        return p

    def _refund_button(self, app: KioskApp, sale: str, sku: str, label: str, **kw) -> KButton:
        armed = self.armed == (sale, sku)
        b = button(
            app.t("refund_sure") if armed else label,
            lambda: self.refund(sale, sku),
            "fault" if armed else "plain",
            **kw,
        )
        if "size_hint_x" not in kw:
            b.size_hint_x = None
            b.width = max(dp(160), text_width(label, sp(theme.BODY)) + dp(32))
        return b

    def refund(self, sale: str, sku: str = "") -> None:
        if self.armed != (sale, sku):
            self.armed = (sale, sku)
            self.app.redraw()
            return
        self.armed = None
        items = (intents.RefundItem(sku, 1),) if sku else ()
        self.app.submit(intents.Refund(sale=sale, items=items, reason="review"))


class SyncScreen(_OpScreen):
    title_key = "sync_title"

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        body, _actions, _note = self.page(app, snap)
        for kv in vm.sync_rows(snap, app.lang, app.timezone):
            r = row(
                height=dp(theme.TOUCH + 8), bg=TONE_BG[kv.tone] if kv.tone != "ok" else theme.CARD
            )
            r.add_widget(text(kv.key, size_hint_y=1))
            r.add_widget(text(kv.value, "price", halign="right", size_hint_y=1))
            body.add_widget(r)


class SettingsScreen(_OpScreen):
    title_key = "settings_title"

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        body, _actions, _note = self.page(app, snap)
        for k, v in (
            (app.t("cabinet_id"), snap.cabinet.id),
            (app.t("language"), "中文" if app.lang == "zh" else "English"),
            (app.t("orientation"), app.t("landscape" if app.landscape else "portrait")),
        ):
            r = row(height=dp(theme.TOUCH + 8))
            r.add_widget(text(k, size_hint_y=1))
            r.add_widget(text(v, halign="right", size_hint_y=1, bold=True))
            body.add_widget(r)
        g = GridLayout(cols=2, spacing=dp(theme.GAP), size_hint_y=None)
        g.bind(minimum_height=g.setter("height"))
        for d in snap.doors:
            g.add_widget(
                button(
                    f"{app.t('open_for_service')} {d.id}",
                    lambda d=d.id: app.submit(intents.OpenDoor(d, "service")),
                    "plain",
                )
            )
        body.add_widget(g)


__all__ = ["KButton"]
