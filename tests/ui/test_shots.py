"""``kiosk ui shots``: every screen, both languages and orientations, as non-blank PNGs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageStat

REQUIRED = (
    *("idle", "authorise", "refused", "door-open", "settling", "receipt", "confirm"),
    *("out-of-service", "operator-login", "operator-menu", "restock", "planogram"),
    *("calibrate", "alarms", "sales", "sync"),
)
SIZES = {"portrait": (1080, 1920), "landscape": (1280, 800)}


def test_shots_render_every_screen(tmp_path: Path):
    out = tmp_path / "shots"
    r = subprocess.run(
        [sys.executable, "-m", "kiosk.cli", "ui", "shots", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for screen in REQUIRED:
        for lang in ("zh", "en"):
            for orientation, size in SIZES.items():
                f = out / f"{screen}-{lang}-{orientation}.png"
                assert f.is_file(), f.name
                with Image.open(f) as im:
                    assert im.size == size, f.name
                    grey = im.convert("L")
                    lo, hi = grey.getextrema()
                    # Not blank: dark text on the light background, and more than a sliver of it.
                    assert hi - lo > 120, f.name
                    assert ImageStat.Stat(grey).stddev[0] > 8, f.name
    # Language really changes the words: the two idle screens differ.
    a = Image.open(out / "idle-zh-portrait.png").convert("L").tobytes()
    b = Image.open(out / "idle-en-portrait.png").convert("L").tobytes()
    assert a != b


def test_missing_cjk_font_names_the_debian_package():
    import pytest

    from ui import fonts

    with pytest.raises(fonts.CJKFontMissing, match="fonts-wqy-microhei"):
        fonts.find_cjk_font(("/nonexistent/font.ttc",))


def test_failing_renderer_prints_its_traceback(tmp_path: Path):
    """A child that dies inside ``import kivy`` (here: its Kivy home is a file) must say why;
    Kivy's own logging would swallow stderr and leave the parent with an empty message."""
    from ui import shots

    not_a_dir = tmp_path / "kivy-home"
    not_a_dir.write_text("")
    cmd = [sys.executable, "-m", "ui.shots", "--orientation", "portrait", "--out", str(tmp_path)]
    r = subprocess.run(
        cmd, env=shots.env_for("portrait", not_a_dir), capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "NotADirectoryError" in r.stderr, r.stderr
