"""The touchscreen application: routes controller snapshots to screens, sends intents back.

It holds no logic beyond presentation: which screen (``viewmodels.route``), the language, the
category chosen on the wall, digits typed on the PIN pad, timers that return to idle.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.behaviors import FocusBehavior
from kivy.uix.screenmanager import FadeTransition, NoTransition, ScreenManager

from kiosk import intents
from kiosk.keystrokes import KeystrokeAssembler
from kiosk.snapshot import Snapshot
from ui import fonts, i18n, images, theme
from ui import viewmodels as vm
from ui.recorder import ScreenRecorder
from ui.screens import customer, operator

log = logging.getLogger(__name__)
KV_DIR = Path(__file__).parent / "kv"
SCREENS: dict[str, type] = {
    "idle": customer.IdleScreen,
    "attract": customer.AttractScreen,
    "authorise": customer.AuthoriseScreen,
    "refused": customer.RefusedScreen,
    "door-open": customer.DoorOpenScreen,
    "settling": customer.SettlingScreen,
    "confirm": customer.ConfirmScreen,
    "receipt": customer.ReceiptScreen,
    "out-of-service": customer.OutOfServiceScreen,
    "operator-login": operator.OperatorLoginScreen,
    "operator-menu": operator.OperatorMenuScreen,
    "restock": operator.RestockScreen,
    "planogram": operator.PlanogramScreen,
    "calibrate": operator.CalibrateScreen,
    "alarms": operator.AlarmsScreen,
    "sales": operator.SalesScreen,
    "sync": operator.SyncScreen,
    "settings": operator.SettingsScreen,
}
_kv_loaded = False
ENTER_KEYS = (13, 271)  # Kivy's key codes for Enter and the keypad's Enter


class Controller(Protocol):
    def snapshot(self) -> Snapshot: ...

    def submit(self, intent: intents.Intent) -> intents.Result: ...

    def subscribe(self, callback: Any) -> Any: ...


def load_kv() -> None:
    global _kv_loaded
    if _kv_loaded:
        return
    fonts.register()
    import ui.widgets  # noqa: F401  (classes the kv rules name)

    Builder.load_file(str(KV_DIR / "widgets.kv"))
    for f in sorted(KV_DIR.glob("*.kv")):
        if f.name != "widgets.kv":
            Builder.load_file(str(f))
    _kv_loaded = True


class KioskApp(App):
    lang = StringProperty("zh")
    landscape = BooleanProperty(False)
    title = "kiosk"

    def __init__(
        self,
        controller: Controller,
        *,
        photos: Path | None = None,
        timezone: str = "Asia/Shanghai",
        animate: bool = True,
        attract_after_s: float = customer.ATTRACT_AFTER_S,
        shots_dir: Path | None = None,
        closable: bool = False,
        **kw: Any,
    ):
        super().__init__(**kw)
        self.controller = controller
        self.photos = photos
        self.timezone = timezone
        self.animate = animate
        self.attract_after_s = attract_after_s
        self.nav = vm.Nav()
        self.snap: Snapshot = controller.snapshot()
        self.last_result: intents.Result | None = None
        self._images: dict[str, str] = {}
        self._idle_ev = None
        self._exit_allowed = closable  # a desktop window (the demo) closes; a cabinet's not
        self.shots_dir = shots_dir
        self.recorder: ScreenRecorder | None = None
        self.keys = KeystrokeAssembler()  # a USB keyboard scanner typing into this window

    # -- building ----------------------------------------------------------------------------
    def build(self) -> ScreenManager:
        load_kv()
        self.landscape = Window.width > Window.height
        Window.clearcolor = theme.BG  # the screens' background (they draw none themselves)
        self.sm = ScreenManager(
            transition=FadeTransition(duration=0.15, clearcolor=theme.BG)
            if self.animate
            else NoTransition()
        )
        for name, cls in SCREENS.items():
            self.sm.add_widget(cls(name=name))
        if self.shots_dir is not None:
            self.recorder = ScreenRecorder(self.shots_dir, self.sm.get_screen)
        self.controller.subscribe(self._on_snapshot)
        Window.bind(on_request_close=self._on_request_close)
        Window.bind(on_touch_down=lambda *_: self._touched())
        Window.bind(on_textinput=self._on_textinput, on_key_down=self._on_key_down)
        self.show(self.snap)
        return self.sm

    def attach(self) -> ScreenManager:
        """Build without ``run()`` (tests, shots): make this the running app first."""
        App._running_app = self
        self.root = self.build()
        return self.root

    # -- snapshots in --------------------------------------------------------------------------
    def _on_snapshot(self, snap: Snapshot) -> None:
        # May come from the controller's thread: Clock hands it to the UI thread.
        Clock.schedule_once(lambda _dt: self.show(snap))

    def show(self, snap: Snapshot | None = None, force: bool = False) -> None:
        """Route ``snap`` to its screen. Unless ``force`` (the UI's own state changed), a
        screen already showing what matters to it is not filled again."""
        if snap is not None:
            if snap.seq < self.snap.seq:
                return  # a late callback: never go back in time
            self.snap = snap
        snap = self.snap
        if not snap.refusal and self.nav.refusal_dismissed:
            self.nav = replace(self.nav, refusal_dismissed=False)
        if not snap.operator_pending and self.nav.pending_dismissed:
            self.nav = replace(self.nav, pending_dismissed=False)
        name = vm.route(snap, self.nav)
        if name != "attract" and name != "idle" and self.nav.attract:
            self.nav = replace(self.nav, attract=False)
        old = self.sm.current_screen
        screen = self.sm.get_screen(name)
        key = (screen.relevant(snap), self.lang, self.nav, self.landscape)
        if force or screen is not old or key != screen.shown_key:
            screen.shown_key = key
            screen.show(self, snap)
        else:
            screen.live(self, snap)
        if self.sm.current != name:
            if old is not None:
                old.on_leave_screen()
            self.sm.current = name
        self._arm_idle(name)
        if self.recorder is not None:
            self.recorder.shown(name)

    def redraw(self) -> None:
        self.show(None, force=True)

    # -- intents out ---------------------------------------------------------------------------
    def submit(self, intent: intents.Intent) -> intents.Result:
        try:
            res = self.controller.submit(intent)
        except Exception as e:  # the screen must survive a controller bug
            log.exception("intent %s failed", type(intent).name)
            res = intents.Result.refused("bad_request", str(e))
        self.last_result = res
        self.show(self.controller.snapshot(), force=True)
        return res

    # -- a keyboard scanner ----------------------------------------------------------------------
    def _on_textinput(self, _window: Any, text: str) -> None:
        # on_textinput, not on_key_down, for the characters: it has shift and layout applied.
        # time.monotonic(), not Clock's frame time: the assembler judges the gaps between keys.
        if App.get_running_app() is not self:
            return  # Window outlives an app (tests build several): only the running one reads
        now = time.monotonic()
        for ch in text:
            self.keys.char(ch, now)

    def _on_key_down(self, _window: Any, key: int, *_rest: Any) -> bool:
        if key not in ENTER_KEYS or App.get_running_app() is not self:
            return False
        text = self.keys.enter(time.monotonic())
        if text is None or self._text_field_focused():
            return False  # a person typing, or typing into a field: not a scan
        # The intent a serial scan amounts to (the controller classifies the text the same way).
        self.submit(intents.Scan(text))
        return True

    def _text_field_focused(self) -> bool:
        screen = self.sm.current_screen
        return screen is not None and any(
            isinstance(w, FocusBehavior) and w.focus for w in screen.walk()
        )

    # -- presentation state ------------------------------------------------------------------
    def t(self, key: str, **fields: object) -> str:
        return i18n.t(key, self.lang, **fields)

    def toggle_lang(self) -> None:
        self.lang = "en" if self.lang == "zh" else "zh"
        self.redraw()

    def navigate(self, page: str | None) -> None:
        # Leaving the PIN pad also leaves a waiting operator card's PIN untyped.
        dismissed = page is None and bool(self.snap.operator_pending)
        self.nav = replace(self.nav, operator_page=page, attract=False, pending_dismissed=dismissed)
        self.redraw()

    def dismiss_refusal(self) -> None:
        self.nav = replace(self.nav, refusal_dismissed=True)
        self.redraw()

    def wake(self) -> None:
        if self.nav.attract:
            self.nav = replace(self.nav, attract=False)
            self.redraw()

    def _touched(self) -> None:
        if self.sm.current == "idle":
            self._arm_idle("idle")

    def _arm_idle(self, name: str) -> None:
        if self._idle_ev is not None:
            self._idle_ev.cancel()
            self._idle_ev = None
        if name == "idle":
            self._idle_ev = Clock.schedule_once(self._go_attract, self.attract_after_s)

    def _go_attract(self, _dt: float) -> None:
        if self.sm.current == "idle":
            self.nav = replace(self.nav, attract=True)
            self.redraw()

    def image_for(self, sku: str) -> str:
        path = self._images.get(sku)
        if path is None:
            p = next((p for p in self.snap.products if p.sku == sku), None)
            base = sku.split("#")[0]
            if p is None:
                return ""
            path = images.product_image(base, p.zh, p.category, self.photos)
            self._images[sku] = path
        return path

    # -- leaving -----------------------------------------------------------------------------
    def exit_kiosk(self) -> None:
        """Only from the operator menu: an operator is logged in."""
        if self.snap.operator is None:
            return
        self._exit_allowed = True
        self.submit(intents.OperatorLogout())
        self.stop()

    def _on_request_close(self, *_a: Any, **_k: Any) -> bool:
        return not self._exit_allowed  # True: keep the window (customers cannot close it)
