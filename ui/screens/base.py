"""What every screen has: ``show(app, snapshot)`` fills it from view models."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from kivy.uix.screenmanager import Screen

from kiosk.snapshot import Snapshot
from ui import theme
from ui.widgets import Header, KButton, Panel, Text

if TYPE_CHECKING:
    from ui.app import KioskApp


class KioskScreen(Screen):
    shown_key: object = None  # what the screen was last filled from (``app.show`` compares)

    def show(self, app: KioskApp, snap: Snapshot) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def relevant(self, snap: Snapshot) -> object:
        """The part of a snapshot this screen shows. The controller sends one per shelf
        reading; a screen rebuilt that often would drop the taps landing on it."""
        return replace(snap, seq=0, shelves=())

    def live(self, app: KioskApp, snap: Snapshot) -> None:
        """A snapshot that changed nothing ``relevant``: update readings in place (if any)."""

    def on_leave_screen(self) -> None:
        """Called when another screen replaces this one (stop timers)."""


def button(text: str, on_press, tone: str = "accent", **kw) -> KButton:
    b = KButton(text=text, tone=tone, **kw)
    b.bind(on_release=lambda *_: on_press())
    return b


def header(app: KioskApp, h: Header, title: str, subtitle: str = "", back=None) -> None:
    """Fill a header: title, subtitle, the language toggle, and a back button when given."""
    h.title, h.subtitle = title, subtitle
    right = h.ids.right
    right.clear_widgets()
    if back is not None:
        right.add_widget(
            button(app.t("op_back"), back, "plain", size_hint_x=None, width=_w(app.t("op_back")))
        )
    right.add_widget(
        button(app.t("lang_toggle"), app.toggle_lang, "plain", size_hint_x=None, width=_dp(72))
    )


def _dp(v: float) -> float:
    from kivy.metrics import dp

    return dp(v)


def _w(text: str) -> float:
    """Width of a button holding ``text`` (CJK glyphs count double)."""
    units = sum(2 if ord(c) > 0x2E80 else 1.1 for c in text)
    return _dp(max(theme.TOUCH * 1.5, units * theme.BODY * 0.55 + 32))


def row(*widgets, height: float | None = None, **kw) -> Panel:
    kw.setdefault("orientation", "horizontal")
    p = Panel(size_hint_y=None, **kw)
    for w in widgets:
        p.add_widget(w)
    if height is None:
        p.bind(minimum_height=p.setter("height"))
    else:
        p.height = height
    return p


def text(s: str, role: str = "body", **kw) -> Text:
    return Text(text=s, role=role, **kw)
