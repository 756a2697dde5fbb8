"""``kiosk ui shots``: every screen, both languages, both orientations, to PNG files.

Kivy fixes the window size and density when it starts, so each orientation renders in its
own process (``python -m ui.shots --orientation portrait --out DIR``); the parent only starts
them. Fixture snapshots come from the sample catalogue: no hardware, no controller.

Each child has its own KIVY_HOME: ``import kivy`` creates ``mods/``, ``logs/`` and
``config.ini`` there without locking, so two children sharing one home race (a
``FileExistsError`` at import, or a half-written config read back). And Kivy's default log
mode swallows ``sys.stderr``: the children run in MIXED mode and print their own traceback.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ui import theme

LANGS = ("zh", "en")


def env_for(orientation: str, kivy_home: Path) -> dict[str, str]:
    (w, h), density = theme.LAYOUTS[orientation]
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env.update(
        SDL_VIDEODRIVER="offscreen",
        KIVY_HOME=str(kivy_home),
        KIVY_NO_ARGS="1",
        KIVY_NO_CONSOLELOG="1",
        KIVY_LOG_MODE="MIXED",  # keep sys.stderr: a failing child's traceback reaches the parent
        KIVY_METRICS_DENSITY=str(density),
        KIVY_METRICS_FONTSCALE="1",
        KIOSK_UI_SIZE=f"{w}x{h}",
    )
    env.pop("KIVY_GL_BACKEND", None)  # "mock" draws nothing
    return env


def render_all(
    out: Path, state_dir: Path | None = None, screens: list[str] | None = None
) -> list[Path]:
    """Run one renderer process per orientation; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    base = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="kiosk-ui-"))
    procs = []
    for orientation in theme.LAYOUTS:
        kivy_home = base / f"kivy-{orientation}"  # never shared: see the module docstring
        kivy_home.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "ui.shots", "--orientation", orientation, "--out", str(out)]
        if screens:
            cmd += ["--screens", ",".join(screens)]
        env = env_for(orientation, kivy_home)
        env["KIOSK_UI_CACHE"] = str(base / "ui-cache")
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    written: list[Path] = []
    failed: list[str] = []
    for orientation, p in zip(theme.LAYOUTS, procs, strict=True):
        so, se = p.communicate(timeout=300)
        if p.returncode != 0:
            said = (se.decode(errors="replace") or so.decode(errors="replace"))[-3000:]
            failed.append(f"{orientation} renderer failed ({p.returncode}):\n{said or '(silent)'}")
            continue
        written += [Path(line) for line in so.decode().split()]
    if failed:
        raise RuntimeError("\n".join(failed))
    return written


class FixtureController:
    """Stands in for the controller: serves one fixture snapshot, accepts every intent."""

    def __init__(self, snap):
        self.snap = snap

    def snapshot(self):
        return self.snap

    def submit(self, intent):
        from kiosk.intents import Result

        return Result(True)

    def subscribe(self, callback):
        return None


def _render(orientation: str, out: Path, only: list[str] | None) -> None:
    (w, h), _density = theme.LAYOUTS[orientation]
    from kivy.config import Config

    Config.set("graphics", "width", str(w))
    Config.set("graphics", "height", str(h))
    Config.set("graphics", "resizable", "0")
    from kivy.base import EventLoop
    from kivy.core.window import Window

    from ui import fixtures
    from ui.app import KioskApp

    fx = fixtures.screens()
    ctl = FixtureController(fx["idle"][0])
    app = KioskApp(ctl, animate=False)
    root = app.attach()
    Window.add_widget(root)
    EventLoop.ensure_window()
    for lang in LANGS:
        app.lang = lang
        for name, (snap, nav) in fx.items():
            if only and name not in only:
                continue
            ctl.snap = snap
            app.nav = nav
            if name == "calibrate":  # the wizard's second step, with its number pad
                cal = app.sm.get_screen("calibrate")
                cal.shelf, cal.step, cal.grams = "D1-S2", "known", "2000"
            app.snap = snap
            app.show(None)
            for _ in range(4):  # layout settles over a few frames
                EventLoop.idle()
            target = out / f"{name}-{lang}-{orientation}.png"
            Window.screenshot(str(target.with_suffix("")) + ".tmp.png")
            # Window.screenshot numbers its files: find what it wrote and move it.
            made = sorted(out.glob(f"{name}-{lang}-{orientation}.tmp*.png"))[-1]
            os.replace(made, target)
            print(target, flush=True)
    app.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orientation", choices=tuple(theme.LAYOUTS), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--screens", default="")
    a = ap.parse_args(argv)
    _render(a.orientation, a.out, [s for s in a.screens.split(",") if s] or None)
    return 0


def _report(kind: type[BaseException], exc: BaseException, tb: object) -> None:
    """Kivy may have replaced ``sys.stderr`` by then: write to the real one."""
    import traceback

    traceback.print_exception(kind, exc, tb, file=sys.__stderr__)  # type: ignore[arg-type]
    sys.__stderr__.flush()


if __name__ == "__main__":
    sys.excepthook = _report
    sys.exit(main())
