"""Shared widgets: text, buttons, panels and the product card. Their look is in kv/widgets.kv."""

from __future__ import annotations

from kivy.clock import Clock
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.recycleview.views import RecycleDataViewBehavior
from kivy.uix.scrollview import ScrollView

from ui import theme


class Text(Label):
    """Wrapped text whose height follows its content."""

    role = StringProperty("body")  # body | small | price | title | huge


class Pill(Label):
    """A short coloured tag: stock, certificate, alarm count."""

    bg = ListProperty(theme.OK_SOFT)


class Panel(BoxLayout):
    bg = ListProperty(theme.CARD)
    line = ListProperty(theme.LINE)


class TapPanel(ButtonBehavior, Panel):
    """A panel that is a button (tiles, basket cards, lanes)."""


class KButton(ButtonBehavior, Label):
    """A large flat button: at least 96 px tall at 1080 wide."""

    tone = StringProperty("accent")  # accent | plain | ok | fault | chip | chip_on
    icon = StringProperty("")


class ProductCard(RecycleDataViewBehavior, Panel):
    """One product on the wall; fed by ``ui.viewmodels.ProductCard`` fields."""

    sku = StringProperty("")
    name = StringProperty("")
    origin = StringProperty("")
    price = StringProperty("")
    stock = StringProperty("")
    status = StringProperty("ok")
    badge = StringProperty("")
    image = StringProperty("")
    certified = BooleanProperty(False)


def tone_colours(tone: str) -> tuple[list[float], list[float]]:
    """(background, text) for a tone."""
    return {
        "accent": (theme.ACCENT, theme.ON_ACCENT),
        "ok": (theme.OK, theme.ON_ACCENT),
        "fault": (theme.FAULT, theme.ON_ACCENT),
        "warn": (theme.WARN_BG, theme.INK),
        "plain": (theme.CARD, theme.INK),
        "chip": (theme.CARD, theme.INK),
        "chip_on": (theme.INK, theme.ON_ACCENT),
        "disabled": (theme.LINE, theme.MUTED),
    }.get(tone, (theme.ACCENT, theme.ON_ACCENT))


class Message(BoxLayout):
    icon = StringProperty("")
    title = StringProperty("")
    why = StringProperty("")
    todo = StringProperty("")
    code = StringProperty("")
    tone = StringProperty("ok")


class Header(BoxLayout):
    title = StringProperty("")
    subtitle = StringProperty("")


class HintedScroll(ScrollView):
    """A scrolling list that counts the rows below its bottom edge (``hidden``), so a label
    under it can say "3 more below": a cabinet's scroll bar alone goes unnoticed."""

    hidden = NumericProperty(0)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._count = Clock.create_trigger(self._recount, 0)
        self.bind(scroll_y=self._count, height=self._count, width=self._count)

    def add_widget(self, widget, *args, **kw):
        super().add_widget(widget, *args, **kw)
        widget.bind(height=self._count, y=self._count, children=self._count)

    def _recount(self, *_):
        content = self.children[0] if self.children else None
        if content is None or content.height <= self.height + 1:
            self.hidden = 0
            return
        edge = self.to_window(self.x, self.y)[1]
        # A row even partly under the bottom edge counts: its price or button is hidden.
        self.hidden = sum(1 for c in content.children if c.to_window(c.x, c.y)[1] < edge - 1)
