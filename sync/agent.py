"""The sync agent (``kiosk sync``): the cabinet's one link to the central platform.

How it flows
------------
The controller writes every sale, session, event ... with its ``outbox`` row in one
transaction. This agent, a separate process on the same SQLite file, runs one loop:

1. **Outbox pump.** Pending records are read in pages after a cursor (``seq``), bounded by
   ``batch_max_records`` and ``batch_max_bytes``, so memory stays flat whatever the backlog.
   Each page becomes a batch (a fresh uuid) published at QoS 1 on ``kiosk/v1/{cab}/up`` over
   MQTT v5, signed in its user properties (``x-timestamp``, ``x-signature``: HMAC with the
   cabinet's key); up to ``window`` batches are in flight. A record is marked ``delivered``
   only when an ``ack`` signed with the cabinet's key names it stored (never on PUBACK); an
   unsigned or wrongly signed ack is ignored (a note and a count: its records stay pending and
   go again). ``rejected`` ones in a signed ack become dead letters with an event. A batch
   unanswered within ``ack_timeout_s``, or a lost connection, rewinds the cursor: the records
   go again in new batches and the centre drops the duplicates by id.
2. **HTTP fallback.** When MQTT has been down for ``http_fallback_after_s`` (or is not
   configured, or the backlog is over ``catchup_http_over`` records), batches go by
   ``POST /batches`` with ``Idempotency-Key``; the answer, when its ``X-Signature`` holds, is
   the ack (unsigned, it is no answer). What a refusal means: 429 and 503 wait out
   ``Retry-After`` (at most 300 s; backoff when absent) and send again; 401 ``clock skew``
   raises a ``clock skew`` event (at most one an hour) and retries with backoff; a signed
   400/422 that names records dead-letters those records only; any other 4xx keeps the batch
   pending (a note, backoff). No refusal ever dead-letters a whole batch. Failures back off
   exponentially with jitter.
3. **Inbound.** Acks, and the signed catalogue, configuration, accounts (retained topics)
   and commands arrive on MQTT; the same are polled over HTTP every ``poll_interval_s``.
   ``sync.inbound`` checks them, ``sync.apply`` applies them whole (or refuses with an
   event); ``applied`` and ``cmd_result`` records go back up through the outbox.
4. **Housekeeping.** Presence (retained ``online``, Last Will ``offline``), telemetry every
   ``telemetry_interval_s``, pending payment captures retried until the centre gives a final
   answer (200, or a refusal in ``sync.payments.FINAL_CAPTURE_REFUSALS``; 429, 503, 401, 5xx
   and silence leave them pending), delivered records pruned after
   ``prune_delivered_after_days`` (pending ones never), and a ``storage low`` event when free
   disk falls under ``storage_low_mb``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from sqlite_utils import Database

from kiosk import clock, logs, signing, wire
from kiosk import db as kdb
from kiosk.config import Central, Config
from sync import apply, store
from sync.backoff import Backoff
from sync.http_link import (
    CentralBusy,
    CentralRefused,
    CentralUnreachable,
    ClockSkew,
    HttpLink,
    UnsignedAnswer,
    named_records,
)
from sync.mqtt_link import Inbound, MqttLink, parse_url, read_password
from sync.payments import capture_refusal_is_final

log = logging.getLogger("kiosk.sync")

CONTACT_EVERY_S = 5.0  # at most one ``last_contact`` write this often, however fast acks arrive
CLOCK_SKEW_EVENT_EVERY_S = 3600.0  # one ``clock skew`` event an hour is enough to act on
CLOCK_SKEW_NOTED = "clock_skew_event_at"  # setting: wall time of the last such event


@dataclass(frozen=True)
class Settings:
    """The cabinet's ``[central]`` section as configured, plus the agent's own timings (which
    only tests and ``kiosk sync --tune`` change)."""

    cabinet: str
    key: bytes
    central: Central = field(default_factory=Central)
    name: str = ""
    location: str = ""
    window: int = 8  # batches in flight on MQTT
    ack_timeout_s: float = 15.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    http_timeout_s: float = 10.0
    catchup_http_over: int = 0  # backlog above this goes over HTTP; 0: never
    version: str = "0.1.0"
    mqtt_password: str = field(default="", repr=False)  # read from [central] mqtt_password_file

    @property
    def ca_file(self) -> str | None:
        return str(self.central.ca_file) if self.central.ca_file else None

    @classmethod
    def from_config(cls, cfg: Config, key: bytes, **overrides: object) -> Settings:
        """``overrides`` may name a field of this class or of ``[central]``."""
        central_names = {f.name for f in fields(Central)}
        central = {k: v for k, v in overrides.items() if k in central_names}
        own = {k: v for k, v in overrides.items() if k not in central_names}
        return cls(
            cfg.cabinet.id,
            key,
            replace(cfg.central, **central),  # type: ignore[arg-type]
            cfg.cabinet.name,
            cfg.cabinet.location,
            **own,  # type: ignore[arg-type]
        )


@dataclass
class _InFlight:
    sent_at: float
    span: store.Span


@dataclass
class _Timers:
    telemetry: float = 0.0
    poll: float = 0.0
    housekeeping: float = 0.0
    captures: float = 0.0
    backlog: float = 0.0
    http_retry: float = 0.0


@dataclass
class Counters:
    batches_sent: int = 0
    delivered: int = 0
    dead: int = 0
    resends: int = 0
    via_http: int = 0
    inbound_applied: int = 0
    inbound_refused: int = 0
    acks_ignored: int = 0  # acks without a good signature (MQTT, or an HTTP answer)
    refused: int = 0  # 4xx answers to a batch that named no record: kept pending
    busy: int = 0  # 429/503 answers
    clock_skew: int = 0  # 401 clock skew answers
    errors: list[str] = field(default_factory=list)


class Agent:
    def __init__(
        self, settings: Settings, db_path: str | Path, wall: Callable[[], float] = time.time
    ):
        """``wall``: the cabinet's clock (Unix seconds), which stamps signatures and events."""
        self.s = settings
        self.wall = wall
        self.db_path = Path(db_path)
        self.db: Database = store.open_db(db_path)
        self.started = time.monotonic()
        self.counters = Counters()
        self.mqtt: MqttLink | None = None
        if settings.central.mqtt:
            self.mqtt = MqttLink(
                parse_url(
                    settings.central.mqtt,
                    settings.ca_file,
                    settings.central.mqtt_username,
                    settings.mqtt_password,
                ),
                settings.cabinet,
                Backoff(settings.backoff_base_s, settings.backoff_cap_s),
                settings.version,
            )
        self.http: HttpLink | None = None
        if settings.central.http:
            self.http = HttpLink(
                settings.central.http,
                settings.cabinet,
                settings.key,
                settings.http_timeout_s,
                settings.ca_file,
                wall,
            )
        self.http_backoff = Backoff(settings.backoff_base_s, settings.backoff_cap_s)
        self.http_quiet_until = 0.0  # monotonic: no HTTP request before (Retry-After)
        self.http_page_records = settings.central.batch_max_records  # halved on a 413
        self.cursor = 0
        self.inflight: dict[str, _InFlight] = {}
        self.mqtt_down_since = time.monotonic()
        self.timers = _Timers()
        self.backlog_estimate = 0
        self.storage_low = False
        self.contact_noted = float("-inf")  # monotonic time of the last ``last_contact`` write
        self.telemetry_interval_s = settings.central.telemetry_interval_s
        self.poll_interval_s = settings.central.poll_interval_s
        self._apply_config(apply.current_version(self.db, "config"))

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event, on_tick: Callable[[], None] | None = None) -> None:
        """The loop: ``on_tick`` after every step, on this thread (the watchdog's ping)."""
        logs.log(
            "sync_started",
            cabinet=self.s.cabinet,
            mqtt=bool(self.mqtt),
            http=bool(self.http),
            backlog=store.backlog(self.db).pending,
        )
        try:
            while not stop.is_set():
                try:
                    self.step()
                except store.StorageFull as e:
                    self._note(str(e))
                    stop.wait(1.0)
                if on_tick:
                    on_tick()
        finally:
            self.close()

    def status_line(self) -> str:
        """What ``systemctl status kiosk-sync`` shows (it changes only every few seconds)."""
        link = "mqtt" if self.mqtt and self.mqtt.connected else "http" if self.http else "none"
        return (
            f"link={link} backlog={self.backlog_estimate} in_flight={len(self.inflight)}"
            f" delivered={self.counters.delivered} dead={self.counters.dead}"
        )

    def summary(self) -> dict[str, int]:
        c = self.counters
        return {
            "batches": c.batches_sent,
            "delivered": c.delivered,
            "dead": c.dead,
            "inbound_applied": c.inbound_applied,
            "inbound_rejected": c.inbound_refused,
            "acks_ignored": c.acks_ignored,
            "refused": c.refused,
        }

    def close(self) -> None:
        if self.mqtt:
            self.mqtt.close()
        if self.http:
            self.http.close()
        self.db.conn.close()

    def step(self) -> None:
        now = time.monotonic()
        if self.mqtt:
            was = self.mqtt.connected
            busy = bool(self.inflight) or self.backlog_estimate > 0
            arrived = self.mqtt.service(now, 0.002 if busy else 0.05)
            if self.mqtt.connected and not was:
                log.info("mqtt connected")
                self._rewind()
            if was and not self.mqtt.connected:
                self.mqtt_down_since = now
                self._rewind()
            acks = []
            for m in arrived:
                if m.topic == wire.topic(self.s.cabinet, "ack"):
                    ack = self._checked_ack(m)
                    if ack is not None:
                        acks.append(ack)
                else:
                    self._on_message(m.topic, m.payload)
            if acks:
                self._on_acks(acks)
        else:
            time.sleep(0.02)
        self._timers(now)
        self._pump(now)

    def _note(self, why: str) -> None:
        log.warning("%s", why)
        self._remember(why)

    def _remember(self, why: str) -> None:
        self.counters.errors.append(why)
        del self.counters.errors[:-20]

    def _checked_ack(self, m: Inbound) -> wire.Ack | None:
        """The ack in ``m`` when it is signed with this cabinet's key, else None (noted).

        No skew check: a replayed genuine ack is harmless (it names what the centre stored),
        and this cabinet's clock may be off. A forged one must not mark anything delivered:
        its records stay pending and go again."""
        why = signing.check_signed(
            self.s.key,
            m.user_property(signing.TIMESTAMP_PROPERTY),
            m.user_property(signing.SIGNATURE_PROPERTY),
            m.payload,
        )
        if why is not None:
            self.counters.acks_ignored += 1
            logs.warning("ack_ignored", why=why, ignored=self.counters.acks_ignored)
            self._remember(f"ack ignored: {why}")
            return None
        try:
            return wire.parse_ack(m.payload)
        except (wire.WireError, ValueError) as e:
            self._note(f"malformed ack: {e}")
            return None

    # -- outbox pump -----------------------------------------------------------------------------
    def _rewind(self) -> None:
        """Forget what is in flight: unacknowledged records will be read and sent again."""
        if self.inflight:
            self.counters.resends += len(self.inflight)
        self.inflight.clear()
        self.cursor = 0

    def _use_http(self, now: float) -> bool:
        if self.http is None:
            return False
        if self.mqtt is None:
            return True
        if self.s.catchup_http_over and self.backlog_estimate > self.s.catchup_http_over:
            return True
        return (
            not self.mqtt.connected
            and now - self.mqtt_down_since >= self.s.central.http_fallback_after_s
        )

    def _pump(self, now: float) -> None:
        if self._use_http(now):
            if self.inflight:
                self._rewind()
            if now >= max(self.timers.http_retry, self.http_quiet_until):
                self._pump_http(now)
            return
        if not (self.mqtt and self.mqtt.connected):
            return
        for bid, f in list(self.inflight.items()):
            if now - f.sent_at > self.s.ack_timeout_s:
                log.info("batch %s unanswered for %.0f s: sending again", bid, self.s.ack_timeout_s)
                self._rewind()
                break
        while len(self.inflight) < self.s.window:
            page = store.next_page(
                self.db,
                self.cursor,
                self.s.central.batch_max_records,
                self.s.central.batch_max_bytes,
            )
            if page is None:
                if not self.inflight:
                    # Nothing in flight yet records may remain before the cursor (an ack that
                    # named only some of its batch): read from the start next time.
                    self.cursor = 0
                self.backlog_estimate = 0
                return
            bid = wire.uuid7()
            body = wire.batch_json(bid, page.records_json)
            signed = signing.signed_properties(self.s.key, body, self.wall())
            if not self.mqtt.publish("up", body, user_properties=signed):
                return
            self.cursor = page.span.last_seq
            self.inflight[bid] = _InFlight(now, page.span)
            self.counters.batches_sent += 1
            self.backlog_estimate = max(self.backlog_estimate, len(page.span.ids))

    def _pump_http(self, now: float) -> None:
        assert self.http is not None
        # One batch per step, so acks, commands and the MQTT link keep being served.
        page = store.next_page(self.db, 0, self.http_page_records, self.s.central.batch_max_bytes)
        if page is None:
            self.backlog_estimate = 0
            return
        bid = wire.uuid7()
        body = wire.batch_json(bid, page.records_json)
        try:
            ack = self.http.post_batch(bid, body)
        except CentralUnreachable as e:
            self.timers.http_retry = now + self._http_trouble(now, e, "http batch")
            return
        except CentralRefused as e:
            self.heard_from_centre()
            self.timers.http_retry = now + self._batch_refused(bid, page, e)
            return
        self.http_backoff.reset()
        self.counters.via_http += 1
        self._on_acks([ack], {bid: page.span})

    def _batch_refused(self, bid: str, page: store.Page, e: CentralRefused) -> float:
        """A 4xx to a batch; the wait before the next one. Only the records a signed refusal
        names (and this batch holds) become dead letters; the rest stay pending."""
        ids = set(page.span.ids)
        named = tuple(r for r in named_records(e) if r.id in ids)
        if named:
            self._note(f"http batch: {len(named)} record(s) refused: {e}")
            dead = store.mark_acked(self.db, [wire.Ack(bid, (), named)], {bid: page.span})[1]
            self.counters.dead += dead
            self.http_backoff.reset()
            return 0.0  # the rest of the page goes again at once
        self.counters.refused += 1
        if e.status == 413 and self.http_page_records > 1:
            # Too large for the centre: smaller batches from now on, or the queue never moves.
            self.http_page_records = max(1, len(page.span.ids) // 2)
        self._note(f"http batch refused, kept pending: {e}")
        return self.http_backoff.next()

    def _http_trouble(self, now: float, e: CentralUnreachable, what: str) -> float:
        """Any request that got no usable answer: the wait before the next try. A 429/503's
        ``Retry-After`` holds back every HTTP request, not only this one."""
        if isinstance(e, CentralBusy):
            self.counters.busy += 1
            wait = self.http_backoff.after(e.retry_after)
            self.http_quiet_until = max(self.http_quiet_until, now + wait)
            self._note(f"{what}: {e}")
            return wait
        if isinstance(e, ClockSkew):
            self.counters.clock_skew += 1
            self._clock_skew(e)
        if isinstance(e, UnsignedAnswer):
            self.counters.acks_ignored += 1
        self._note(f"{what}: {e}")
        return self.http_backoff.next()

    def _clock_skew(self, e: ClockSkew) -> None:
        """A ``clock skew`` event, at most one an hour (kept across restarts): the operator
        must set the clock; meanwhile HTTP requests keep being refused and retried."""
        now = self.wall()
        last = store.get_setting(self.db, CLOCK_SKEW_NOTED)
        try:
            since = now - float(last) if last else None
        except ValueError:
            since = None
        # A clock that was set back since the last event counts as due for another one.
        if since is not None and 0 <= since < CLOCK_SKEW_EVENT_EVERY_S:
            return
        detail: dict[str, object] = {"cabinet_time": wire.iso(now)}
        if e.centre_time is not None:
            detail["centre_time"] = wire.iso(e.centre_time)
            detail["offset_s"] = round(now - e.centre_time)
        with store.tx(self.db):
            store.add_event(self.db, "clock skew", detail, severity="warning")
            store.put_setting(self.db, CLOCK_SKEW_NOTED, repr(now))

    def _on_acks(self, acks: list[wire.Ack], sent: dict[str, store.Span] | None = None) -> None:
        """``sent``: the batches the acks answer (by default those in flight on MQTT)."""
        if sent is None:
            sent = {bid: f.span for bid, f in self.inflight.items()}
        delivered, dead = store.mark_acked(self.db, acks, sent)
        self.counters.delivered += delivered
        self.counters.dead += dead
        for ack in acks:
            self.inflight.pop(ack.batch, None)
            logs.log(
                "batch_delivered",
                batch=ack.batch,
                stored=len(ack.stored),
                rejected=len(ack.rejected),
            )
        self.heard_from_centre()

    def heard_from_centre(self) -> None:
        """Note ``last_contact`` for the operator's sync screen, at most every few seconds."""
        now = time.monotonic()
        if now - self.contact_noted < CONTACT_EVERY_S:
            return
        self.contact_noted = now
        try:
            with store.tx(self.db):
                kdb.note_contact(self.db, clock.now_iso())
        except (store.StorageFull, sqlite3.Error) as e:
            self._note(f"last contact not saved: {e}")

    # -- inbound -------------------------------------------------------------------------------
    def _on_message(self, topic_name: str, payload: bytes) -> None:
        """What comes down, but acks (``step`` checks their signature first)."""
        leaf = topic_name.split("/", 3)[-1] if topic_name.count("/") >= 3 else ""
        if leaf in ("down/catalog", "down/config", "down/accounts"):
            if payload:  # an empty retained message clears the topic: nothing to apply
                self._down(leaf.split("/")[1], payload)
        elif leaf == "down/cmd":
            self.heard_from_centre()  # commands are sent by the centre now, never retained
            self._command(payload)

    def _down(self, kind: str, message: object) -> None:
        outcome = apply.handle_down(self.db, self.s.key, kind, message)
        if outcome is None:
            return
        self._count(outcome)
        if outcome.applied and outcome.config is not None:
            self._apply_config(int(outcome.ref or 0))

    def _command(self, message: object) -> None:
        outcome = apply.handle_command(self.db, self.s.key, message, time.time())
        self._count(outcome)
        if outcome.report_now:
            self.timers.telemetry = 0.0

    def _count(self, o: apply.Outcome) -> None:
        if o.applied:
            self.counters.inbound_applied += 1
            logs.log("inbound_applied", kind=o.kind, ref=o.ref)
        else:
            self.counters.inbound_refused += 1
            logs.warning("inbound_rejected", kind=o.kind, ref=o.ref, why=o.why)

    def _apply_config(self, version: int) -> None:
        if not version:
            return
        c = json.loads(store.get_setting(self.db, apply.CONFIG_JSON) or "{}")
        self.telemetry_interval_s = c.get(
            "telemetry_interval_s", self.s.central.telemetry_interval_s
        )
        self.poll_interval_s = c.get("poll_interval_s", self.s.central.poll_interval_s)

    def poll_http(self) -> None:
        """The second path for everything that comes down."""
        assert self.http is not None
        for kind in ("catalog", "config", "accounts"):
            message = self.http.get_down(kind, apply.current_version(self.db, kind))
            if message is not None:
                self._down(kind, message)
        after = store.get_setting(self.db, apply.LAST_CMD)
        commands = self.http.get_commands(after)
        self.heard_from_centre()
        for cmd in commands:
            self._command(cmd)

    # -- timers ---------------------------------------------------------------------------------
    def _timers(self, now: float) -> None:
        t = self.timers
        if now >= t.backlog:
            self.backlog_estimate = store.pending_count(self.db)
            t.backlog = now + 2.0
        if now >= t.telemetry:
            self.send_telemetry()
            t.telemetry = now + self.telemetry_interval_s
        # Captures first, then polls (and the batch pump after both, in ``step``): when the
        # centre asks for a pause (Retry-After), the money is the first thing tried after it.
        if self.http and now >= t.captures and now >= self.http_quiet_until:
            t.captures = now + min(self.poll_interval_s, 5.0)
            self.retry_captures()
        if self.http and now >= t.poll and now >= self.http_quiet_until:
            t.poll = now + self.poll_interval_s
            try:
                self.poll_http()
            except CentralRefused as e:
                self.heard_from_centre()
                self._note(f"http poll: {e}")
            except CentralUnreachable as e:
                self._http_trouble(now, e, "http poll")
        if now >= t.housekeeping:
            t.housekeeping = now + 60.0
            self.housekeeping()

    def send_telemetry(self) -> None:
        b = store.backlog(self.db)
        oldest = wire.parse_time(b.oldest_at) if b.oldest_at else None
        body = {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "backlog": b.pending,
            "dead": b.dead,
            "oldest_undelivered_s": round(time.time() - oldest, 1) if oldest else 0,
            "disk_free_mb": round(self._disk_free_mb(), 1),
            "devices": json.loads(store.get_setting(self.db, "device_health") or "{}"),
            "mqtt": bool(self.mqtt and self.mqtt.connected),
            "name": self.s.name,
            "location": self.s.location,
        }
        with store.tx(self.db):
            store.append(self.db, "telemetry", body)

    def _disk_free_mb(self) -> float:
        return shutil.disk_usage(self.db_path.parent).free / 1e6

    def housekeeping(self) -> None:
        cutoff = wire.iso(time.time() - self.s.central.prune_delivered_after_days * 86400)
        pruned = store.prune_delivered(self.db, cutoff)
        if pruned:
            log.info("pruned %d delivered records", pruned)
        free = self._disk_free_mb()
        low = free < self.s.central.storage_low_mb
        if low and not self.storage_low:
            store.event(self.db, "storage low", {"free_mb": round(free, 1)}, severity="alarm")
        self.storage_low = low

    def retry_captures(self) -> None:
        """Pending captures, until each gets a final answer (``sync.payments``); a round ends
        at the first that gets none: the centre is away or busy, the rest wait with it."""
        assert self.http is not None
        for auth_id, amount in store.pending_captures(self.db):
            try:
                answer = self.http.post_json(
                    "/payments/capture", {"auth_id": auth_id, "amount_fen": amount}
                )
            except CentralUnreachable as e:
                self._http_trouble(time.monotonic(), e, "capture")
                store.capture_tried(self.db, auth_id, False, str(e))
                return
            except CentralRefused as e:
                self.heard_from_centre()
                if not capture_refusal_is_final(e):
                    self._note(f"capture not answered, kept pending: {e}")
                    store.capture_tried(self.db, auth_id, False, str(e))
                    return
                store.capture_tried(self.db, auth_id, True, str(e))
                store.event(self.db, "capture refused", {"auth_id": auth_id, "why": e.error})
                continue
            self.heard_from_centre()
            ok = isinstance(answer, dict) and answer.get("ok") is True
            store.capture_tried(self.db, auth_id, True, None if ok else json.dumps(answer))


NOT_TUNABLE = ("mqtt_password", "mqtt_username")  # from the configuration only


def parse_tune(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` overrides of the agent's settings or of ``[central]``'s."""
    defaults = {
        f.name: f.default
        for dc in (Settings, Central)
        for f in fields(dc)
        if isinstance(f.default, int | float | str) and f.name not in NOT_TUNABLE
    }
    out: dict[str, object] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or k not in defaults:
            raise ValueError(f"--tune {item!r}: not KEY=VALUE of a sync setting")
        out[k] = type(defaults[k])(v)
    return out


def main(cfg: Config, db_path: str | None, tune: list[str]) -> int:
    """``kiosk sync``: run until SIGTERM/SIGINT; exit 2 on a bad key file or setting."""
    import os
    import signal
    import sys

    from kiosk import notify, signing

    logs.setup(os.environ.get("KIOSK_LOG_LEVEL", "info"))
    if cfg.central.key_file is None:
        print(
            "kiosk sync: [central] key_file is needed to sign and check messages", file=sys.stderr
        )
        return 2
    try:
        key = signing.load_key(cfg.central.key_file)
        password = ""
        if cfg.central.mqtt_password_file is not None:
            password = read_password(cfg.central.mqtt_password_file)
        settings = Settings.from_config(cfg, key, mqtt_password=password, **parse_tune(tune))
    except (signing.KeyFileError, ValueError) as e:
        print(f"kiosk sync: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signals: list[str] = []

    def on_signal(signum: int, frame: object) -> None:
        signals.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    agent = Agent(settings, db_path or cfg.database)
    hang = notify.DebugHang()
    dog = notify.Watchdog()
    shown = [""]

    def on_tick() -> None:
        hang.check()
        dog.tick()
        text = agent.status_line()
        if text != shown[0]:
            shown[0] = text
            notify.status(text)

    notify.ready(agent.status_line())
    try:
        agent.run(stop, on_tick)  # a step in hand finishes; the database is closed after it
    finally:
        notify.stopping()
        logs.log("sync_stopped", signal=signals[0] if signals else None, **agent.summary())
    return 0
