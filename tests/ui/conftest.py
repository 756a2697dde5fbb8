"""Kivy offscreen for the UI tests: set before anything imports Kivy (real GL, no window)."""

import os
import tempfile

_home = tempfile.mkdtemp(prefix="kiosk-ui-test-")
os.environ.pop("DISPLAY", None)
os.environ["SDL_VIDEODRIVER"] = "offscreen"
os.environ.setdefault("KIVY_HOME", os.path.join(_home, "kivy"))
os.environ["KIVY_NO_ARGS"] = "1"
os.environ["KIVY_NO_CONSOLELOG"] = "1"
os.environ["KIVY_METRICS_DENSITY"] = "1"
os.environ.setdefault("KIOSK_UI_CACHE", os.path.join(_home, "cache"))
os.environ.pop("KIVY_GL_BACKEND", None)  # "mock" would silently draw nothing
