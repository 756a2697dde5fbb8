"""Alarms: the cabinets' ``event`` records of severity ``alarm``, open until a person
acknowledges them with a note.

Why a table and not a read of ``records`` each time: an event's severity is inside its JSON
body, which SQL cannot filter alike on both backends, and a cabinet's events pile up for years.
So each ``event`` record is parsed once into ``fleet_events`` (every severity: the restock list
reads ``low_stock`` warnings from it), and the acknowledgement is kept on that row.

The fold is a catch-up pass run before every read and acknowledgement: per cabinet, the event
records with no ``fleet_events`` row yet (an anti-join on the primary key, over the
``records_cabinet_type_seq`` index). So a record that arrives late, on either path, in any
order, is folded exactly once; two passes at once both insert ``ON CONFLICT DO NOTHING``. There
is no cursor to lose or repeat, and nothing is kept in memory between requests.

An event without ``severity`` counts as an alarm (the cabinet's own default,
``kiosk.journal.raise_event``; ``central.alarm_hooks`` reads it the same way). The cabinet's
own acknowledgements (on its screen) do not come up in the contract; an alarm acknowledged
there stays open here until someone acknowledges it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from central import schema as t
from central import schema_auth as ta
from central.auth import AuthError, dumps, insert, iso, read_tx, write_tx
from central.store import Store

NOTE_MAX = 500
STATES = ("open", "acked", "all")


@dataclass(frozen=True)
class EventRow:
    record_id: str
    cabinet: str
    seq: int
    at: str
    kind: str
    severity: str
    device: str | None
    detail: str  # JSON


def event_row(record_id: str, cabinet: str, seq: int, at: str, body: dict[str, Any]) -> EventRow:
    """Pure: a stored ``event`` record -> its ``fleet_events`` row."""
    kind = body.get("kind")
    severity = body.get("severity", "alarm")
    device = body.get("device")
    detail = body.get("detail")
    if not isinstance(detail, dict):  # "...detail" in the contract: whatever else it carried
        detail = {k: v for k, v in body.items() if k not in ("id", "kind", "severity", "device")}
    return EventRow(
        record_id=record_id,
        cabinet=cabinet,
        seq=int(seq),
        at=at,
        kind=kind if isinstance(kind, str) else "?",
        # no severity: an alarm (the cabinet's default; central.alarm_hooks reads it so too)
        severity=severity if severity in ("info", "warning", "alarm") else "info",
        device=device if isinstance(device, str) else None,
        detail=dumps(detail),
    )


def fold(store: Store, cabinets: Iterable[str]) -> int:
    """Parse the event records of ``cabinets`` not folded yet; how many were new."""
    cabs = sorted(set(cabinets))
    if not cabs:
        return 0
    r, f = t.records.c, ta.fleet_events.c
    with read_tx(store) as conn:
        got = conn.execute(
            sa.select(r.id, r.cabinet, r.seq, r.at, r.body)
            .select_from(t.records.outerjoin(ta.fleet_events, f.record_id == r.id))
            .where(r.cabinet.in_(cabs), r.type == "event", f.record_id.is_(None))
        ).all()
    if not got:
        return 0
    rows = [asdict(event_row(i, c, s, a, json.loads(b))) for i, c, s, a, b in got]
    with write_tx(store) as conn:
        conn.execute(
            insert(store, ta.fleet_events).on_conflict_do_nothing(index_elements=[f.record_id]),
            rows,
        )
    return len(rows)


def _alarm_json(r: Any) -> dict[str, Any]:
    return {
        "id": r.record_id,
        "cabinet": r.cabinet,
        "seq": int(r.seq),
        "at": r.at,
        "kind": r.kind,
        "severity": r.severity,
        "device": r.device,
        "detail": json.loads(r.detail),
        "acked_at": iso(r.acked_at),
        "acked_by": r.acked_by,
        "note": r.ack_note,
    }


def alarms(
    store: Store, cabinets: Sequence[str], state: str = "open", limit: int = 200
) -> list[dict[str, Any]]:
    """The alarms of ``cabinets``, newest first (by the cabinet's ``at``)."""
    if state not in STATES:
        raise AuthError(400, "bad query", f"state is one of {', '.join(STATES)}")
    fold(store, cabinets)
    f = ta.fleet_events.c
    q = sa.select(ta.fleet_events).where(f.cabinet.in_(list(cabinets)), f.severity == "alarm")
    if state == "open":
        q = q.where(f.acked_at.is_(None))
    elif state == "acked":
        q = q.where(f.acked_at.is_not(None))
    with read_tx(store) as conn:
        got = conn.execute(q.order_by(f.at.desc(), f.record_id.desc()).limit(limit)).all()
    return [_alarm_json(r) for r in got]


def open_counts(store: Store, cabinets: Sequence[str]) -> dict[str, int]:
    """Open alarms per cabinet (after a fold)."""
    fold(store, cabinets)
    f = ta.fleet_events.c
    with read_tx(store) as conn:
        got = conn.execute(
            sa.select(f.cabinet, sa.func.count())
            .where(f.cabinet.in_(list(cabinets)), f.severity == "alarm", f.acked_at.is_(None))
            .group_by(f.cabinet)
        ).all()
    return {c: int(n) for c, n in got}


def cabinet_of(store: Store, alarm_id: str) -> str:
    """The cabinet an alarm (an event record's id) came from; 404 when there is none."""
    r = t.records.c
    with read_tx(store) as conn:
        got = conn.execute(sa.select(r.cabinet).where(r.id == alarm_id, r.type == "event")).scalar()
    if got is None:
        raise AuthError(404, "unknown alarm", alarm_id[:80])
    return got


def check_note(note: Any) -> str:
    if not isinstance(note, str) or not note.strip() or len(note) > NOTE_MAX:
        raise AuthError(400, "a note is required", f"text of 1..{NOTE_MAX} characters")
    return note.strip()


def acknowledge(
    store: Store,
    alarm_id: str,
    note: Any,
    by: str,
    at: datetime,
) -> dict[str, Any]:
    """Acknowledge an open alarm with a note; 404 unknown, 409 already acknowledged."""
    text = check_note(note)
    fold(store, [cabinet_of(store, alarm_id)])
    f = ta.fleet_events.c
    with write_tx(store) as conn:
        done = conn.execute(
            ta.fleet_events.update()
            .where(f.record_id == alarm_id, f.severity == "alarm", f.acked_at.is_(None))
            .values(acked_at=at, acked_by=by, ack_note=text)
            .returning(f.record_id)
        ).first()
        row = _one(conn, alarm_id)
        if done is None:
            if row is None or row.severity != "alarm":
                raise AuthError(404, "unknown alarm", alarm_id[:80])
            raise AuthError(409, "already acknowledged", _alarm_json(row))
    return _alarm_json(row)


def _one(conn: Connection, alarm_id: str) -> Any:
    return conn.execute(
        sa.select(ta.fleet_events).where(ta.fleet_events.c.record_id == alarm_id)
    ).first()
