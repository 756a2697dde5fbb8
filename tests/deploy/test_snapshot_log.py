"""Snapshot changes as log lines (kiosk.snapshot_log), written through kiosk.logs."""

from __future__ import annotations

import io
import signal

from kiosk import notify
from kiosk import snapshot as S
from kiosk.snapshot_log import SnapshotLog, changes

CAB = S.CabinetView("QH-0001", "cabinet", "town")


def snap(seq: int, **kw) -> S.Snapshot:
    return S.Snapshot(state=kw.pop("state", "idle"), seq=seq, cabinet=CAB, **kw)


def alarm(id: str, kind: str, device: str) -> S.AlarmView:
    return S.AlarmView(id, "2026-11-28T09:30:00.000Z", kind, "alarm", device, {"why": "pried"})


def test_a_forced_door_and_out_of_service_are_logged_once(out: io.StringIO) -> None:
    sink = SnapshotLog()
    forced = alarm("a-1", "door_forced", "D2")
    sink(snap(1))
    sink(snap(2, alarms=(forced,), out_of_service="door_fault"))
    sink(snap(3, alarms=(forced,), out_of_service="door_fault"))  # nothing new
    sink(snap(4, alarms=(forced,)))
    lines = out.getvalue().splitlines()
    assert [line.split(" ")[2] for line in lines] == [
        "event=alarm",
        "event=out_of_service",
        "event=in_service",
    ]
    assert (
        "level=warning event=alarm alarm=a-1 kind=door_forced severity=alarm device=D2"
        in (lines[0])
    )
    assert lines[1].endswith("reason=door_fault") and lines[2].endswith("was=door_fault")


def test_a_session_opens_sells_and_closes() -> None:
    sess = S.OpenSession("s-1", "D1", "sale", "card", "open", "2026-11-28T09:30:00.000Z")
    receipt = S.Receipt(
        "sale-1", "s-1", "D1", (), 8600, "card", "deferred", (), 0, False, "2026-11-28T09:31Z"
    )
    a, b = snap(1), snap(2, state="open", session=sess)
    c = snap(3, state="settled", session=sess, receipt=receipt)
    d = snap(4)
    assert [e.name for e in changes(a, b)] == ["session_opened"]
    (sold,) = changes(b, c)
    assert sold.name == "sale_recorded" and sold.fields["total_fen"] == 8600
    assert changes(c, c) == []
    (closed,) = changes(c, d)
    assert closed.name == "session_closed" and closed.fields["outcome"] == "idle"


def test_the_debug_hang_needs_kiosk_debug() -> None:
    before = signal.getsignal(signal.SIGUSR2)
    try:
        assert not notify.DebugHang(env={}).enabled
        assert signal.getsignal(signal.SIGUSR2) == before  # SIGUSR2 keeps its default action
        slept: list[float] = []
        hang = notify.DebugHang(
            env={"KIOSK_DEBUG": "1", "KIOSK_DEBUG_HANG_S": "7"}, sleep=slept.append
        )
        hang.check()
        signal.raise_signal(signal.SIGUSR2)
        hang.check()
        hang.check()
        assert slept == [7.0]  # one signal, one hang
    finally:
        signal.signal(signal.SIGUSR2, before)
