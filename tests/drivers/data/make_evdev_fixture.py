"""Writes evdev_scanner.bin: the raw events a HID scanner's /dev/input/eventN gives (64-bit
``struct input_event``), each key as MSC_SCAN + KEY press + SYN, then the same for the release.

Run from the repository: ``python tests/drivers/data/make_evdev_fixture.py``.
"""

import struct
from pathlib import Path

EVENT = struct.Struct("@llHHi")
EV_SYN, EV_KEY, EV_MSC, MSC_SCAN = 0, 1, 4, 4
KEY_LEFTSHIFT, KEY_ENTER, KEY_KPENTER = 42, 28, 96
MAIN = {"1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11}
MAIN |= {"A": 30, "B": 48, "C": 46, "D": 32, "E": 18, "F": 33}
KEYPAD = {"7": 71, "8": 72, "9": 73, "4": 75, "5": 76, "6": 77, "1": 79, "2": 80, "3": 81}
KEYPAD |= {"0": 82}
out: list[bytes] = []


def event(t: float, etype: int, code: int, value: int) -> None:
    sec = int(t)
    out.append(EVENT.pack(sec, round((t - sec) * 1e6), etype, code, value))


def key(t: float, code: int, value: int) -> None:
    event(t, EV_MSC, MSC_SCAN, 0x70000 + code)
    event(t, EV_KEY, code, value)
    event(t, EV_SYN, 0, 0)


def stroke(t: float, code: int, shift: bool = False) -> None:
    if shift:
        key(t, KEY_LEFTSHIFT, 1)
    key(t, code, 1)
    key(t + 0.001, code, 0)
    if shift:
        key(t + 0.001, KEY_LEFTSHIFT, 0)


def typed(t: float, text: str, keys: dict[str, int], gap: float, enter: int) -> float:
    for ch in text:
        stroke(t, keys[ch], ch.isalpha())
        t += gap
    stroke(t, enter)
    return t + 1.0


t = 1_764_800_000.0
t = typed(t, "04A2B3C4", MAIN, 0.002, KEY_ENTER)  # a scanner: a card, capitals with shift
t = typed(t, "12345678", MAIN, 0.15, KEY_ENTER)  # a person typing
t = typed(t, "134567890123456789", KEYPAD, 0.003, KEY_KPENTER)  # a scanner: keypad digits
Path(__file__).with_name("evdev_scanner.bin").write_bytes(b"".join(out))
