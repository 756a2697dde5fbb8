"""The one CJK face every label uses: found on disk, registered with Kivy as the default font."""

from __future__ import annotations

from pathlib import Path

DEBIAN_PACKAGE = "fonts-wqy-microhei"
# Looked for in this order; the first that exists wins.
CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


class CJKFontMissing(RuntimeError):
    """No font with Chinese glyphs: every label would show empty boxes."""


def find_cjk_font(candidates: tuple[str, ...] = CANDIDATES) -> Path:
    for c in candidates:
        p = Path(c)
        if p.is_file():
            return p
    raise CJKFontMissing(
        "no CJK font found (looked for " + ", ".join(candidates) + "); install the Debian "
        f"package {DEBIAN_PACKAGE}: sudo apt-get install -y {DEBIAN_PACKAGE}"
    )


def register(candidates: tuple[str, ...] = CANDIDATES) -> Path:
    """Make the CJK face Kivy's default (``Roboto``), so no label can fall back to tofu."""
    from kivy.core.text import DEFAULT_FONT, LabelBase

    path = str(find_cjk_font(candidates))
    # One face for all styles: bold is synthesised by SDL_ttf.
    LabelBase.register(DEFAULT_FONT, path, path, path, path)
    LabelBase.register("cjk", path, path, path, path)
    return Path(path)
