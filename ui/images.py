"""Product pictures and icons as PNG files on disk, made once with Pillow and cached.

A product photo (``<photos>/<sku>.jpg|png``) becomes a square thumbnail; a product without one
gets a placeholder: its category's colour with its Chinese name. Icons are drawn shapes, so no
icon font is needed. Files are named by a hash of what made them: a changed photo, name or size
makes a new file, and an unchanged one is never redrawn.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from ui.fonts import find_cjk_font

THUMB_PX = 320
CATEGORY_COLOURS = {
    "poultry-meat-eggs": "#C8553D",
    "drinks": "#7A5C3E",
    "fruit-veg-grain": "#4F8A3C",
    "crafts-green": "#2E7D7A",
    "grain-oil-goods": "#C08A1E",
}
OTHER_COLOUR = "#6D6A75"
_cache_dir: Path | None = None


def set_cache_dir(path: Path) -> None:
    global _cache_dir
    _cache_dir = Path(path)


def cache_dir() -> Path:
    d = _cache_dir or Path(os.environ.get("KIOSK_UI_CACHE", Path.home() / ".cache" / "kiosk-ui"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _key(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(find_cjk_font()), px)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Break at spaces first, then anywhere (Chinese has no spaces)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
            continue
        line = ""
        for ch in word:
            if font.getlength(line + ch) > width and line:
                lines.append(line)
                line = ""
            line += ch
        lines.append(line)
    return lines


def placeholder(sku: str, zh: str, category: str, px: int = THUMB_PX) -> Path:
    out = cache_dir() / f"ph-{_key(sku, zh, category, px, 3)}.png"
    if out.exists():
        return out
    colour = CATEGORY_COLOURS.get(category, OTHER_COLOUR)
    img = Image.new("RGBA", (px, px), colour)
    disc = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    # A soft darker disc behind the name, as on a product label; white text stays readable.
    r = int(px * 0.42)
    ImageDraw.Draw(disc).ellipse(
        (px // 2 - r, px // 2 - r, px // 2 + r, px // 2 + r), fill=(0, 0, 0, 60)
    )
    img = Image.alpha_composite(img, disc).convert("RGB")
    d = ImageDraw.Draw(img)
    font = _font(px // 7)
    lines = _wrap(zh, font, int(px * 0.8))[:3]
    lh = int(px / 7 * 1.25)
    y = (px - lh * len(lines)) // 2
    for line in lines:
        w = font.getlength(line)
        d.text(((px - w) / 2, y), line, font=font, fill="#FFFFFF")
        y += lh
    _save(img, out)
    return out


def thumbnail(src: Path, px: int = THUMB_PX) -> Path:
    st = src.stat()
    out = cache_dir() / f"th-{_key(src.resolve(), st.st_mtime_ns, st.st_size, px)}.png"
    if out.exists():
        return out
    with Image.open(src) as im:
        img = ImageOps.fit(ImageOps.exif_transpose(im).convert("RGB"), (px, px))
    _save(img, out)
    return out


def product_image(sku: str, zh: str, category: str, photos: Path | None = None) -> str:
    if photos is not None:
        for ext in (".jpg", ".jpeg", ".png", ".webp"):
            p = photos / f"{sku}{ext}"
            if p.is_file():
                return str(thumbnail(p))
    return str(placeholder(sku, zh, category))


def _save(img: Image.Image, out: Path) -> None:
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    img.save(tmp, "PNG")
    os.replace(tmp, out)  # another process may be making the same file


# -- icons -----------------------------------------------------------------------------------
ICONS = (
    "card",
    "code",
    "phone",
    "door_closed",
    "door_open",
    "check",
    "cross",
    "warn",
    "scale",
    "arrow_down",
    "wrench",
    "clock",
    "shelves",
)


def icon(name: str, colour: str = "#1C1B1A", px: int = 128) -> str:
    out = cache_dir() / f"ic-{_key(name, colour, px, 4)}.png"
    if not out.exists():
        s = 4  # draw large, then shrink: smooth edges
        img = Image.new("RGBA", (px * s, px * s), (0, 0, 0, 0))
        _DRAW[name](ImageDraw.Draw(img), px * s, colour)
        _save(img.resize((px, px), Image.LANCZOS), out)
    return str(out)


def _card(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    w = n // 20
    d.rounded_rectangle((n * 0.1, n * 0.25, n * 0.9, n * 0.75), radius=n // 12, outline=c, width=w)
    d.rectangle((n * 0.1, n * 0.36, n * 0.9, n * 0.44), fill=c)
    d.rectangle((n * 0.2, n * 0.58, n * 0.45, n * 0.64), fill=c)


def _code(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    x = n * 0.14
    for i, wid in enumerate((3, 1, 2, 1, 3, 2, 1, 3, 1, 2)):
        if i % 2 == 0 or wid > 1:
            d.rectangle((x, n * 0.25, x + wid * n * 0.022, n * 0.75), fill=c)
        x += (wid + 1.2) * n * 0.022


def _phone(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    w = n // 20
    d.rounded_rectangle((n * 0.3, n * 0.1, n * 0.7, n * 0.9), radius=n // 12, outline=c, width=w)
    d.ellipse((n * 0.46, n * 0.78, n * 0.54, n * 0.86), fill=c)
    for i in range(3):
        for j in range(3):
            if (i + j) % 2 == 0:
                x, y = n * (0.38 + 0.08 * i), n * (0.3 + 0.08 * j)
                d.rectangle((x, y, x + n * 0.07, y + n * 0.07), fill=c)


def _door(d: ImageDraw.ImageDraw, n: int, c: str, open_: bool) -> None:
    w = n // 20
    d.rectangle((n * 0.2, n * 0.1, n * 0.8, n * 0.9), outline=c, width=w)
    if open_:
        d.polygon(
            [(n * 0.2, n * 0.1), (n * 0.55, n * 0.2), (n * 0.55, n * 0.8), (n * 0.2, n * 0.9)],
            fill=c,
        )
    else:
        d.ellipse((n * 0.64, n * 0.47, n * 0.72, n * 0.55), fill=c)


def _check(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    d.line([(n * 0.2, n * 0.52), (n * 0.42, n * 0.74), (n * 0.82, n * 0.28)], fill=c, width=n // 9)


def _cross(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    d.line([(n * 0.25, n * 0.25), (n * 0.75, n * 0.75)], fill=c, width=n // 9)
    d.line([(n * 0.75, n * 0.25), (n * 0.25, n * 0.75)], fill=c, width=n // 9)


def _warn(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    d.polygon([(n * 0.5, n * 0.1), (n * 0.92, n * 0.86), (n * 0.08, n * 0.86)], fill=c)
    d.rectangle((n * 0.46, n * 0.35, n * 0.54, n * 0.64), fill="#FFFFFF")
    d.ellipse((n * 0.45, n * 0.7, n * 0.55, n * 0.8), fill="#FFFFFF")


def _scale(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    """A balance: post on a foot, a beam, two hanging pans."""
    w = n // 22
    d.polygon([(n * 0.35, n * 0.9), (n * 0.65, n * 0.9), (n * 0.5, n * 0.78)], fill=c)
    d.rectangle((n * 0.48, n * 0.2, n * 0.52, n * 0.82), fill=c)
    d.rectangle((n * 0.12, n * 0.2, n * 0.88, n * 0.24), fill=c)
    for x in (0.2, 0.8):
        d.line([(n * x, n * 0.24), (n * (x - 0.12), n * 0.55)], fill=c, width=w)
        d.line([(n * x, n * 0.24), (n * (x + 0.12), n * 0.55)], fill=c, width=w)
        d.chord((n * (x - 0.15), n * 0.42, n * (x + 0.15), n * 0.68), 0, 180, fill=c)


def _arrow_down(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    d.rectangle((n * 0.4, n * 0.08, n * 0.6, n * 0.55), fill=c)
    d.polygon([(n * 0.15, n * 0.5), (n * 0.85, n * 0.5), (n * 0.5, n * 0.92)], fill=c)


def _wrench(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    d.line([(n * 0.25, n * 0.75), (n * 0.62, n * 0.38)], fill=c, width=n // 8)
    d.ellipse((n * 0.5, n * 0.12, n * 0.88, n * 0.5), outline=c, width=n // 12)
    d.ellipse((n * 0.15, n * 0.65, n * 0.35, n * 0.85), fill=c)


def _clock(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    d.ellipse((n * 0.12, n * 0.12, n * 0.88, n * 0.88), outline=c, width=n // 16)
    d.line([(n * 0.5, n * 0.5), (n * 0.5, n * 0.25)], fill=c, width=n // 16)
    d.line([(n * 0.5, n * 0.5), (n * 0.68, n * 0.6)], fill=c, width=n // 16)


def _shelves(d: ImageDraw.ImageDraw, n: int, c: str) -> None:
    """Three shelves, each with lanes of goods: the planogram."""
    for row, y in enumerate((0.3, 0.58, 0.86)):
        d.rectangle((n * 0.1, n * y, n * 0.9, n * (y + 0.05)), fill=c)
        for i, x in enumerate((0.16, 0.38, 0.6)):
            h = 0.14 + 0.04 * ((i + row) % 2)
            d.rectangle((n * x, n * (y - h), n * (x + 0.16), n * y), outline=c, width=n // 28)


_DRAW = {
    "card": _card,
    "code": _code,
    "phone": _phone,
    "door_closed": lambda d, n, c: _door(d, n, c, False),
    "door_open": lambda d, n, c: _door(d, n, c, True),
    "check": _check,
    "cross": _cross,
    "warn": _warn,
    "scale": _scale,
    "arrow_down": _arrow_down,
    "wrench": _wrench,
    "clock": _clock,
    "shelves": _shelves,
}


def qr_png(url: str, px: int = 480) -> str:
    """The scan-to-open QR code (segno) as a PNG, cached per URL."""
    import segno

    out = cache_dir() / f"qr-{_key(url, px)}.png"
    if not out.exists():
        qr = segno.make(url, error="m")
        modules = qr.symbol_size(scale=1, border=2)[0]
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        qr.save(str(tmp), kind="png", scale=max(1, px // modules), border=2)
        os.replace(tmp, out)
    return str(out)
