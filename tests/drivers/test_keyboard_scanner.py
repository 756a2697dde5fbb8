"""Scanners that are USB keyboards: the keystroke assembler (pure), the input-event decoder on
raw ``struct input_event`` bytes (data/evdev_scanner.bin, laid out as a HID scanner's event
device gives them; data/make_evdev_fixture.py wrote it), and the evdev CodeSource reading a
real file descriptor."""

from __future__ import annotations

import contextlib
import os
import queue
import time
from pathlib import Path

import drivers
from drivers.evdev_scanner import EVENT, EvdevScanner, EventDecoder
from kiosk import config
from kiosk.hardware import Code, CodeKind, DeviceHealth
from kiosk.keystrokes import MAX_GAP_S, KeystrokeAssembler

RECORDED = (Path(__file__).parent / "data" / "evdev_scanner.bin").read_bytes()
CARD, PAYMENT = "04A2B3C4", "134567890123456789"


def typed(a: KeystrokeAssembler, text: str, gap: float, t: float = 100.0) -> str | None:
    for ch in text:
        a.char(ch, t)
        t += gap
    return a.enter(t)


def test_a_scanners_burst_is_a_code_and_a_persons_typing_is_not():
    a = KeystrokeAssembler()
    assert typed(a, CARD, 0.003) == CARD
    assert typed(a, CARD, 0.15) is None  # a person at the keyboard
    assert typed(a, "12", 0.001) is None  # a stray key or two
    assert typed(a, CARD, MAX_GAP_S * 2) is None


def test_a_person_typing_before_a_scan_does_not_spoil_it():
    a = KeystrokeAssembler()
    for i, ch in enumerate("hello"):
        a.char(ch, 10.0 + i * 0.2)
    assert typed(a, PAYMENT, 0.002, t=12.0) == PAYMENT


def test_a_slow_enter_after_a_fast_burst_is_not_a_scan_and_length_is_bounded():
    a = KeystrokeAssembler(max_len=16)
    for i, ch in enumerate(CARD):
        a.char(ch, 1.0 + i * 0.002)
    assert a.enter(2.0) is None
    assert typed(a, "x" * 40, 0.001) == "x" * (40 % 16 or 16)


def test_recorded_events_give_the_scanned_codes_in_any_chunking():
    assert len(RECORDED) % EVENT.size == 0 and EVENT.size == 24
    assert EventDecoder().feed(RECORDED) == [CARD, PAYMENT]  # the person's 12345678 is not
    d = EventDecoder()
    out: list[str] = []
    for i in range(0, len(RECORDED), 7):  # a read may end inside an event
        out += d.feed(RECORDED[i : i + 7])
    assert out == [CARD, PAYMENT]


def test_config_accepts_an_evdev_url_and_open_scanner_picks_the_driver(tmp_path: Path):
    from tests.conftest import write_sim_config

    cfg = config.load(write_sim_config(tmp_path, {}))
    raw = cfg.path.read_text()
    start = raw.index("[scanner]")
    end = raw.index("\n[", start + 1)
    path = tmp_path / "kbd.toml"
    path.write_text(
        raw[:start]
        + '[scanner]\nurl = "evdev:/dev/input/by-id/usb-scanner-event-kbd"\n'
        + raw[end:]
    )
    cfg = config.load(path)
    assert cfg.scanner.url == "evdev:/dev/input/by-id/usb-scanner-event-kbd"
    assert isinstance(drivers.open_scanner(cfg.scanner.url), EvdevScanner)


def test_evdev_source_grabs_reads_and_reports_a_lost_device(tmp_path: Path):
    """A FIFO stands in for /dev/input/eventN (no input devices here): the same reads and
    fd; only the grab, an ioctl a FIFO does not have, is recorded instead of made."""
    fifo = tmp_path / "event3"
    os.mkfifo(fifo)
    grabbed: list[int] = []
    health: list[DeviceHealth] = []
    codes: queue.Queue[Code] = queue.Queue()
    src = EvdevScanner(f"evdev:{fifo}", health.append, grab=grabbed.append)
    src.start(codes.put)
    w = os.open(fifo, os.O_WRONLY)  # blocks until the scanner's thread opened it
    try:
        for i in range(0, len(RECORDED), 240):
            os.write(w, RECORDED[i : i + 240])
        first, second = codes.get(timeout=5), codes.get(timeout=5)
        assert (first.kind, first.text) == (CodeKind.STAFF_CARD, CARD)
        assert (second.kind, second.text) == (CodeKind.WECHAT, PAYMENT)
        assert codes.empty() and len(grabbed) == 1
        assert health == [DeviceHealth("scanner", True)]
        os.close(w)  # the writer gone: the reader sees the end, as of an unplugged device
        end = time.monotonic() + 3
        while len(health) < 2 and time.monotonic() < end:
            time.sleep(0.02)
        assert not health[1].ok and "device lost" in health[1].why
    finally:
        with contextlib.suppress(OSError):
            os.close(w)
        src.stop()


def test_evdev_source_reports_a_missing_device(tmp_path: Path):
    health: list[DeviceHealth] = []
    src = EvdevScanner(f"evdev:{tmp_path / 'nothing'}", health.append)
    src.start(lambda code: None)
    try:
        end = time.monotonic() + 3
        while not health and time.monotonic() < end:
            time.sleep(0.02)
    finally:
        src.stop()
    assert health and not health[0].ok and "cannot open" in health[0].why


def test_doctor_checks_an_evdev_scanner_by_its_device_path(tmp_path: Path):
    from dataclasses import replace

    from kiosk import doctor
    from tests.conftest import write_sim_config

    cfg = config.load(write_sim_config(tmp_path, {}))
    missing = replace(cfg, scanner=config.Scanner(f"evdev:{tmp_path / 'gone'}"))
    check = doctor.check_scanner(missing, lambda on_health: drivers.open_scanner("x"))
    assert not check.ok and "no such device" in check.detail
    fifo = tmp_path / "event5"
    os.mkfifo(fifo)
    url = f"evdev:{fifo}"
    there = replace(cfg, scanner=config.Scanner(url))
    check = doctor.check_scanner(
        there, lambda on_health: EvdevScanner(url, on_health, grab=lambda fd: None)
    )
    assert check.ok and check.detail == f"{url} opens (grabbed)"
