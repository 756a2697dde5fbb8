"""What the controller's snapshots mean as log lines: one ``key=value`` event per change.

The controller publishes a snapshot after every change; comparing each one with the one before
gives the events an operator looks for in the journal (session opened and closed, sale
recorded, alarm raised, out of service), so the controller itself needs no log format.
``changes`` does no I/O; ``SnapshotLog`` is the subscriber that writes them.

Nothing here sees a card number or PIN: snapshots carry session and sale ids, not accounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kiosk import logs
from kiosk.snapshot import Snapshot


@dataclass(frozen=True)
class Event:
    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    warning: bool = False


def changes(prev: Snapshot | None, snap: Snapshot) -> list[Event]:
    """The events between two consecutive snapshots (``prev`` None: the first one)."""
    out: list[Event] = []
    was = prev.session if prev is not None else None
    now = snap.session
    if was is not None and (now is None or now.id != was.id):
        out.append(
            Event(
                "session_closed",
                {"session": was.id, "door": was.door, "kind": was.kind, "outcome": snap.state},
            )
        )
    if now is not None and (was is None or now.id != was.id):
        out.append(
            Event(
                "session_opened",
                {"session": now.id, "door": now.door, "kind": now.kind, "method": now.method},
            )
        )
    r = snap.receipt
    if r is not None and (prev is None or prev.receipt is None or prev.receipt.sale != r.sale):
        out.append(
            Event(
                "sale_recorded",
                {
                    "sale": r.sale,
                    "session": r.session,
                    "door": r.door,
                    "total_fen": r.total_fen,
                    "items": sum(i.qty for i in r.items),
                    "method": r.method,
                    "payment": r.payment_status,
                    "review": r.review,
                },
            )
        )
    seen = {a.id for a in prev.alarms} if prev is not None else set()
    for a in reversed(snap.alarms):  # oldest first
        if a.id not in seen and not a.acked:
            out.append(
                Event(
                    "alarm",
                    {"alarm": a.id, "kind": a.kind, "severity": a.severity, "device": a.device},
                    warning=a.severity == "alarm",
                )
            )
    before = prev.out_of_service if prev is not None else None
    if snap.out_of_service != before:
        if snap.out_of_service is not None:
            out.append(Event("out_of_service", {"reason": snap.out_of_service}, warning=True))
        elif prev is not None:
            out.append(Event("in_service", {"was": before}))
    op_was = prev.operator if prev is not None else None
    op = snap.operator
    if (op.id if op else None) != (op_was.id if op_was else None):
        if op_was is not None:
            out.append(Event("operator_logout", {"operator": op_was.id}))
        if op is not None:
            out.append(Event("operator_login", {"operator": op.id, "name": op.name}))
    return out


class SnapshotLog:
    """``controller.subscribe(SnapshotLog())``: runs on the controller's thread, so cheap."""

    def __init__(self) -> None:
        self._prev: Snapshot | None = None

    def __call__(self, snap: Snapshot) -> None:
        for ev in changes(self._prev, snap):
            (logs.warning if ev.warning else logs.log)(ev.name, **ev.fields)
        self._prev = snap
