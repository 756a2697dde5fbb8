"""The visual language as numbers: colours (RGBA 0..1) and type sizes in sp.

Sizes are chosen so that portrait (1080 px wide, density 2) gives body 32 px, prices 44 px,
titles 56 px and nothing under 24 px; landscape (1280x800, density 1.6) keeps the floor at 24 px.
"""

from __future__ import annotations


def _hex(h: str, a: float = 1.0) -> tuple[float, float, float, float]:
    h = h.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255, a)


BG = _hex("F7F4EE")  # off-white
CARD = _hex("FFFFFF")
INK = _hex("1C1B1A")  # near-black: 16:1 on BG
MUTED = _hex("55514B")  # secondary text: 7.4:1 on BG
LINE = _hex("DDD6CB")
ACCENT = _hex("B3261E")  # the programme's warm red (6.6:1 on white)
ACCENT_SOFT = _hex("F6E3DF")
OK = _hex("1E7B34")  # success, open doors
OK_SOFT = _hex("E1F1E4")
WARN = _hex("8A5A00")  # amber text (5.9:1 on white)
WARN_BG = _hex("FFE7B3")
FAULT = _hex("B00020")
FAULT_SOFT = _hex("FBE3E6")
ON_ACCENT = _hex("FFFFFF")
DISABLED = _hex("8C877F")

# Type, in sp (x2 in portrait, x1.6 in landscape).
SMALL = 15  # never smaller: 30 px portrait, 24 px landscape
BODY = 16
PRICE = 22
TITLE = 28
HUGE = 40  # the door number, the countdown, a live reading

# Spacing and targets, in dp.
TOUCH = 48  # 96 px at 1080 wide
GAP = 8  # 16 px
EDGE = 20  # no control within 40 px of the edge
RADIUS = 10

# Orientation -> (window size in px, density).
LAYOUTS = {"portrait": ((1080, 1920), 2.0), "landscape": ((1280, 800), 1.6)}
