"""Lock board protocols: golden frames from hardware.md, round trips, and garbage."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import lock_8a80 as a8
from drivers import lock_kerong as cu


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# -- golden frames -----------------------------------------------------------------------
GOLDEN_8A80 = [
    (a8.OpenLock(1, 1), "8A 01 01 11 9B"),  # hardware.md's example
    (a8.OpenAll(1), "8A 01 00 11 9A"),
    (a8.QueryLock(1, 1), "80 01 01 33 B3"),
    (a8.QueryAll(1), "80 01 00 33 B2"),
    (a8.QueryLock(2, 24), "80 02 18 33 A9"),
    (a8.LockStatus(1, 1, 0x00, opened=True), "8A 01 01 00 8A"),  # a successful unlock
    (a8.LockStatus(1, 0, 0x00, opened=True), "8A 01 00 00 8B"),  # "open all" answered
    (a8.LockStatus(1, 1, 0x11), "80 01 01 11 91"),  # lock 1 closed (field wiring)
    (a8.LockStatus(1, 1, 0x00), "80 01 01 00 80"),  # lock 1 open (field wiring)
    (a8.AllStatus(1, 0x010101), "80 01 01 01 01 33 B3"),  # locks 1, 9 and 17 locked
]

GOLDEN_KERONG = [
    (cu.Status(0), "02 00 30 03 35"),
    (cu.StatusAll(0), "02 00 32 03 37"),  # board-wide status
    (cu.Unlock(1, 1), "02 10 31 03 46"),  # lock 1 is index 0 on the wire
    (cu.Unlock(2, 16), "02 2F 31 03 65"),
    (cu.UnlockAll(3), "02 30 33 03 68"),
    (cu.BoardStatus(0, hooks=0x0001), "02 00 35 01 00 00 00 03 3B"),
    (cu.BoardStatus(1, hooks=0x8002, infrared=0x0100), "02 10 35 02 80 00 01 03 CD"),
]


@pytest.mark.parametrize(("frame", "wire"), GOLDEN_8A80)
def test_8a80_golden_frames(frame, wire):
    assert a8.encode(frame) == h(wire)


@pytest.mark.parametrize(("frame", "wire"), GOLDEN_KERONG)
def test_kerong_golden_frames(frame, wire):
    assert cu.encode(frame) == h(wire)


def test_8a80_reply_length_follows_the_pending_request():
    """A query-all reply read as a 5-byte frame would be garbage: the parser must know."""
    wire = a8.encode(a8.AllStatus(1, 0b101))
    parser = a8.Parser()
    parser.expect(a8.QueryAll(1))
    parser.feed(wire[:5])
    assert parser.next_frame() is None  # five bytes are not yet the reply
    parser.feed(wire[5:])
    reply = parser.next_frame()
    assert reply == a8.AllStatus(1, 0b101)
    assert reply.locks() == {1, 3}


def test_8a80_bad_xor_is_dropped_and_the_next_frame_found():
    parser = a8.Parser()
    parser.expect(a8.QueryLock(1, 1))
    bad = bytearray(a8.encode(a8.LockStatus(1, 1, 0x11)))
    bad[3] ^= 0x40
    parser.feed(bytes(bad) + b"\x00\xff" + a8.encode(a8.LockStatus(1, 1, 0x00)))
    assert parser.next_frame() == a8.LockStatus(1, 1, 0x00)
    assert parser.next_frame() is None


def test_kerong_device_side_reads_requests():
    parser = cu.Parser("requests")
    parser.feed(h("FF 02 2F 31 03 65 02 00 30 03"))
    assert parser.next_frame() == cu.Unlock(2, 16)
    assert parser.next_frame() is None
    parser.feed(h("35"))
    assert parser.next_frame() == cu.Status(0)


def test_kerong_bad_sum_is_dropped():
    wire = bytearray(cu.encode(cu.BoardStatus(0, hooks=1)))
    wire[3] = 0
    parser = cu.Parser()
    parser.feed(bytes(wire))
    assert parser.next_frame() is None


def test_answers_tell_stale_replies():
    assert a8.answers(a8.QueryLock(1, 2), a8.LockStatus(1, 2, 0))
    assert not a8.answers(a8.QueryLock(1, 2), a8.LockStatus(1, 3, 0))
    assert not a8.answers(a8.QueryLock(1, 2), a8.LockStatus(1, 2, 0x11, opened=True))
    assert not a8.answers(a8.QueryAll(2), a8.AllStatus(1, 0))
    assert cu.answers(cu.Status(3), cu.BoardStatus(3, 0))
    assert not cu.answers(cu.Status(3), cu.BoardStatus(4, 0))


# -- properties --------------------------------------------------------------------------
byte = st.integers(0, 255)
lock24 = st.integers(1, 24)
a8_requests = st.one_of(
    st.builds(a8.OpenLock, byte, st.integers(1, 255)),
    st.builds(a8.OpenAll, byte),
    st.builds(a8.QueryLock, byte, st.integers(1, 255)),
    st.builds(a8.QueryAll, byte),
)
a8_short_replies = st.builds(a8.LockStatus, byte, byte, byte, st.booleans())
a8_all_replies = st.builds(a8.AllStatus, byte, st.integers(0, 0xFFFFFF))
nibble = st.integers(0, 15)
cu_requests = st.one_of(
    st.builds(cu.Status, nibble),
    st.builds(cu.Unlock, nibble, st.integers(1, 16)),
    st.builds(cu.UnlockAll, nibble),
)
cu_replies = st.builds(
    cu.BoardStatus, nibble, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), nibble
)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def parse_all(parser, pieces: list[bytes]) -> list:
    out = []
    for piece in pieces:
        parser.feed(piece)
        while (frame := parser.next_frame()) is not None:
            out.append(frame)
    return out


@given(st.lists(a8_requests, max_size=8), st.lists(st.integers(0, 200)))
def test_8a80_requests_round_trip_in_any_chunks(frames, cuts):
    wire = b"".join(a8.encode(f) for f in frames)
    assert parse_all(a8.Parser("requests"), chunks(wire, cuts)) == frames


@given(st.lists(a8_short_replies, max_size=8), st.lists(st.integers(0, 200)))
def test_8a80_short_replies_round_trip(frames, cuts):
    wire = b"".join(a8.encode(f) for f in frames)
    parser = a8.Parser()
    parser.expect(a8.QueryLock(1, 1))
    assert parse_all(parser, chunks(wire, cuts)) == frames


@given(st.lists(a8_all_replies, max_size=8), st.lists(st.integers(0, 200)))
def test_8a80_query_all_replies_round_trip(frames, cuts):
    wire = b"".join(a8.encode(f) for f in frames)
    parser = a8.Parser()
    parser.expect(a8.QueryAll(1))
    assert parse_all(parser, chunks(wire, cuts)) == frames


@given(st.lists(cu_requests, max_size=8), st.lists(st.integers(0, 200)))
def test_kerong_requests_round_trip(frames, cuts):
    wire = b"".join(cu.encode(f) for f in frames)
    assert parse_all(cu.Parser("requests"), chunks(wire, cuts)) == frames


@given(st.lists(cu_replies, max_size=8), st.lists(st.integers(0, 200)))
def test_kerong_replies_round_trip(frames, cuts):
    wire = b"".join(cu.encode(f) for f in frames)
    assert parse_all(cu.Parser(), chunks(wire, cuts)) == frames


PARSERS = {
    "8a80 requests": (lambda: a8.Parser("requests"), a8.encode, a8.xor, 5),
    "8a80 replies": (a8.Parser, a8.encode, a8.xor, 5),
    "8a80 query-all replies": (lambda: _expecting_all(), a8.encode, a8.xor, 7),
    "kerong requests": (lambda: cu.Parser("requests"), cu.encode, cu.checksum, 5),
    "kerong replies": (cu.Parser, cu.encode, cu.checksum, 9),
}


def _expecting_all() -> a8.Parser:
    parser = a8.Parser()
    parser.expect(a8.QueryAll(1))
    return parser


@pytest.mark.parametrize("kind", PARSERS)
@settings(max_examples=150)
@given(garbage=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400)))
def test_garbage_never_crashes_nor_yields_an_unchecked_frame(kind, garbage, cuts):
    make, encode, check, _ = PARSERS[kind]
    for frame in parse_all(make(), chunks(garbage, cuts)):
        wire = encode(frame)
        assert check(wire[:-1]) == wire[-1]
        # the frame was really on the line (Kerong requests ignore ADDR's low nibble)
        if kind == "kerong requests" and not isinstance(frame, cu.Unlock):
            assert any(
                garbage[i] == 2 and garbage[i + 1] >> 4 == frame.board
                for i in range(len(garbage) - 4)
            )
        else:
            assert wire in garbage


@given(
    frames=st.lists(a8_short_replies, min_size=1, max_size=6),
    noise=st.lists(st.binary(max_size=6), min_size=7, max_size=7),
    cuts=st.lists(st.integers(0, 200)),
)
def test_8a80_frames_survive_noise_between_them(frames, noise, cuts):
    """Noise without head bytes between frames costs no frame."""
    clean = [bytes(b for b in n if b not in (a8.OPEN, a8.QUERY)) for n in noise]
    wire = b"".join(clean[i] + a8.encode(f) for i, f in enumerate(frames)) + clean[-1]
    parser = a8.Parser()
    parser.expect(a8.QueryLock(1, 1))
    assert parse_all(parser, chunks(wire, cuts)) == frames


@given(
    frames=st.lists(cu_replies, min_size=1, max_size=6),
    noise=st.lists(st.binary(max_size=6), min_size=7, max_size=7),
    cuts=st.lists(st.integers(0, 200)),
)
def test_kerong_frames_survive_noise_between_them(frames, noise, cuts):
    clean = [bytes(b for b in n if b != cu.STX) for n in noise]
    wire = b"".join(clean[i] + cu.encode(f) for i, f in enumerate(frames)) + clean[-1]
    assert parse_all(cu.Parser(), chunks(wire, cuts)) == frames
