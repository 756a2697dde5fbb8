"""The code scanner: the line splitter (pure) and the serial CodeSource over a real pty."""

from __future__ import annotations

import os
import queue
import time

from hypothesis import given
from hypothesis import strategies as st

import drivers
from drivers.scanner import LineSplitter
from kiosk.hardware import Code, CodeKind, DeviceHealth


def test_lines_end_in_cr_or_crlf_or_lf():
    s = LineSplitter()
    assert s.feed(b"12345678\r") == ["12345678"]
    assert s.feed(b"134567890123456789\r\n2") == ["134567890123456789"]
    assert s.feed(b"5\n\r\n") == ["25"]


def test_non_ascii_noise_is_dropped_and_long_garbage_bounded():
    s = LineSplitter(max_line=16)
    assert s.feed(b"AB\xffCD\x00\r") == ["ABCD"]
    assert s.feed(b"x" * 100 + b"\r") == ["x" * (100 % 16 or 16)]


codes = st.text(alphabet="0123456789ABCDEFabcdef-", min_size=1, max_size=30)


@given(st.lists(codes, max_size=6), st.lists(st.sampled_from(["\r", "\r\n", "\n"])), st.data())
def test_any_chunking_yields_the_same_lines(lines, ends, data):
    wire = "".join(line + (ends[i % len(ends)] if ends else "\r") for i, line in enumerate(lines))
    raw = wire.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    s = LineSplitter()
    out: list[str] = []
    for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=False):
        out += s.feed(raw[a:b])
    assert out == lines


def _wait(q: queue.Queue, timeout: float = 3.0):
    return q.get(timeout=timeout)


def test_codes_arrive_classified_and_survive_an_unplug(pty_port):
    health: list[DeviceHealth] = []
    scanner = drivers.open_scanner(pty_port.url, 9600, health.append)
    got: queue.Queue[Code] = queue.Queue()
    scanner.start(got.put)
    try:
        deadline = time.monotonic() + 3
        while not health:  # the port is open once the scanner says it is healthy
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.write(pty_port.master, b"04a1b2c3\r134567890123456789\r\n")
        os.write(pty_port.master, b"28456789")
        os.write(pty_port.master, b"0123456789\rhello\r")
        assert _wait(got) == Code(CodeKind.STAFF_CARD, "04A1B2C3")
        assert _wait(got).kind is CodeKind.WECHAT
        assert _wait(got) == Code(CodeKind.ALIPAY, "284567890123456789")
        assert _wait(got).kind is CodeKind.UNKNOWN

        os.write(pty_port.master, b"1234")  # half a code, then the scanner is unplugged
        time.sleep(0.1)
        pty_port.unplug()
        deadline = time.monotonic() + 3
        while health[-1].ok:
            assert time.monotonic() < deadline, "unplug not noticed"
            time.sleep(0.01)
        pty_port.plug()
        deadline = time.monotonic() + 5
        while not health[-1].ok:
            assert time.monotonic() < deadline, "no recovery after replug"
            time.sleep(0.01)
        os.write(pty_port.master, b"5678ABCD\r")
        assert _wait(got) == Code(CodeKind.STAFF_CARD, "5678ABCD")  # no "1234" left over
        assert got.empty()
    finally:
        scanner.stop()
    assert [h.ok for h in health] == [True, False, True]
