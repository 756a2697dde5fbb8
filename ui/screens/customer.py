"""Customer screens: idle wall, attract, authorise, refused, door open, settling, confirm,
receipt, out of service."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kivy.clock import Clock
from kivy.core.text import Label as CoreLabel
from kivy.metrics import dp, sp
from kivy.properties import BooleanProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.image import Image

from kiosk import intents
from kiosk.snapshot import Snapshot
from ui import images, theme
from ui import viewmodels as vm
from ui.screens.base import KioskScreen, button, header, text
from ui.widgets import KButton, Panel, TapPanel

if TYPE_CHECKING:
    from ui.app import KioskApp

ATTRACT_AFTER_S = 60.0
RECEIPT_S = 10.0
REFUSAL_S = 8.0


def text_width(s: str, font_size: float) -> float:
    lbl = CoreLabel(text=s, font_size=font_size)
    lbl.refresh()
    return float(lbl.texture.size[0])


class IdleScreen(KioskScreen):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.category = ""
        self._chip_key: tuple = ()
        self._header_key: tuple = ()

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        h = vm.header(snap, app.lang)
        if self._header_key != (h, app.lang):
            self._header_key = (h, app.lang)
            header(app, self.ids.header, h.title, h.location)
            staff = KButton(text=app.t("staff"), tone="plain", size_hint_x=None, width=dp(80))
            staff.bind(on_release=lambda *_: app.navigate("operator-login"))
            right = self.ids.header.ids.right
            right.add_widget(staff, index=len(right.children))
        self._chips(app, snap)
        self.refresh_wall(app, snap)
        w = self.ids
        for way, icon_name, verb, hint in (
            (w.way_card, "card", "tap_card", "tap_card_hint"),
            (w.way_code, "code", "show_code", "show_code_hint"),
        ):
            way.icon_source = images.icon(icon_name, "#B3261E")
            way.verb, way.hint = app.t(verb), app.t(hint)
        # No central platform, or no code yet: say so; a made-up code would open nothing.
        url = snap.scan_url
        w.qr.source = images.qr_png(url) if url else images.icon("phone", "#8C877F")
        w.qr_verb.text = app.t("scan_qr" if url else "qr_unavailable")
        w.qr_hint.text = app.t("scan_qr_hint" if url else "qr_unavailable_hint")
        w.qr_verb.color = theme.INK if url else theme.MUTED

    def _chips(self, app: KioskApp, snap: Snapshot) -> None:
        cs = vm.chips(snap, app.lang, self.category)
        if cs == self._chip_key:
            return
        self._chip_key = cs
        box = self.ids.chips
        box.clear_widgets()
        for c in cs:
            b = KButton(text=c.label, tone="chip_on" if c.selected else "chip", size_hint_x=None)
            b.width = max(dp(theme.TOUCH * 1.5), text_width(c.label, sp(theme.BODY)) + dp(40))
            b.bind(on_release=lambda _b, cid=c.id: self.pick(app, cid))
            box.add_widget(b)

    def pick(self, app: KioskApp, category: str) -> None:
        self.category = category
        self._chip_key = ()
        self._chips(app, app.snap)
        self.refresh_wall(app, app.snap)

    def refresh_wall(self, app: KioskApp, snap: Snapshot) -> None:
        cards = vm.wall(snap, app.lang, self.category, app.image_for)
        new = [dict(c.__dict__) for c in cards]  # asdict() deep-copies: 10x slower
        rv = self.ids.wall
        if [d["sku"] for d in new] == [d["sku"] for d in rv.data]:
            # Same cards, some values changed (stock): patch the data in place and the one
            # visible view, if any. Assigning rv.data re-binds every visible view, and each
            # re-rendered label costs milliseconds.
            for i, d in enumerate(new):
                old = rv.data[i]
                if old != d:
                    old.update(d)
                    view = rv.view_adapter.get_visible_view(i)
                    if view is not None:
                        for k, v in d.items():
                            setattr(view, k, v)
        else:
            rv.data = new
        self.ids.empty.text = "" if cards else app.t("no_products")


class AttractScreen(KioskScreen):
    def __init__(self, **kw):
        super().__init__(**kw)
        self._i = 0
        self._ev = None
        self._slides: tuple = ()

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        self.app = app
        self._slides = vm.attract(snap, app.lang, app.image_for)
        self.ids.title.text = app.t("attract_title")
        self.ids.touch.text = app.t("attract_touch")
        self._paint()
        if self._ev is None:
            self._ev = Clock.schedule_interval(self._next, 5.0)

    def _next(self, _dt: float) -> None:
        self._i += 1
        self._paint()

    def _paint(self) -> None:
        if not self._slides:
            return
        s = self._slides[self._i % len(self._slides)]
        self.ids.photo.source = s.image
        self.ids.supplier.text = s.name
        self.ids.line.text = s.line

    def on_touch_down(self, touch):
        self.app.wake()
        return True

    def on_leave_screen(self) -> None:
        if self._ev is not None:
            self._ev.cancel()
            self._ev = None


class _MessageScreen(KioskScreen):
    def paint(self, app: KioskApp, m: vm.Message, actions=()) -> None:
        msg = self.ids.msg
        colour = {"ok": "#1E7B34", "warn": "#8A5A00", "fault": "#B00020"}[m.tone]
        msg.icon = images.icon(m.icon, colour)
        msg.title, msg.why, msg.todo = m.title, m.why, m.todo
        msg.code = app.t("code_for_staff", code=m.code) if m.code else ""
        msg.tone = m.tone
        box = msg.ids.actions
        box.clear_widgets()
        for label, fn, tone in actions:
            box.add_widget(button(label, fn, tone))
        box.opacity = 1 if actions else 0


class AuthoriseScreen(_MessageScreen):
    def show(self, app: KioskApp, snap: Snapshot) -> None:
        m = vm.authorise(snap, app.lang)
        acts = []
        if snap.session is not None and snap.state == "unlocking":
            acts = [(app.t("cancel"), lambda: app.submit(intents.Cancel()), "plain")]
        self.paint(app, m, acts)


class RefusedScreen(_MessageScreen):
    _ev = None

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        self.paint(
            app,
            vm.refusal(snap.refusal or "", app.lang),
            [(app.t("ok_back"), app.dismiss_refusal, "accent")],
        )
        if self._ev is None:
            self._ev = Clock.schedule_once(lambda _dt: app.dismiss_refusal(), REFUSAL_S)

    def on_leave_screen(self) -> None:
        if self._ev is not None:
            self._ev.cancel()
            self._ev = None


class SettlingScreen(_MessageScreen):
    def show(self, app: KioskApp, snap: Snapshot) -> None:
        self.paint(
            app,
            vm.Message(app.t("settling"), app.t("settling_hint"), "", "", "ok", "door_closed"),
        )


class OutOfServiceScreen(_MessageScreen):
    def show(self, app: KioskApp, snap: Snapshot) -> None:
        code = snap.out_of_service or "starting"
        self.paint(app, vm.out_of_service(code, app.lang))


class DoorOpenScreen(KioskScreen):
    countdown_visible = BooleanProperty(False)
    _ev = None

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        self.app, self.snap = app, snap
        self._received = time.monotonic()
        self._tick(0)
        if self._ev is None:
            self._ev = Clock.schedule_interval(self._tick, 0.25)

    def _tick(self, _dt: float) -> None:
        s = self.snap.session
        # remaining_s was taken when the snapshot was; count down from there.
        now_remaining = None
        if s is not None and s.remaining_s is not None:
            now_remaining = s.remaining_s - (time.monotonic() - self._received)
        d = vm.door_open(
            self.snap,
            self.app.lang,
        )
        if now_remaining is not None and not d.too_long:
            n = vm.countdown(now_remaining)
            d = vm.DoorOpen(
                d.door,
                d.title,
                d.hint,
                n,
                self.app.t("close_soon", s=n) if n is not None else "",
                False,
            )
        ids = self.ids
        ids.icon.source = images.icon("door_open", "#8A5A00" if d.too_long else "#1E7B34")
        ids.title.text, ids.hint.text = d.title, d.hint
        ids.title.color = theme.WARN if d.too_long else theme.OK
        self.countdown_visible = d.countdown is not None
        ids.seconds.text = "" if d.countdown is None else str(d.countdown)
        ids.countdown_text.text = d.countdown_text
        ids.ring.fraction = (
            0.0 if d.countdown is None else max(0.0, min(1.0, d.countdown / vm.COUNTDOWN_FROM_S))
        )

    def on_leave_screen(self) -> None:
        if self._ev is not None:
            self._ev.cancel()
            self._ev = None


class ConfirmScreen(KioskScreen):
    def show(self, app: KioskApp, snap: Snapshot) -> None:
        ids = self.ids
        ids.icon.source = images.icon("scale", "#8A5A00")
        ids.title.text, ids.ask.text = app.t("confirm_title"), app.t("confirm_ask")
        ids.baskets.clear_widgets()
        for b in vm.baskets(snap.candidates, app.lang, app.image_for):
            ids.baskets.add_widget(self._card(app, b))
        ids.none.text = app.t("none_of_these")
        ids.none.unbind(on_release=self._none)
        ids.none.bind(on_release=self._none)
        self.app = app

    def _none(self, *_):
        self.app.submit(intents.ConfirmBasket(None))

    def _card(self, app: KioskApp, b: vm.Basket) -> TapPanel:
        card = TapPanel(orientation="vertical", size_hint_y=None)
        for ln in b.lines:
            r = BoxLayout(size_hint_y=None, height=dp(56), spacing=dp(theme.GAP))
            r.add_widget(Image(source=ln.image, size_hint_x=None, width=dp(56)))
            r.add_widget(text(f"{ln.name} {ln.qty}", size_hint_y=1))
            amount = text(ln.amount, halign="right", size_hint_y=1, size_hint_x=None)
            amount.width = text_width(ln.amount, sp(theme.BODY)) + dp(4)  # money never wraps
            r.add_widget(amount)
            card.add_widget(r)
        foot = BoxLayout(size_hint_y=None, height=dp(theme.TOUCH), spacing=dp(theme.GAP))
        foot.add_widget(text(b.total, "price", color=theme.ACCENT, size_hint_y=1))
        foot.add_widget(
            button(app.t("this_one"), lambda i=b.index: app.submit(intents.ConfirmBasket(i)), "ok")
        )
        card.add_widget(foot)
        card.height = len(b.lines) * (dp(56) + dp(4)) + dp(theme.TOUCH) + dp(theme.GAP) * 3
        card.bind(on_release=lambda *_: app.submit(intents.ConfirmBasket(b.index)))
        return card


class ReceiptScreen(KioskScreen):
    _ev = None

    def show(self, app: KioskApp, snap: Snapshot) -> None:
        self.app = app
        assert snap.receipt is not None
        r = vm.receipt(snap.receipt, app.lang, app.image_for)
        ids = self.ids
        ids.icon.source = images.icon("check", "#1E7B34")
        ids.title.text = app.t("receipt_title")
        ids.lines.clear_widgets()
        h = dp(44 if app.landscape else 64)  # landscape: four or five lines above the total
        for ln in r.lines:
            row = BoxLayout(size_hint_y=None, height=h, spacing=dp(theme.GAP))
            row.add_widget(Image(source=ln.image, size_hint_x=None, width=h))
            row.add_widget(text(ln.name, size_hint_y=1))
            row.add_widget(text(ln.qty, halign="right", size_hint_x=0.2, size_hint_y=1))
            row.add_widget(
                text(ln.amount, halign="right", size_hint_x=0.35, bold=True, size_hint_y=1)
            )
            ids.lines.add_widget(row)
        ids.total_label.text = app.t("total")
        ids.total.text = r.total
        ids.paid_by.text = r.paid_by
        ids.note.text = r.note
        ids.thanks.text = r.thanks
        ids.done.text = app.t("done")
        ids.done.unbind(on_release=self._done)
        ids.done.bind(on_release=self._done)
        if self._ev is None:
            self._left = RECEIPT_S
            self._ev = Clock.schedule_interval(self._tick, 1.0)
        ids.back_in.text = app.t("back_in", s=int(self._left))

    def _tick(self, _dt: float) -> None:
        self._left -= 1
        self.ids.back_in.text = self.app.t("back_in", s=max(0, int(self._left)))
        if self._left <= 0:
            self._done()

    def _done(self, *_):
        self.on_leave_screen()
        self.app.submit(intents.DismissReceipt())

    def on_leave_screen(self) -> None:
        if self._ev is not None:
            self._ev.cancel()
            self._ev = None


__all__ = [
    "AttractScreen",
    "AuthoriseScreen",
    "ConfirmScreen",
    "DoorOpenScreen",
    "IdleScreen",
    "OutOfServiceScreen",
    "Panel",
    "ReceiptScreen",
    "RefusedScreen",
    "SettlingScreen",
]
