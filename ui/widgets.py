"""Shared widgets: text, buttons, panels and the product card. Their look is in kv/widgets.kv."""

from __future__ import annotations

from kivy.properties import BooleanProperty, ListProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.recycleview.views import RecycleDataViewBehavior

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
