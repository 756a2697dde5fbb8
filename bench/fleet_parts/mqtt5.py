"""A minimal asyncio MQTT v5 client for the fleet benchmark: one TCP connection per client, no
thread, no task of its own (an ``asyncio.Protocol``), so ten thousand of them fit in one process.

What it speaks (MQTT 5.0, OASIS standard): CONNECT with clean start and an optional Will,
CONNACK, PUBLISH QoS 0/1 with user properties (and receiving them), PUBACK both ways,
SUBSCRIBE/SUBACK, PINGREQ/PINGRESP, DISCONNECT. No QoS 2, no topic aliases, no session
resumption, no TLS: what the benchmark needs on loopback and nothing else.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
USER_PROPERTY = 0x26
RECEIVE_MAXIMUM = 0x21

# MQTT v5 property identifiers by the shape of their value (section 2.2.2.2), to skip the
# ones the benchmark does not read.
_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_TWO = {0x13, 0x21, 0x22, 0x23}
_FOUR = {0x02, 0x11, 0x18, 0x27}
_STRING = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BINARY = {0x09, 0x16}
_VARINT = {0x0B}


class MqttError(Exception):
    """The broker refused, or sent something this client does not speak."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    properties: dict[str, str]  # user properties (the last value of a repeated name)
    retain: bool


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    retain: bool = True
    qos: int = 1


# -- encoding --------------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + varint(len(body)) + body


def _user_properties(props: dict[str, str] | None) -> bytes:
    raw = b"".join(bytes([USER_PROPERTY]) + _str(k) + _str(v) for k, v in (props or {}).items())
    return varint(len(raw)) + raw


def connect_packet(client_id: str, keepalive: int, will: Will | None) -> bytes:
    flags = 0x02  # clean start
    payload = _str(client_id)
    if will is not None:
        flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
        payload += varint(0) + _str(will.topic) + _str(will.payload)
    body = _str("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + varint(0) + payload
    return _packet(CONNECT, 0, body)


def publish_packet(
    topic: str,
    payload: bytes,
    packet_id: int,
    qos: int,
    retain: bool,
    properties: dict[str, str] | None,
) -> bytes:
    head = _str(topic) + (struct.pack("!H", packet_id) if qos else b"")
    flags = qos << 1 | (1 if retain else 0)
    return _packet(PUBLISH, flags, head + _user_properties(properties) + payload)


# -- decoding --------------------------------------------------------------------------------------
def read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(value, position after it), or None when ``buf`` ends inside it."""
    value, shift = 0, 0
    for i in range(pos, min(pos + 4, len(buf))):
        value |= (buf[i] & 0x7F) << shift
        if not buf[i] & 0x80:
            return value, i + 1
        shift += 7
    if len(buf) >= pos + 4:
        raise MqttError("malformed remaining length")
    return None


def read_properties(buf: bytes, pos: int) -> tuple[dict[int, int], dict[str, str], int]:
    """(numeric properties by id, user properties, position after the properties)."""
    got = read_varint(buf, pos)
    if got is None:
        raise MqttError("truncated properties")
    length, pos = got
    end = pos + length
    numbers: dict[int, int] = {}
    user: dict[str, str] = {}
    while pos < end:
        pid = buf[pos]
        pos += 1
        if pid == USER_PROPERTY:
            (n,) = struct.unpack_from("!H", buf, pos)
            k = buf[pos + 2 : pos + 2 + n].decode()
            pos += 2 + n
            (n,) = struct.unpack_from("!H", buf, pos)
            user[k] = buf[pos + 2 : pos + 2 + n].decode()
            pos += 2 + n
        elif pid in _BYTE:
            numbers[pid] = buf[pos]
            pos += 1
        elif pid in _TWO:
            numbers[pid] = struct.unpack_from("!H", buf, pos)[0]
            pos += 2
        elif pid in _FOUR:
            numbers[pid] = struct.unpack_from("!I", buf, pos)[0]
            pos += 4
        elif pid in _STRING or pid in _BINARY:
            pos += 2 + struct.unpack_from("!H", buf, pos)[0]
        elif pid in _VARINT:
            v = read_varint(buf, pos)
            if v is None:
                raise MqttError("truncated property")
            numbers[pid], pos = v
        else:
            raise MqttError(f"unknown property 0x{pid:02x}")
    return numbers, user, end


# -- the client ------------------------------------------------------------------------------------
@dataclass
class Counters:
    published: int = 0
    received: int = 0
    pings: int = 0


class Client(asyncio.Protocol):
    """One MQTT v5 connection. ``on_message`` runs on the event loop for every PUBLISH received
    (a QoS 1 one is PUBACKed first: the benchmark's cabinets keep what they get in memory)."""

    def __init__(
        self,
        client_id: str,
        on_message: Callable[[Message], None] | None = None,
        keepalive: int = 60,
        will: Will | None = None,
    ) -> None:
        self.client_id = client_id
        self.on_message = on_message
        self.keepalive = keepalive
        self.will = will
        self.receive_maximum = 65535  # the broker's, from CONNACK
        self.last_sent = 0.0
        self.counters = Counters()
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._next_id = 0
        self._acks: dict[int, asyncio.Future[int]] = {}  # PUBACK and SUBACK by packet id
        self._connack: asyncio.Future[int] | None = None
        self.closed: asyncio.Future[None] | None = None

    # asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        err = MqttError(f"{self.client_id}: connection lost ({exc or 'closed'})")
        for f in (self._connack, *self._acks.values()):
            if f is not None and not f.done():
                f.set_exception(err)
        self._acks.clear()
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        while len(buf) - pos >= 2:
            got = read_varint(buf, pos + 1)
            if got is None:
                break
            length, start = got
            end = start + length
            if end > len(buf):
                break
            self._dispatch(buf[pos] >> 4, buf[pos] & 0x0F, bytes(buf[start:end]))
            pos = end
        if pos:
            del buf[:pos]

    # what the broker sends -----------------------------------------------------------------
    def _dispatch(self, kind: int, flags: int, body: bytes) -> None:
        if kind == PUBLISH:
            self._on_publish(flags, body)
        elif kind in (PUBACK, SUBACK):
            (pid,) = struct.unpack_from("!H", body)
            reason = body[2] if len(body) > 2 else 0
            if kind == SUBACK:  # after the properties: one reason code per filter
                _, _, pos = read_properties(body, 2)
                reason = body[pos]
            f = self._acks.pop(pid, None)
            if f is not None and not f.done():
                f.set_result(reason)
        elif kind == CONNACK:
            numbers, _, _ = read_properties(body, 2)
            self.receive_maximum = numbers.get(RECEIVE_MAXIMUM, 65535)
            if self._connack is not None and not self._connack.done():
                self._connack.set_result(body[1])
        elif kind == PINGRESP:
            pass
        elif kind == DISCONNECT:
            if self.transport is not None:
                self.transport.close()
        else:
            raise MqttError(f"unexpected packet type {kind}")

    def _on_publish(self, flags: int, body: bytes) -> None:
        qos = (flags >> 1) & 3
        (n,) = struct.unpack_from("!H", body)
        topic = body[2 : 2 + n].decode()
        pos = 2 + n
        if qos:
            (pid,) = struct.unpack_from("!H", body, pos)
            pos += 2
            if qos == 2:
                raise MqttError("QoS 2 is not spoken here")
            self._write(bytes([PUBACK << 4, 2]) + struct.pack("!H", pid))
        _, user, pos = read_properties(body, pos)
        self.counters.received += 1
        if self.on_message is not None:
            self.on_message(Message(topic, body[pos:], user, bool(flags & 1)))

    # what the client sends -----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def _write(self, data: bytes) -> None:
        if self.transport is None:
            raise MqttError(f"{self.client_id}: not connected")
        self.transport.write(data)
        self.last_sent = time.monotonic()

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._acks:
                return self._next_id
        raise MqttError("no free packet id")

    async def connect(self, host: str, port: int, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        self._connack = loop.create_future()
        await asyncio.wait_for(loop.create_connection(lambda: self, host, port), timeout)
        self._write(connect_packet(self.client_id, self.keepalive, self.will))
        reason = await asyncio.wait_for(self._connack, timeout)
        if reason:
            raise MqttError(f"{self.client_id}: CONNACK reason 0x{reason:02x}")

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        properties: dict[str, str] | None = None,
        want_ack: bool = False,
    ) -> asyncio.Future[int] | None:
        """Send a PUBLISH; with ``want_ack`` (QoS 1) a future resolved with the PUBACK's
        reason code."""
        pid = self._packet_id() if qos else 0
        fut = None
        if qos and want_ack:
            fut = asyncio.get_running_loop().create_future()
            self._acks[pid] = fut
        self._write(publish_packet(topic, payload, pid, qos, retain, properties))
        self.counters.published += 1
        return fut

    async def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = 30.0) -> int:
        pid = self._packet_id()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._acks[pid] = fut
        body = struct.pack("!H", pid) + varint(0) + _str(topic_filter) + bytes([qos])
        self._write(_packet(SUBSCRIBE, 0x02, body))
        reason = await asyncio.wait_for(fut, timeout)
        if reason > 2:
            raise MqttError(f"{self.client_id}: SUBACK reason 0x{reason:02x} for {topic_filter}")
        return reason

    def ping(self) -> None:
        self._write(bytes([PINGREQ << 4, 0]))
        self.counters.pings += 1

    def disconnect(self) -> None:
        """A normal DISCONNECT (the Will is not sent), then close."""
        if self.connected:
            self._write(bytes([DISCONNECT << 4, 0]))
            assert self.transport is not None
            self.transport.close()
