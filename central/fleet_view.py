"""What the fleet API shows, read from the records the cabinets sent and the centre's tables.

- **Cabinets**: online, last contact, software version, route, and from their newest records:
  health (the newest ``telemetry``: backlog, dead letters, disk, devices), the versions in force
  (``applied`` records), the newest versions published (``downlinks``), open alarms.
- **Stock**: the last known count of each lane, folded from ``inventory`` records into
  ``fleet_lanes`` (a lane keeps the count of its highest-``seq`` record, so records folded in
  any order give the same lanes). The fold is a catch-up pass like ``central.alarms``'s: the
  inventory records with no ``fleet_lanes_folded`` row, per cabinet, under that cabinet's
  ``fleet_fold_locks`` row (two passes on PostgreSQL wait for each other; SQLite has one
  writer). A pass starts a write transaction only when there is something to fold.
- **Restock list per route**: lanes that are low (count at or below ``low``, or a ``low_stock``
  warning newer than the lane's last restock: the cabinet's own threshold) or whose goods
  expire within ``within_days``: the date a restock recorded, else the last restock's day plus
  the catalogue's ``shelf_life_days`` (the catalogue the cabinet applied; ``estimated``).
- **Sales** with their lines, refunds and review; the **review queue**: sales whose
  ``confidence`` is below ``REVIEW_BELOW`` or which the cabinet flagged (``review: true``: the
  customer did not pick among close baskets), not yet reviewed here.
- **Commands** with who sent them and their outcome: the ``cmd_result`` record with their
  ``cmd_id``; else expired, published (MQTT) or queued.
- **Versions**: per cabinet and kind, each version published (by whom, when) and when the
  cabinet applied it (its ``applied`` record).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from central import alarms as alarm_view
from central import schema as t
from central import schema_auth as ta
from central.auth import Principal, insert, iso, read_tx, utc, write_tx
from central.store import Store
from kiosk import clock as wall
from kiosk import wire

# The weigher calls a verdict sure while no other basket passes 30 % (kiosk/weighing/session.py
# ``other_max``): a sale below 0.7 was a guess somewhere.
REVIEW_BELOW = 0.7
DOWN_KINDS = ("catalog", "config", "accounts")


@dataclass(frozen=True)
class CabinetRow:
    id: str
    name: str
    location: str
    route: str | None
    retired_at: str | None
    online: bool
    last_contact: str | None
    version: str


def cabinet_rows(store: Store) -> list[CabinetRow]:
    c = t.cabinets.c
    with read_tx(store) as conn:
        got = conn.execute(
            sa.select(
                c.id, c.name, c.location, c.route, c.retired_at, c.online, c.last_contact, c.version
            ).order_by(c.id)
        ).all()
    return [
        CabinetRow(r.id, r.name, r.location, r.route, r.retired_at, bool(r.online),
                   r.last_contact, r.version)
        for r in got
    ]  # fmt: skip


def visible(p: Principal, rows: Iterable[CabinetRow]) -> list[CabinetRow]:
    return [r for r in rows if p.covers(r.id, r.route)]


def _latest(conn: Connection, cabinet: str, type_: str) -> Any:
    r = t.records.c
    return conn.execute(
        sa.select(r.seq, r.at, r.body)
        .where(r.cabinet == cabinet, r.type == type_)
        .order_by(r.seq.desc())
        .limit(1)
    ).first()


def _applied(conn: Connection, cabinet: str) -> dict[str, list[tuple[int, str, int]]]:
    """kind -> [(version, at, seq)] of the cabinet's ``applied`` records, by seq."""
    r = t.records.c
    out: dict[str, list[tuple[int, str, int]]] = {}
    for seq, at, body in conn.execute(
        sa.select(r.seq, r.at, r.body)
        .where(r.cabinet == cabinet, r.type == "applied")
        .order_by(r.seq)
    ):
        b = json.loads(body)
        if isinstance(b.get("kind"), str) and isinstance(b.get("version"), int):
            out.setdefault(b["kind"], []).append((b["version"], at, int(seq)))
    return out


def _health(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    b = json.loads(row.body)
    keys = ("uptime_s", "backlog", "dead", "oldest_undelivered_s", "disk_free_mb", "mqtt")
    return {"at": row.at, **{k: b.get(k) for k in keys}, "devices": b.get("devices") or {}}


def overview(store: Store, cabinets: Sequence[CabinetRow]) -> list[dict[str, Any]]:
    ids = [c.id for c in cabinets]
    open_alarms = alarm_view.open_counts(store, ids)
    d = t.downlinks.c
    out = []
    with read_tx(store) as conn:
        published = {
            (cab, kind): int(v)
            for cab, kind, v in conn.execute(
                sa.select(d.cabinet, d.kind, sa.func.max(d.version))
                .where(d.cabinet.in_(ids))
                .group_by(d.cabinet, d.kind)
            )
        }
        for c in cabinets:
            applied = _applied(conn, c.id)
            out.append(
                {
                    "id": c.id,
                    "name": c.name,
                    "location": c.location,
                    "route": c.route,
                    "retired_at": c.retired_at,
                    "online": c.online,
                    "last_contact": c.last_contact,
                    "version": c.version,
                    "health": _health(_latest(conn, c.id, "telemetry")),
                    "applied": {
                        k: {"version": v[-1][0], "at": v[-1][1]} for k, v in applied.items()
                    },
                    "published": {
                        k: published[(c.id, k)] for k in DOWN_KINDS if (c.id, k) in published
                    },
                    "open_alarms": open_alarms.get(c.id, 0),
                }
            )
    return out


# -- stock ----------------------------------------------------------------------------------------
@dataclass
class _Lane:
    count: int
    seq: int
    at: str
    expires_on: str | None = None
    expires_seq: int | None = None
    restocked_at: str | None = None
    restock_seq: int | None = None


def apply_inventory(
    lanes: dict[tuple[str, str], _Lane], seq: int, at: str, body: Any
) -> set[tuple[str, str]]:
    """Pure: fold one inventory record into ``lanes``; the keys it changed. Newer wins per
    field, so the order records are folded in does not matter."""
    changed: set[tuple[str, str]] = set()
    if not isinstance(body, dict) or not isinstance(body.get("lanes"), list):
        return changed
    restock = body.get("reason") == "restock"
    for x in body["lanes"]:
        if not isinstance(x, dict):
            continue
        shelf, sku, count = x.get("shelf"), x.get("sku"), x.get("count")
        if not (isinstance(shelf, str) and isinstance(sku, str)):
            continue
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            continue
        key = (shelf, sku)
        lane = lanes.get(key)
        if lane is None:
            lane = lanes[key] = _Lane(count, seq, at)
        elif seq > lane.seq:
            lane.count, lane.seq, lane.at = count, seq, at
        if "expires_on" in x and (lane.expires_seq is None or seq > lane.expires_seq):
            exp = x["expires_on"]
            lane.expires_on, lane.expires_seq = (exp if isinstance(exp, str) else None), seq
        if restock and (lane.restock_seq is None or seq > lane.restock_seq):
            lane.restocked_at, lane.restock_seq = at, seq
        changed.add(key)
    return changed


def fold_lanes(store: Store, cabinets: Iterable[str]) -> int:
    """Fold the inventory records of ``cabinets`` not folded yet; how many."""
    r, f = t.records.c, ta.fleet_lanes_folded.c
    unfolded = (
        sa.select(r.id, r.cabinet, r.seq, r.at, r.body)
        .select_from(t.records.outerjoin(ta.fleet_lanes_folded, f.record_id == r.id))
        .where(r.type == "inventory", f.record_id.is_(None))
    )
    cabs = sorted(set(cabinets))
    if not cabs:
        return 0
    with read_tx(store) as conn:  # which cabinets have anything to fold (a read: no lock)
        todo = sorted(
            conn.execute(
                sa.select(r.cabinet)
                .distinct()
                .select_from(t.records.outerjoin(ta.fleet_lanes_folded, f.record_id == r.id))
                .where(r.cabinet.in_(cabs), r.type == "inventory", f.record_id.is_(None))
            ).scalars()
        )
    n = 0
    for cab in todo:
        with write_tx(store) as conn:
            lk = ta.fleet_fold_locks.c
            conn.execute(
                insert(store, ta.fleet_fold_locks)
                .values(cabinet=cab)
                .on_conflict_do_nothing(index_elements=[lk.cabinet])
            )
            conn.execute(sa.select(lk.cabinet).where(lk.cabinet == cab).with_for_update())
            got = conn.execute(unfolded.where(r.cabinet == cab).order_by(r.seq)).all()
            if not got:
                continue
            fl = ta.fleet_lanes.c
            lanes = {
                (x.shelf, x.sku): _Lane(
                    int(x.count), int(x.seq), x.at, x.expires_on,
                    x.expires_seq, x.restocked_at, x.restock_seq,
                )
                for x in conn.execute(sa.select(ta.fleet_lanes).where(fl.cabinet == cab))
            }  # fmt: skip
            changed: set[tuple[str, str]] = set()
            for rec in got:
                changed |= apply_inventory(lanes, int(rec.seq), rec.at, json.loads(rec.body))
            if changed:
                ins = insert(store, ta.fleet_lanes)
                cols = ("count", "seq", "at", "expires_on", "expires_seq", "restocked_at",
                        "restock_seq")  # fmt: skip
                conn.execute(
                    ins.on_conflict_do_update(
                        index_elements=[fl.cabinet, fl.shelf, fl.sku],
                        set_={c: ins.excluded[c] for c in cols},
                    ),
                    [
                        {"cabinet": cab, "shelf": k[0], "sku": k[1], **vars(lanes[k])}
                        for k in sorted(changed)
                    ],
                )
            conn.execute(
                ta.fleet_lanes_folded.insert(),
                [{"record_id": rec.id, "cabinet": cab} for rec in got],
            )
            n += len(got)
    return n


def stock(store: Store, cabinet: str) -> list[dict[str, Any]]:
    fold_lanes(store, [cabinet])
    fl = ta.fleet_lanes.c
    with read_tx(store) as conn:
        got = conn.execute(
            sa.select(ta.fleet_lanes).where(fl.cabinet == cabinet).order_by(fl.shelf, fl.sku)
        ).all()
    return [
        {
            "shelf": x.shelf,
            "sku": x.sku,
            "count": int(x.count),
            "at": x.at,
            "expires_on": x.expires_on,
            "restocked_at": x.restocked_at,
        }
        for x in got
    ]


def _catalog(conn: Connection, cabinet: str, version: int | None) -> dict[str, Any] | None:
    """The catalogue the cabinet applied (else the newest sent to it, else to anyone)."""
    d = t.downlinks.c
    for where in (
        (d.cabinet == cabinet, d.version == version) if version else None,
        (d.cabinet == cabinet,),
        (),
    ):
        if where is None:
            continue
        m = conn.execute(
            sa.select(d.message)
            .where(d.kind == "catalog", *where)
            .order_by(d.version.desc(), d.created_at.desc())
            .limit(1)
        ).scalar()
        if m:
            return json.loads(m).get("catalog")
    return None


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def restock_list(
    store: Store,
    route: str,
    cabinets: Sequence[CabinetRow],
    today: date,
    *,
    within_days: int = 2,
    low: int = 1,
) -> dict[str, Any]:
    """The lanes to attend on ``route`` (of ``cabinets``, the ones the asker may see)."""
    mine = [c for c in cabinets if c.route == route and not c.retired_at]
    ids = [c.id for c in mine]
    fold_lanes(store, ids)
    alarm_view.fold(store, ids)
    fl, fe = ta.fleet_lanes.c, ta.fleet_events.c
    soon = today + timedelta(days=within_days)
    out = []
    totals: dict[str, int] = {}
    with read_tx(store) as conn:
        for c in mine:
            warned = {
                dev: int(seq)
                for dev, seq in conn.execute(
                    sa.select(fe.device, sa.func.max(fe.seq))
                    .where(fe.cabinet == c.id, fe.kind == "low_stock")
                    .group_by(fe.device)
                )
            }
            applied = _applied(conn, c.id).get("catalog")
            catalog = _catalog(conn, c.id, applied[-1][0] if applied else None) or {}
            products = {p.get("sku"): p for p in catalog.get("products", []) if isinstance(p, dict)}
            lanes = []
            for x in conn.execute(
                sa.select(ta.fleet_lanes).where(fl.cabinet == c.id).order_by(fl.shelf, fl.sku)
            ):
                count = int(x.count)
                is_low = count <= low or warned.get(f"{x.shelf}/{x.sku}", -1) > (x.restock_seq or 0)
                p = products.get(x.sku) or {}
                expires, estimated = _day(x.expires_on), False
                life = p.get("shelf_life_days")
                if expires is None and x.restocked_at and isinstance(life, int):
                    start = _day(x.restocked_at)
                    if start is not None:
                        expires, estimated = start + timedelta(days=life), True
                expiry = None
                if count > 0 and expires is not None:
                    expiry = (
                        "expired" if expires < today else "expiring" if expires <= soon else None
                    )
                if not is_low and expiry is None:
                    continue
                totals[x.sku] = totals.get(x.sku, 0) + 1
                lanes.append(
                    {
                        "shelf": x.shelf,
                        "sku": x.sku,
                        "zh": p.get("zh"),
                        "en": p.get("en"),
                        "count": count,
                        "low": is_low,
                        "expiry": expiry,
                        "expires_on": expires.isoformat() if expires else None,
                        "estimated": estimated,
                        "at": x.at,
                    }
                )
            if lanes:
                out.append(
                    {"cabinet": c.id, "name": c.name, "location": c.location, "lanes": lanes}
                )
    return {
        "route": route,
        "today": today.isoformat(),
        "within_days": within_days,
        "low": low,
        "cabinets": out,
        "totals": dict(sorted(totals.items())),
    }


# -- sales ----------------------------------------------------------------------------------------
def _confidence(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def needs_review(confidence: float | None, body: dict[str, Any]) -> bool:
    return body.get("review") is True or (confidence is not None and confidence < REVIEW_BELOW)


def sales(
    store: Store,
    cabinets: Sequence[str],
    *,
    review_queue: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    sale_ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Sales newest first, with lines, refunds and review; ``review_queue``: only those to be
    reviewed and not reviewed yet."""
    s, r, v = t.sales.c, t.records.c, ta.sale_reviews.c
    q = (
        sa.select(t.sales, r.body, v.reviewed_by, v.reviewed_at, v.note)
        .select_from(
            t.sales.join(t.records, r.id == s.record_id).outerjoin(
                ta.sale_reviews, v.sale_id == s.record_id
            )
        )
        .where(s.cabinet.in_(list(cabinets)))
    )
    if sale_ids is not None:
        q = q.where(s.record_id.in_(list(sale_ids)))
    if since is not None:
        q = q.where(s.closed_at >= since)
    if until is not None:
        q = q.where(s.closed_at < until)
    if review_queue:
        # The body is stored compact (no spaces; central.store._dumps), so a flagged sale's
        # text holds exactly this; the parsed body decides below.
        q = q.where(
            v.sale_id.is_(None),
            sa.or_(
                sa.cast(s.confidence, sa.Float) < REVIEW_BELOW,
                r.body.like('%"review":true%'),
            ),
        )
    q = q.order_by(s.closed_at.desc(), s.record_id.desc()).limit(limit)
    with read_tx(store) as conn:
        got = conn.execute(q).all()
        ids = [x.record_id for x in got]
        sl, ad = t.sale_lines.c, t.adjustments.c
        lines: dict[str, list[dict[str, Any]]] = {}
        for x in conn.execute(
            sa.select(t.sale_lines).where(sl.sale_id.in_(ids)).order_by(sl.sale_id, sl.line_no)
        ):
            lines.setdefault(x.sale_id, []).append(
                {
                    "sku": x.sku,
                    "qty": int(x.qty),
                    "unit_price_fen": int(x.unit_price_fen),
                    "amount_fen": int(x.amount_fen),
                    "supplier": x.supplier,
                    "cert_no": x.cert_no,
                }
            )
        refunds: dict[str, list[dict[str, Any]]] = {}
        for x in conn.execute(
            sa.select(t.adjustments).where(ad.sale_id.in_(ids)).order_by(ad.at, ad.record_id)
        ):
            refunds.setdefault(x.sale_id, []).append(
                {
                    "id": x.record_id,
                    "amount_fen": int(x.amount_fen),
                    "items": json.loads(x.items),
                    "reason": x.reason,
                    "actor": x.actor,
                    "at": iso(x.at),
                }
            )
    out = []
    for x in got:
        body = json.loads(x.body)
        conf = _confidence(x.confidence)
        flagged = needs_review(conf, body)
        if review_queue and not flagged:
            continue
        out.append(
            {
                "id": x.record_id,
                "cabinet": x.cabinet,
                "sale_no": x.sale_no,
                "session": x.session,
                "door": x.door,
                "closed_at": iso(x.closed_at),
                "total_fen": int(x.total_fen),
                "method": x.method,
                "status": x.status,
                "account": x.account,
                "confidence": conf,
                "catalog_version": x.catalog_version,
                "to_review": flagged,
                "review": (
                    None
                    if x.reviewed_by is None
                    else {"by": x.reviewed_by, "at": iso(x.reviewed_at), "note": x.note}
                ),
                "lines": lines.get(x.record_id, []),
                "refunds": refunds.get(x.record_id, []),
            }
        )
    return out


def sale_cabinet(store: Store, sale_id: str) -> tuple[str, str | None, int] | None:
    """(cabinet, the cabinet's own sale id, total) of a sale, or None."""
    s = t.sales.c
    with read_tx(store) as conn:
        r = conn.execute(
            sa.select(s.cabinet, s.sale_no, s.total_fen).where(s.record_id == sale_id)
        ).first()
    return None if r is None else (r.cabinet, r.sale_no, int(r.total_fen))


# -- commands -------------------------------------------------------------------------------------
def _results(conn: Connection, cabinet: str, since: datetime) -> dict[str, dict[str, Any]]:
    r = t.records.c
    out: dict[str, dict[str, Any]] = {}
    for at, body in conn.execute(
        sa.select(r.at, r.body)
        .where(r.cabinet == cabinet, r.type == "cmd_result", r.received_at >= since)
        .order_by(r.seq)
    ):
        b = json.loads(body)
        if isinstance(b.get("cmd_id"), str):
            out.setdefault(b["cmd_id"], {"ok": b.get("ok"), "detail": b.get("detail"), "at": at})
    return out


def _command_json(x: Any, result: dict[str, Any] | None, now: float) -> dict[str, Any]:
    m = json.loads(x.message)
    exp = wire.parse_time(m.get("expires_at"))
    if result is not None:
        state = "done" if result.get("ok") else "failed"
    elif exp is not None and exp <= now:
        state = "expired"
    else:
        state = "published" if x.published else "queued"
    return {
        "cmd_id": x.cmd_id,
        "cabinet": x.cabinet,
        "cmd": m.get("cmd"),
        "args": m.get("args"),
        "expires_at": m.get("expires_at"),
        "created_at": iso(x.created_at),
        "issued_by": x.issued_by,
        "state": state,
        "result": result,
    }


def commands(
    store: Store, cabinet: str, limit: int = 50, cmd_id: str | None = None
) -> list[dict[str, Any]]:
    """A cabinet's commands, newest first (or the one ``cmd_id``), with their outcome."""
    c, i = t.commands.c, ta.command_issuers.c
    q = (
        sa.select(c.cmd_id, c.cabinet, c.message, c.created_at, c.published, i.issued_by)
        .select_from(t.commands.outerjoin(ta.command_issuers, i.cmd_id == c.cmd_id))
        .where(c.cabinet == cabinet)
    )
    if cmd_id is not None:
        q = q.where(c.cmd_id == cmd_id)
    with read_tx(store) as conn:
        got = conn.execute(q.order_by(c.seq.desc()).limit(limit)).all()
        # a result cannot arrive before its command was queued
        since = min((utc(x.created_at) for x in got), default=None)
        results = _results(conn, cabinet, since) if since is not None else {}
    now = wall.now().timestamp()
    return [_command_json(x, results.get(x.cmd_id), now) for x in got]


def command_cabinet(store: Store, cmd_id: str) -> str | None:
    c = t.commands.c
    with read_tx(store) as conn:
        return conn.execute(sa.select(c.cabinet).where(c.cmd_id == cmd_id)).scalar()


# -- versions -------------------------------------------------------------------------------------
def versions(store: Store, kind: str, cabinets: Sequence[str]) -> list[dict[str, Any]]:
    """Per cabinet: every version of ``kind`` published (by whom, when) and when it was
    applied; and the version in force."""
    d, p = t.downlinks.c, ta.publications.c
    out = []
    with read_tx(store) as conn:
        for cab in cabinets:
            in_force = _applied(conn, cab).get(kind, [])
            applied = {v: at for v, at, _ in in_force}
            rows = conn.execute(
                sa.select(d.version, d.created_at, p.published_by, p.published_at)
                .select_from(
                    t.downlinks.outerjoin(
                        ta.publications,
                        sa.and_(p.cabinet == d.cabinet, p.kind == d.kind, p.version == d.version),
                    )
                )
                .where(d.cabinet == cab, d.kind == kind)
                .order_by(d.version)
            ).all()
            out.append(
                {
                    "cabinet": cab,
                    "kind": kind,
                    "in_force": (
                        {"version": in_force[-1][0], "at": in_force[-1][1]} if in_force else None
                    ),
                    "published": [
                        {
                            "version": int(x.version),
                            "published_at": iso(x.published_at or x.created_at),
                            "published_by": x.published_by,
                            "applied_at": applied.get(int(x.version)),
                        }
                        for x in rows
                    ],
                }
            )
    return out
