"""The MQTT intake: cabinets' signed batches in, stored once, signed acks out; presence.

One ``IngestWorker`` is one MQTT v5 client in the shared subscription group
``$share/{group}/kiosk/v1/+/up``: the broker hands each batch to one worker of the group, so
workers on several machines (``kiosk central ingest``) split the load. Each worker also reads
every ``kiosk/v1/+/status`` (retained, not shared) and keeps the cabinets' presence.

Threads:

- paho's network thread only puts what arrives on a bounded queue. When the queue is full the
  message is dropped and counted (``rejects{reason="queue full"}``): paho has already
  acknowledged it to the broker, but the cabinet has no ack from us and sends it again, so
  nothing is lost, and a slow database never stalls the network thread (keepalives, acks).
- one writer thread takes up to ``max_batch_messages`` messages (or what came within
  ``max_wait_s``), checks each (a known cabinet from the topic, the signature in the user
  properties ``x-timestamp``/``x-signature`` with no clock-skew check: a replay is harmless
  since ids are stored once, ``kiosk.contract.decode_batch``), stores all good ones in ONE
  ``store.store_batches`` transaction, then publishes each ack, signed, on
  ``kiosk/v1/{cabinet}/ack``. A refused message gets no ack, a metric and a log line; a
  database error gets no acks (the cabinets resend) and a backoff of 0.1 s doubling to 5 s.

Nothing one message does can end the intake: every message and every round is caught.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from central.faults import Faults, FaultSettings
from central.metrics import Metrics
from central.mqtt_url import check_client_id, configure, default_client_id, parse_mqtt_url
from central.store import BatchAnswer, CabinetKeys, Store
from kiosk import contract, signing, wire

log = logging.getLogger("kiosk.central.ingest")

PATH = "mqtt"  # the metrics' path label
# The broker drops for us any packet larger than this (MQTT v5 Maximum Packet Size): a 100 MB
# publish never reaches this process's memory. Room above the largest batch kiosk.contract
# decodes for topic and properties.
MAX_PACKET_BYTES = contract.MAX_BATCH_BYTES + 65_536
STATUS_MAX_BYTES = 4_096
QUEUE_MESSAGES = 10_000
QUEUE_BYTES = 100_000_000  # memory bound of the queue: ten of the largest batches
# One transaction takes at most this much batch text (and max_batch_messages): ~1000 records,
# so the first batch of a round is not kept waiting for its ack behind a huge transaction.
ROUND_BYTES = 512_000
KEY_REFRESH_S = 2.0  # an unknown cabinet (or a bad signature) re-reads the keys at most this often
# The keys are read again at least this often anyway: a retired cabinet, or a rotation's grace
# period cut short, takes effect within this time.
KEY_MAX_AGE_S = 30.0
BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 5.0
DRAIN_S = 5.0  # stop(): how long the queue may take to be stored and acked
STATES = ("online", "offline")


@dataclass(frozen=True)
class Arrival:
    """One message as paho handed it over."""

    cabinet: str
    leaf: str  # "up" or "status"
    payload: bytes
    props: tuple[tuple[str, str], ...]
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class Checked:
    """An up message that passed every check: what ``store_batches`` gets."""

    arrival: Arrival
    key: bytes
    batch: contract.UpBatch
    digest: str


def user_properties(msg: mqtt.MQTTMessage) -> tuple[tuple[str, str], ...]:
    props = getattr(msg, "properties", None)
    pairs = getattr(props, "UserProperty", None) or []
    return tuple((str(k), str(v)) for k, v in pairs)


def signature_of(props: Sequence[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(x-timestamp, x-signature); a property given twice counts as missing."""
    found: dict[str, list[str]] = {}
    for k, v in props:
        if k in (signing.TIMESTAMP_PROPERTY, signing.SIGNATURE_PROPERTY):
            found.setdefault(k, []).append(v)

    def one(name: str) -> str | None:
        values = found.get(name, [])
        return values[0] if len(values) == 1 else None

    return one(signing.TIMESTAMP_PROPERTY), one(signing.SIGNATURE_PROPERTY)


def parse_status(payload: bytes) -> tuple[bool, str, str]:
    """(online, at, version) of a status message; ``ContractError`` when it is not one."""
    m = contract.loads(payload, max_bytes=STATUS_MAX_BYTES)
    if not isinstance(m, dict) or m.get("state") not in STATES:
        raise contract.ContractError('a status is {"state": "online"|"offline", "at", "version"}')
    at = m.get("at")
    if not isinstance(at, str) or len(at) > 64 or wire.parse_time(at) is None:
        raise contract.ContractError("status: at is not an RFC 3339 time")
    version = m.get("version", "")
    if not isinstance(version, str) or len(version) > 64:
        raise contract.ContractError("status: version is a string of at most 64 characters")
    return m["state"] == "online", at, version


class Intake:
    """The bounded queue between paho's thread and the writer (messages and bytes)."""

    def __init__(self, max_messages: int = QUEUE_MESSAGES, max_bytes: int = QUEUE_BYTES):
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self._items: deque[Arrival] = deque()
        self._bytes = 0
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Arrival) -> bool:
        with self._cond:
            if (
                len(self._items) >= self.max_messages
                or self._bytes + len(item.payload) > self.max_bytes
            ):
                return False
            self._items.append(item)
            self._bytes += len(item.payload)
            self._cond.notify()
            return True

    def take(
        self, most: int, linger_s: float, idle_s: float, most_bytes: int = ROUND_BYTES
    ) -> list[Arrival]:
        """Up to ``most`` items (and about ``most_bytes``, at least one): waits ``idle_s`` for
        a first one, then ``linger_s`` for more."""
        out: list[Arrival] = []
        size = 0
        with self._cond:
            if not self._items:
                self._cond.wait(idle_s)
            end = time.monotonic() + linger_s
            while len(out) < most and size < most_bytes:
                if self._items:
                    item = self._items.popleft()
                    self._bytes -= len(item.payload)
                    size += len(item.payload)
                    out.append(item)
                    continue
                left = end - time.monotonic()
                if not out or left <= 0:
                    break
                self._cond.wait(left)
        return out


class QuietLog:
    """At most one warning a second per reason, with how many were left out: a flood of bad
    messages must not flood the log."""

    def __init__(self, every_s: float = 1.0):
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, reason: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(reason, -1e9) < self.every_s:
                self._skipped[reason] = self._skipped.get(reason, 0) + 1
                return
            self._last[reason] = now
            skipped = self._skipped.pop(reason, 0)
        if skipped:
            msg += f" ({skipped} more like it not logged)"
        log.warning(msg, *args)


class IngestWorker:
    def __init__(
        self,
        store: Store,
        mqtt_url: str,
        *,
        ca_file: str | None = None,
        group: str = "ingest",
        client_id: str | None = None,
        metrics: Metrics | None = None,
        faults: Faults | None = None,
        max_batch_messages: int = 200,
        max_wait_s: float = 0.02,
    ):
        if not group or any(ch in group for ch in "/+#") or len(group) > 64:
            raise ValueError(f"group {group!r}: 1..64 characters, no / + #")
        if max_batch_messages < 1 or max_wait_s < 0:
            raise ValueError("max_batch_messages >= 1 and max_wait_s >= 0")
        self.store = store
        self.url = parse_mqtt_url(mqtt_url)
        self.group = group
        self.client_id = check_client_id(client_id or default_client_id("ingest"))
        self.metrics = metrics
        self.faults = faults
        self.max_batch_messages = max_batch_messages
        self.max_wait_s = max_wait_s
        self.intake = Intake()
        self._quiet = QuietLog()
        self._keys: dict[str, CabinetKeys] = {}
        self._keys_at = -1e9
        self._backoff = BACKOFF_FIRST_S
        self._subscribed = threading.Event()
        self._closing = threading.Event()  # stop(): take no more messages
        self._stopped = threading.Event()  # stop(): leave the broker, end the writer
        self._client_lock = threading.Lock()  # start/stop/the disconnect fault
        self._away = False
        self._sent: deque[mqtt.MQTTMessageInfo] = deque(maxlen=10_000)  # acks, for stop()
        self._writer = threading.Thread(target=self._run, name=f"{self.client_id}-writer")
        self._writer.daemon = True
        self.client = self._new_client(ca_file)
        if faults is not None:
            faults.on_set(self._on_faults)

    # -- life ------------------------------------------------------------------------------
    def _new_client(self, ca_file: str | None) -> mqtt.Client:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
        )
        configure(c, self.url, ca_file)
        c.max_inflight_messages_set(1000)  # acks out: many batches are answered at once
        c.reconnect_delay_set(0.1, 5)  # type: ignore[arg-type]  # paho accepts seconds as float
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    def _connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.MaximumPacketSize = MAX_PACKET_BYTES
        # Clean start, no session kept: what we have not acked the cabinet sends again.
        self.client.connect_async(
            self.url.host, self.url.port, keepalive=30, clean_start=True, properties=props
        )
        self.client.loop_start()

    def start(self) -> IngestWorker:
        self._refresh_keys(force=True)
        self._keys_at = -1e9  # the first unknown cabinet reads them again: it may be new
        self._writer.start()
        with self._client_lock:
            self._connect()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Connected and both subscriptions granted (messages published after this arrive)."""
        return self._subscribed.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    def stop(self) -> None:
        """Take no more messages, store and ack what is queued (up to DRAIN_S), then leave."""
        self._closing.set()
        if self._writer.is_alive():
            end = time.monotonic() + DRAIN_S
            while len(self.intake) and time.monotonic() < end and self._writer.is_alive():
                time.sleep(0.01)
        self._stopped.set()
        if self._writer.is_alive():
            self._writer.join(timeout=DRAIN_S)
        with self._client_lock:
            self._flush_acks(1.0)
            self.client.disconnect()
            self.client.loop_stop()
        self._subscribed.clear()

    def _flush_acks(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the broker to take the acks sent last."""
        end = time.monotonic() + timeout
        while self._sent and self._subscribed.is_set() and time.monotonic() < end:
            try:
                done = self._sent[0].is_published()
            except (RuntimeError, ValueError):
                # paho raises when the ack never left (the connection went): the cabinet sends
                # that batch again, and it is acknowledged then.
                done = True
            if done:
                self._sent.popleft()
            else:
                time.sleep(0.01)

    # -- paho's thread: only enqueue ------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            log.warning("ingest %s: the broker refused us: %s", self.client_id, reason)
            return
        client.subscribe(
            [
                (f"$share/{self.group}/{wire.topic('+', 'up')}", SubscribeOptions(qos=1)),
                (wire.topic("+", "status"), SubscribeOptions(qos=1)),
            ]
        )

    def _on_subscribe(self, client, userdata, mid, reason_codes, props) -> None:
        bad = [str(rc) for rc in reason_codes if rc.is_failure]
        if bad:
            log.error("ingest %s: subscription refused: %s", self.client_id, ", ".join(bad))
            return
        log.info("ingest %s: connected, group %s", self.client_id, self.group)
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason, props) -> None:
        self._subscribed.clear()
        if not self._stopped.is_set() and not self._away:
            log.warning("ingest %s: lost the broker (%s); reconnecting", self.client_id, reason)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        # An exception here would end paho's network thread: nothing may escape.
        try:
            parts = msg.topic.split("/")
            leaf = parts[3] if len(parts) == 4 else ""
            if leaf not in ("up", "status") or wire.cabinet_of(msg.topic) is None:
                return
            if self._closing.is_set():
                return  # stopping: the cabinet sends it again to another worker
            item = Arrival(
                parts[2], leaf, bytes(msg.payload), user_properties(msg), time.monotonic()
            )
            if not self.intake.put(item):
                self._reject(item, "queue full")
        except Exception:
            log.exception("ingest %s: a message could not be queued", self.client_id)

    # -- the writer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            items = self.intake.take(self.max_batch_messages, self.max_wait_s, idle_s=0.1)
            if not items:
                if self._stopped.is_set():
                    return
                continue
            try:
                self.handle(items)
            except Exception:  # a bug in one round must not end the intake
                log.exception(
                    "ingest %s: a round of %d messages failed", self.client_id, len(items)
                )

    def handle(self, items: Sequence[Arrival]) -> None:
        """One round: presence, then every good batch stored in one transaction and acked."""
        presence: dict[str, tuple[bool, str, str]] = {}  # the newest good status per cabinet
        checked: list[Checked] = []
        for a in items:
            if a.leaf == "status":
                try:
                    status = self._status(a)
                except Exception:
                    log.exception("ingest: the status of %r broke a check", a.cabinet[:80])
                    continue
                if status is not None:
                    presence[a.cabinet] = status
                continue
            try:
                c = self._check(a)
            except Exception as e:  # a decoder bug is this message's problem only
                log.exception("ingest: a batch from %r broke a check", a.cabinet)
                self._reject(a, "malformed batch", repr(e)[:200])
                continue
            if c is not None:
                checked.append(c)
        for cabinet, (online, at, version) in presence.items():
            try:
                self.store.set_presence(cabinet, online, at, version)
            except Exception as e:  # the next status (or the retained one) sets it
                log.error("ingest: the presence of %r not kept: %s", cabinet, e)
        if checked:
            self._store_and_ack(checked)

    def _reject(self, a: Arrival, reason: str, detail: str = "") -> None:
        if self.metrics is not None:
            self.metrics.rejects.labels(path=PATH, reason=reason).inc()
        self._quiet.warning(
            reason,
            "ingest: %s from %r dropped, no ack: %s%s",
            a.leaf,
            a.cabinet[:80],
            reason,
            f" ({detail})" if detail else "",
        )

    # -- checks -----------------------------------------------------------------------------------
    def _refresh_keys(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._keys_at < KEY_REFRESH_S:
            return False
        self._keys_at = now
        try:
            self._keys = self.store.key_sets()
        except Exception as e:
            log.warning("ingest: cannot read the cabinets' keys: %s", e)
            return False
        return True

    def _key(self, cabinet: str) -> CabinetKeys | None:
        if time.monotonic() - self._keys_at > KEY_MAX_AGE_S:
            self._refresh_keys()
        keys = self._keys.get(cabinet)
        if keys is None and self._refresh_keys():
            keys = self._keys.get(cabinet)
        return keys

    @staticmethod
    def _verify(
        keys: CabinetKeys, ts: str | None, sig: str | None, payload: bytes
    ) -> tuple[bytes, str | None]:
        """(the key that signed it, None) or (the live key, why not): the live key, and during
        a rotation's grace period the one before. The ack is signed with the key that signed."""
        accepted = keys.accepted()
        why = signing.check_signed(accepted[0], ts, sig, payload)
        for other in accepted[1:] if why is not None else ():
            if signing.check_signed(other, ts, sig, payload) is None:
                return other, None
        return accepted[0], why

    def _check(self, a: Arrival) -> Checked | None:
        keys = self._key(a.cabinet)
        if keys is None:
            self._reject(a, "unknown cabinet")
            return None
        ts, sig = signature_of(a.props)
        key, why = self._verify(keys, ts, sig, a.payload)
        if why == "bad signature" and self._refresh_keys():  # the key may have been replaced
            keys = self._keys.get(a.cabinet)
            if keys is None:
                self._reject(a, "unknown cabinet")
                return None
            key, why = self._verify(keys, ts, sig, a.payload)
        if why:
            self._reject(a, why)
            return None
        try:
            batch = contract.decode_batch(a.payload)
        except contract.ContractError as e:
            self._reject(a, "malformed batch", str(e)[:200])
            return None
        if batch.rejected and self.metrics is not None:
            self.metrics.rejects.labels(path=PATH, reason="bad record").inc(len(batch.rejected))
        return Checked(a, key, batch, hashlib.sha256(a.payload).hexdigest())

    def _status(self, a: Arrival) -> tuple[bool, str, str] | None:
        """(online, at, version) of a status message, or None to ignore it."""
        if not a.payload:
            return None  # a retained status cleared by an operator
        if self._key(a.cabinet) is None:
            return None  # not a cabinet of ours (status is not signed: nothing to answer)
        try:
            return parse_status(a.payload)
        except contract.ContractError as e:
            self._reject(a, "bad status", str(e)[:200])
            return None

    # -- storing and answering ---------------------------------------------------------------------
    def _store_and_ack(self, checked: list[Checked]) -> None:
        # The same batch twice in one round (a quick resend) is stored once and acked once; the
        # same batch id with another body goes in a later transaction, where it is a conflict.
        rounds: list[dict[tuple[str, str], Checked]] = []
        for c in checked:
            k = (c.arrival.cabinet, c.batch.batch)
            for r in rounds:
                if k not in r:
                    r[k] = c
                    break
                if r[k].digest == c.digest:
                    break
            else:
                rounds.append({k: c})
        for r in rounds:
            todo = list(r.values())
            answers = self._store(todo)
            self._answer(todo, answers)

    def _store(self, todo: list[Checked]) -> list[BatchAnswer | None]:
        entries = [(c.arrival.cabinet, c.batch, c.digest) for c in todo]
        try:
            answers = self.store.store_batches(entries)
            self._backoff = BACKOFF_FIRST_S
            return list(answers)
        except Exception as e:
            log.error("ingest: storing %d batches failed: %s", len(entries), e)
        out: list[BatchAnswer | None] = []
        if len(entries) > 1 and self._healthy():
            # The database answers: maybe one batch broke the transaction. Alone, the others go
            # in. A second failure means the trouble is not one batch's: give the rest up.
            failed = 0
            for c, entry in zip(todo, entries, strict=True):
                if failed >= 2:
                    break
                try:
                    out.append(self.store.store_batches([entry])[0])
                except Exception as e:
                    failed += 1
                    log.error(
                        "ingest: batch %r from %r not stored: %s",
                        entry[1].batch[:64],
                        c.arrival.cabinet[:80],
                        e,
                    )
                    self._reject(c.arrival, "database error")
                    out.append(None)
            if failed < 2:
                return out
        for c in todo[len(out) :]:
            self._reject(c.arrival, "database error")
        out += [None] * (len(todo) - len(out))
        self._stopped.wait(self._backoff)  # no acks: the cabinets send these again
        self._backoff = min(self._backoff * 2, BACKOFF_CAP_S)
        return out

    def _healthy(self) -> bool:
        try:
            return bool(self.store.healthy())
        except Exception:
            return False

    def _answer(self, todo: list[Checked], answers: Sequence[BatchAnswer | None]) -> None:
        acks: list[tuple[Checked, BatchAnswer]] = []
        for c, answer in zip(todo, answers, strict=True):
            if answer is None:
                continue
            if answer.conflict:
                self._reject(c.arrival, "conflict", f"batch {answer.batch!r} with another body")
                continue
            if self.metrics is not None:
                self._count(answer)
            if self.faults is not None and self.faults.take("drop_acks"):
                continue
            acks.append((c, answer))
        if not acks:
            return
        faults = self.faults.current if self.faults is not None else FaultSettings()
        if faults.stall_s > 0:
            timer = threading.Timer(faults.stall_s, self._publish_acks, (acks, faults.duplicates))
            timer.daemon = True
            timer.start()
        else:
            self._publish_acks(acks, faults.duplicates)

    def _count(self, answer: BatchAnswer) -> None:
        assert self.metrics is not None
        m = self.metrics
        m.batches.labels(path=PATH).inc()
        # ``fresh``: how many of ``stored`` were new to the database (a replayed batch: 0).
        m.records_stored.labels(path=PATH).inc(answer.fresh)
        m.duplicates.labels(path=PATH).inc(len(answer.stored) - answer.fresh)

    def _publish_acks(self, acks: list[tuple[Checked, BatchAnswer]], twice: bool) -> None:
        for c, answer in acks:
            try:
                payload = json.dumps(
                    answer.to_json(), ensure_ascii=False, separators=(",", ":")
                ).encode()
                props = Properties(PacketTypes.PUBLISH)
                props.UserProperty = list(
                    signing.signed_properties(c.key, payload, time.time()).items()
                )
                topic = wire.topic(c.arrival.cabinet, "ack")
                for _ in range(2 if twice else 1):
                    # Not connected: paho keeps it and sends it on reconnecting; lost anyway,
                    # the cabinet sends the batch again and gets the same answer.
                    info = self.client.publish(
                        topic, payload, qos=1, retain=False, properties=props
                    )
                    self._sent.append(info)
                if self.metrics is not None:
                    self.metrics.ack_latency.labels(path=PATH).observe(
                        time.monotonic() - c.arrival.at
                    )
            except Exception:
                log.exception("ingest: the ack of %r could not be sent", c.arrival.cabinet)

    # -- the disconnect fault (--simulate) --------------------------------------------------------
    def _on_faults(self, faults: FaultSettings) -> None:
        if faults.disconnect > 0:
            threading.Thread(
                target=self._leave_for, args=(faults.disconnect,), name="ingest-away", daemon=True
            ).start()

    def _leave_for(self, seconds: float) -> None:
        with self._client_lock:
            if self._stopped.is_set():
                return
            self._away = True
            self.client.disconnect()
            self.client.loop_stop()
            self._subscribed.clear()
        log.info("ingest %s: away from the broker for %.1f s (fault)", self.client_id, seconds)
        if self._stopped.wait(seconds):
            return
        with self._client_lock:
            if self._stopped.is_set():
                return
            self._away = False
            self._connect()
