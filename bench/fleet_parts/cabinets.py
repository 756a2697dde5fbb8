"""Simulated cabinets: each one an MQTT v5 connection (``mqtt5.Client``) with an outbox, sending
signed batches and resending what is not acked, as the sync agent does (sync/agent.py):

- records are made as the controller makes them: a UUIDv7 id, the next ``seq``, an RFC 3339
  ``at`` and a body like a real sale, session, inventory, event or telemetry record;
- up to ``WINDOW`` batches of at most ``BATCH_MAX_RECORDS`` records (and ``BATCH_MAX_BYTES``)
  in flight, each signed with ``kiosk.signing.signed_properties`` as MQTT v5 user properties;
- an ack counts only with a good signature; it settles the ids it names stored (or rejected);
- a batch unanswered within the ack timeout rewinds: every unacked record goes again in new
  batches (the centre drops the duplicates by id);
- presence: a retained ``online`` status on connecting, ``offline`` as the Last Will.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kiosk import signing, wire

from .mqtt5 import Client, Message, Will

WINDOW = 8  # sync.agent.Settings.window
BATCH_MAX_RECORDS = 500  # [central] batch_max_records default
BATCH_MAX_BYTES = 256_000  # [central] batch_max_bytes default
VERSION = "0.1.0"


@dataclass
class Tally:
    """What the whole fleet did, for the report."""

    made: list[str] = field(default_factory=list)  # every record id made, in order
    acked: int = 0  # records settled as stored by an ack (the first time)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # record made -> its ack, seconds
    batch_latencies: list[float] = field(default_factory=list)  # publish -> ack, seconds
    batches: int = 0
    rewinds: int = 0  # batches sent again after the ack timeout
    bad_acks: int = 0  # acks with a missing or bad signature (ignored)
    stray_acks: int = 0  # acks for no batch in flight (an answer to a resend, say)
    catalogs: dict[str, float] = field(default_factory=dict)  # cabinet -> received (monotonic)
    bad_catalogs: int = 0


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class Cabinet:
    def __init__(self, cabinet: str, key: bytes, tally: Tally, ack_timeout_s: float = 15.0):
        self.id = cabinet
        self.key = key
        self.tally = tally
        self.ack_timeout_s = ack_timeout_s
        self.seq = 0
        self.pending: dict[str, tuple[float, str]] = {}  # id -> (made, record JSON)
        self.queue: deque[str] = deque()  # ids to send, not in flight
        self.inflight: dict[str, tuple[float, list[str]]] = {}  # batch -> (sent, ids)
        offline = _json({"state": "offline", "at": wire.now_iso(), "version": VERSION})
        self.client = Client(
            f"kiosk-{cabinet}",
            on_message=self.on_message,
            will=Will(wire.topic(cabinet, "status"), offline.encode()),
        )
        self._up = wire.topic(cabinet, "up")

    # -- the link ----------------------------------------------------------------------------------
    async def connect(self, host: str, port: int) -> None:
        """Connect, subscribe to acks and downlinks, say online (as the agent on start)."""
        await self.client.connect(host, port)
        await self.client.subscribe(wire.topic(self.id, "ack"))
        await self.client.subscribe(wire.topic(self.id, "down/#"))
        online = _json({"state": "online", "at": wire.now_iso(), "version": VERSION})
        self.client.publish(wire.topic(self.id, "status"), online.encode(), retain=True)

    def on_message(self, msg: Message) -> None:
        if msg.topic.endswith("/ack"):
            self.on_ack(msg)
        elif msg.topic.endswith("/down/catalog"):
            self.on_catalog(msg)

    # -- the outbox --------------------------------------------------------------------------------
    def add(self, type_: str, body: dict[str, Any], at: str | None = None) -> str:
        """One record in the outbox, as ``kiosk.db.outbox_append`` makes it."""
        self.seq += 1
        rid = wire.uuid7()
        rec = wire.Record(rid, self.seq, type_, at or wire.now_iso(), _json(body))
        self.pending[rid] = (time.monotonic(), wire.record_json(rec))
        self.queue.append(rid)
        self.tally.made.append(rid)
        return rid

    def pump(self) -> None:
        """Send what is queued, up to the window (the agent's ``_pump``)."""
        while self.queue and len(self.inflight) < WINDOW and self.client.connected:
            ids: list[str] = []
            size = 0
            while self.queue and len(ids) < BATCH_MAX_RECORDS:
                rid = self.queue[0]
                got = self.pending.get(rid)
                if got is None:  # acked meanwhile (an ack to an earlier send)
                    self.queue.popleft()
                    continue
                if ids and size + len(got[1]) > BATCH_MAX_BYTES:
                    break
                ids.append(self.queue.popleft())
                size += len(got[1]) + 1
            if not ids:
                return
            bid = wire.uuid7()
            payload = wire.batch_json(bid, (self.pending[i][1] for i in ids))
            props = signing.signed_properties(self.key, payload, time.time())
            self.client.publish(self._up, payload, qos=1, properties=props)
            self.inflight[bid] = (time.monotonic(), ids)
            self.tally.batches += 1

    def check_timeouts(self, now: float) -> None:
        """A batch unanswered for the ack timeout: every unacked record goes again."""
        if any(now - sent > self.ack_timeout_s for sent, _ in self.inflight.values()):
            again = [i for _, ids in self.inflight.values() for i in ids if i in self.pending]
            self.tally.rewinds += len(self.inflight)
            self.inflight.clear()
            self.queue.extendleft(reversed(again))
            self.pump()

    def on_ack(self, msg: Message) -> None:
        ts = msg.properties.get(signing.TIMESTAMP_PROPERTY)
        sig = msg.properties.get(signing.SIGNATURE_PROPERTY)
        if signing.check_signed(self.key, ts, sig, msg.payload) is not None:
            self.tally.bad_acks += 1
            return
        ack = wire.parse_ack(msg.payload)
        now = time.monotonic()
        sent = self.inflight.pop(ack.batch, None)
        if sent is None:
            self.tally.stray_acks += 1
        else:
            self.tally.batch_latencies.append(now - sent[0])
        for rid in ack.stored:
            got = self.pending.pop(rid, None)
            if got is not None:
                self.tally.acked += 1
                self.tally.latencies.append(now - got[0])
        for r in ack.rejected:
            if self.pending.pop(r.id, None) is not None:
                self.tally.rejected.append((r.id, r.why))
        self.pump()

    def on_catalog(self, msg: Message) -> None:
        try:
            ok = signing.verify_message(self.key, json.loads(msg.payload))
        except ValueError:
            ok = False
        if ok:
            self.tally.catalogs.setdefault(self.id, time.monotonic())
        else:
            self.tally.bad_catalogs += 1


# -- what a cabinet records at lunch ---------------------------------------------------------------
class Shop:
    """Record bodies as the controller writes them (kiosk/controller/settlement.py, sync/agent.py
    telemetry), from the sample catalogue's products."""

    def __init__(self, catalog: dict[str, Any], rng: random.Random):
        self.products = catalog["products"]
        self.version = int(catalog.get("version", 1))
        self.rng = rng

    def sale(self, cab: Cabinet, at: str) -> None:
        """A sold session: its sale, the lanes it changed and the session record."""
        rng = self.rng
        picked = rng.sample(self.products, rng.choice((1, 1, 1, 2, 2, 3)))
        items = [
            {
                "sku": p["sku"],
                "qty": rng.choice((1, 1, 1, 2)),
                "unit_price_fen": p["price_fen"],
                "cert_no": p.get("cert_no") or "",
                "supplier": p["supplier"],
            }
            for p in picked
        ]
        session = wire.uuid7()
        method, status = rng.choice(
            (("payment_code", "captured"), ("card", "deferred"), ("scan_to_open", "deferred"))
        )
        account = f"{rng.getrandbits(128):032x}"
        sale_id = wire.uuid7()
        sale = {
            "id": sale_id,
            "session": session,
            "door": "D1",
            "opened_at": at,
            "closed_at": at,
            "items": items,
            "total_fen": sum(i["qty"] * i["unit_price_fen"] for i in items),
            "payment": {"method": method, "account": account, "status": status},
            "confidence": round(rng.uniform(0.95, 1.0), 4),
            "catalog_version": self.version,
            "review": False,
        }
        cab.add("sale", sale, at)
        lanes = [
            {"shelf": f"S{n + 1}", "sku": i["sku"], "count": rng.randint(0, 20)}
            for n, i in enumerate(items)
        ]
        cab.add("inventory", {"session": session, "reason": "sale", "lanes": lanes}, at)
        cab.add("session", self._session(session, method, account, "sold", at, sale_id), at)

    def empty_session(self, cab: Cabinet, at: str) -> None:
        """A door opened and closed with nothing taken."""
        account = f"{self.rng.getrandbits(128):032x}"
        session = self._session(wire.uuid7(), "card", account, "nothing_taken", at, None)
        cab.add("session", session, at)

    def _session(
        self, sid: str, method: str, account: str, outcome: str, at: str, sale: str | None
    ) -> dict[str, Any]:
        body = {
            "id": sid,
            "door": "D1",
            "kind": "sale",
            "method": method,
            "account": account,
            "started_at": at,
            "unlocked_at": at,
            "closed_at": at,
            "finished_at": at,
            "outcome": outcome,
            "catalog_version": self.version,
        }
        return {**body, "sale": sale} if sale else body

    def telemetry(self, cab: Cabinet, at: str) -> None:
        body = {
            "uptime_s": round(self.rng.uniform(1e3, 1e6), 1),
            "backlog": len(cab.pending),
            "dead": 0,
            "oldest_undelivered_s": 0,
            "disk_free_mb": 5120.0,
            "devices": {"scale:S1": "ok", "lock:D1": "ok"},
            "mqtt": True,
            "name": f"Cabinet {cab.id}",
            "location": "Qionghai",
        }
        cab.add("telemetry", body, at)

    def event(self, cab: Cabinet, at: str) -> None:
        sku = self.rng.choice(self.products)["sku"]
        body = {
            "id": wire.uuid7(),
            "kind": "low_stock",
            "severity": "warning",
            "device": f"S1/{sku}",
            "detail": {"count": 1},
        }
        cab.add("event", body, at)
