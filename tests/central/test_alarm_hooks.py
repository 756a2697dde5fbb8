"""Alarms off site (``central.alarm_hooks``): records stored as the cabinets send them
(``Store.store_batches``, both backends) reach a real local HTTP receiver, by route and
cabinet, grouped per cabinet, retried with backoff, once each across a restart.

Grouping and backoff run on a fake clock with ``tick()``; one test runs the runner's thread in
real time with small delays. The receiver can fail a path N times, answer like a robot that
refuses, or hang until released.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from central import alarm_text, hooks_cli
from central import schema as t
from central.alarm_hooks import (
    AlarmHooks,
    HookError,
    HookSettings,
    add_hook,
    backoff_s,
    hooks,
    mask_url,
    remove_hook,
    set_enabled,
)
from central.store import Store
from kiosk import clock
from kiosk.contract import UpBatch, UpRecord
from tests.sync.conftest import wait_for

CAB1, CAB2, CAB3 = "QH-0001", "QH-0002", "QH-0003"
SETTINGS = HookSettings(quiet_s=10, window_s=60, backoff_base_s=2, backoff_cap_s=60, timeout_s=5)


# -- a webhook receiver --------------------------------------------------------------------------
class Receiver:
    """A real HTTP server on a free port recording every POST: ``(path, status, body)``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, int, dict[str, Any]]] = []
        self.failures: dict[str, int] = {}  # path -> how many more times to answer 500
        self.answers: dict[str, bytes] = {}  # path -> the 200 answer's body
        self.hanging: set[str] = set()
        self.release = threading.Event()
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with me.lock:
                    left = me.failures.get(self.path, 0)
                    me.failures[self.path] = max(0, left - 1)
                    status = 500 if left else 200
                    hang = self.path in me.hanging
                    me.requests.append((self.path, 0 if hang else status, body))
                if hang:
                    me.release.wait(30)
                answer = me.answers.get(self.path, b'{"errcode":0,"errmsg":"ok"}')
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def tries(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for p, _, b in self.requests if p == path]

    def got(self, path: str) -> list[dict[str, Any]]:
        """The bodies answered 200 on ``path``."""
        with self.lock:
            return [b for p, s, b in self.requests if p == path and s == 200]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class FakeClock:
    def __init__(self) -> None:
        self.t = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, s: float) -> None:
        self.t += timedelta(seconds=s)


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runners() -> Iterator[list[AlarmHooks]]:
    made: list[AlarmHooks] = []
    yield made
    for r in made:
        r.stop()


def runner(
    runners: list[AlarmHooks], store: Store, fake: FakeClock | None = None, **settings: Any
) -> AlarmHooks:
    s = HookSettings(**{**SETTINGS.__dict__, **settings})
    r = AlarmHooks(store, s, rand=lambda: 1.0, **({"now": fake} if fake else {}))
    runners.append(r)
    return r


# -- cabinets and their records ------------------------------------------------------------------
def cabinet(store: Store, cab: str, name: str = "", location: str = "", route: str | None = None):
    with store.engine.begin() as conn:  # as provisioning leaves it (central.provision)
        conn.execute(t.cabinets.insert().values(id=cab, name=name, location=location, route=route))


_seq = iter(range(1, 1_000_000))


def event(kind: str, at: str, severity: str | None = "alarm", **detail: Any) -> UpRecord:
    """An event as the controller sends it (``kiosk.journal.raise_event``)."""
    rid = str(uuid.uuid4())
    body: dict[str, Any] = {"id": rid, "kind": kind, "device": detail.pop("device", None)}
    if severity is not None:
        body["severity"] = severity
    body["detail"] = detail
    return UpRecord(rid, next(_seq), "event", at, body)


def agent_event(kind: str, at: str, severity: str = "alarm", **detail: Any) -> UpRecord:
    """An event as the sync agent sends it (``sync.store.add_event``: detail spread)."""
    body = {**detail, "kind": kind, "severity": severity, "device": None}
    return UpRecord(str(uuid.uuid4()), next(_seq), "event", at, body)


def send(store: Store, cab: str, *records: UpRecord) -> None:
    bid = str(uuid.uuid4())
    store.store_batches(
        [(cab, UpBatch(bid, records, ()), hashlib.sha256(bid.encode()).hexdigest())]
    )


def alarm_ids(bodies: list[dict[str, Any]]) -> list[str]:
    return [a["id"] for b in bodies for a in b["alarms"]]


# -- scope: who gets what ------------------------------------------------------------------------
def test_alarms_reach_the_hooks_of_their_route_and_cabinet_and_only_alarms(
    store, receiver, fake, runners
):
    cabinet(store, CAB1, "人民医院专柜", "琼海市嘉积镇", route="north")
    cabinet(store, CAB2, route="south")
    cabinet(store, CAB3)
    add_hook(store, receiver.url("/all"))
    add_hook(store, receiver.url("/north"), route="north")
    add_hook(store, receiver.url("/two"), cabinet=CAB2)
    now = clock.iso(fake())
    forced = event("door_forced", now, device="D1", door="D1")
    send(
        store,
        CAB1,
        forced,
        event("door_opened", now, severity="info"),
        event("low_stock", now, severity="warning", sku="zr-rice-5kg"),
        UpRecord(str(uuid.uuid4()), next(_seq), "telemetry", now, {"uptime_s": 5}),
    )
    storage = agent_event("storage low", now, free_mb=12.5)
    send(store, CAB2, storage)
    scale = event("scale_fault", now, severity=None, device="S2")  # no severity: an alarm
    send(store, CAB3, scale)
    hooks_ = runner(runners, store, fake)

    hooks_.tick()
    assert receiver.tries("/all") == []  # the cabinets' bursts may not be over yet
    fake.advance(10)
    hooks_.tick()

    by_cab = {b["cabinet"]: b for b in receiver.got("/all")}
    assert sorted(by_cab) == [CAB1, CAB2, CAB3]
    assert [b["cabinet"] for b in receiver.got("/north")] == [CAB1]
    assert [b["cabinet"] for b in receiver.got("/two")] == [CAB2]
    one = by_cab[CAB1]
    assert {k: one[k] for k in ("name", "location", "route", "late")} == {
        "name": "人民医院专柜",
        "location": "琼海市嘉积镇",
        "route": "north",
        "late": False,
    }
    assert one["alarms"] == [
        {
            "id": forced.id,
            "kind": "door_forced",
            "device": "D1",
            "at": now,
            "detail": {"door": "D1"},
        }
    ]
    assert by_cab[CAB2]["alarms"][0]["detail"] == {"free_mb": 12.5}
    assert alarm_ids([by_cab[CAB3]]) == [scale.id]
    fake.advance(3600)
    hooks_.tick()
    assert len(receiver.tries("/all")) == 3  # nothing again


# -- grouping ------------------------------------------------------------------------------------
def test_a_burst_from_one_cabinet_is_one_message_and_another_cabinet_its_own(
    store, receiver, fake, runners
):
    cabinet(store, CAB1)
    cabinet(store, CAB2)
    add_hook(store, receiver.url("/all"))
    hooks_ = runner(runners, store, fake)
    burst = []
    for i in range(20):  # 20 alarms over 4 seconds, the runner looking every 0.6 s
        r = event("foreign_object", clock.iso(fake()), device=f"S{i % 4}")
        burst.append(r.id)
        send(store, CAB1, r)
        fake.advance(0.2)
        if i % 3 == 0:
            hooks_.tick()
    other = [event("lock_fault", clock.iso(fake()), device="D1") for _ in range(2)]
    send(store, CAB2, *other)
    hooks_.tick()
    assert receiver.tries("/all") == []
    fake.advance(10)
    hooks_.tick()

    got = {b["cabinet"]: b for b in receiver.got("/all")}
    assert len(receiver.tries("/all")) == 2
    assert alarm_ids([got[CAB1]]) == burst  # in the cabinet's order
    assert alarm_ids([got[CAB2]]) == [r.id for r in other]


def test_a_cabinet_that_keeps_alarming_is_not_held_back_past_the_window(
    tmp_path, receiver, fake, runners
):
    from central import migrate

    migrate.upgrade(tmp_path / "c.db")
    store = Store(tmp_path / "c.db")
    cabinet(store, CAB1)
    add_hook(store, receiver.url("/all"))
    hooks_ = runner(runners, store, fake, window_s=20, max_alarms=2)
    for _ in range(6):  # one every 5 s: never quiet for 10 s
        send(store, CAB1, event("door_left_open", clock.iso(fake()), device="D1"))
        hooks_.tick()
        fake.advance(5)
    got = receiver.got("/all")
    # by 20 s after the first: its 5 alarms then, in messages of at most 2
    assert [len(b["alarms"]) for b in got] == [2, 2, 1]
    store.close()


# -- retries -------------------------------------------------------------------------------------
def test_a_receiver_failing_three_times_gets_it_on_the_fourth_try_with_growing_waits(
    store, receiver, fake, runners
):
    cabinet(store, CAB1)
    flaky = add_hook(store, receiver.url("/flaky"))
    add_hook(store, receiver.url("/ok"))
    receiver.failures["/flaky"] = 3
    send(store, CAB1, event("door_forced", clock.iso(fake()), device="D1"))
    hooks_ = runner(runners, store, fake)
    hooks_.tick()  # found: they wait for the cabinet to be quiet
    fake.advance(10)
    hooks_.tick()
    assert len(receiver.tries("/flaky")) == 1 and len(receiver.got("/ok")) == 1
    for wait in (2, 4, 8):  # backoff_base_s 2, doubling (jitter fixed at its top)
        fake.advance(wait - 0.1)
        hooks_.tick()
        assert len(receiver.tries("/flaky")) == {2: 1, 4: 2, 8: 3}[wait]  # not yet
        fake.advance(0.1)
        hooks_.tick()
    tries = receiver.tries("/flaky")
    assert len(tries) == 4 and len(receiver.got("/flaky")) == 1
    assert all(b == tries[0] for b in tries)  # the same message (id) each time
    fake.advance(3600)
    hooks_.tick()
    assert len(receiver.tries("/flaky")) == 4 and len(receiver.got("/ok")) == 1
    [h] = [h for h in hooks(store) if h.id == flaky.id]
    assert h.pending == 0 and h.last_ok_at is not None


def test_a_robot_that_refuses_the_message_is_tried_again(store, receiver, fake, runners):
    cabinet(store, CAB1)
    add_hook(store, receiver.url("/robot"), fmt="wecom")
    receiver.answers["/robot"] = b'{"errcode":45009,"errmsg":"api freq out of limit"}'
    send(store, CAB1, event("tamper", clock.iso(fake())))
    hooks_ = runner(runners, store, fake)
    hooks_.tick()  # found: they wait for the cabinet to be quiet
    fake.advance(10)
    hooks_.tick()
    assert "45009" in (hooks(store)[0].last_error or "")
    receiver.answers.pop("/robot")
    fake.advance(2)
    hooks_.tick()
    assert len(receiver.tries("/robot")) == 2 and hooks(store)[0].pending == 0


def test_backoff_doubles_up_to_its_cap_with_jitter():
    assert [backoff_s(n, 2, 60, lambda: 1.0) for n in (1, 2, 3, 4, 5, 6, 7)] == [
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    assert backoff_s(3, 2, 60, lambda: 0.0) == 4  # jitter: between half and all of it
    assert backoff_s(10_000, 2, 60, lambda: 0.5) == 45


def test_a_hook_that_hangs_or_is_down_never_holds_up_the_others(tmp_path, receiver, runners):
    """Real time: the runner's thread, small delays; the hanging hook's POST outlasts the
    wait for the others (its timeout is 20 s)."""
    from central import migrate

    migrate.upgrade(tmp_path / "c.db")
    store = Store(tmp_path / "c.db")
    cabinet(store, CAB1)
    cabinet(store, CAB2)
    for path in ("/hang", "/down", "/flaky", "/ok"):
        add_hook(store, receiver.url(path))
    receiver.hanging.add("/hang")
    receiver.failures.update({"/down": 10**6, "/flaky": 3})
    hooks_ = runner(
        runners,
        store,
        poll_s=0.05,
        quiet_s=0.1,
        window_s=1,
        backoff_base_s=0.05,
        backoff_cap_s=0.2,
        timeout_s=20,
    ).start()
    first = event("door_forced", clock.now_iso(), device="D1")
    send(store, CAB1, first)
    wait_for(lambda: len(receiver.got("/ok")) == 1, 10, "the working hook")
    wait_for(lambda: len(receiver.got("/flaky")) == 1, 10, "the flaky hook's 4th try")
    second = event("scale_fault", clock.now_iso(), device="S1")
    send(store, CAB2, second)
    wait_for(lambda: len(receiver.got("/ok")) == 2, 10, "the next message, past the hang")
    assert alarm_ids(receiver.got("/ok")) == [first.id, second.id]
    assert len(receiver.tries("/hang")) == 1 and receiver.got("/down") == []
    receiver.release.set()
    wait_for(lambda: len(receiver.tries("/hang")) == 2, 10, "the hung hook's next message")
    hooks_.stop()
    store.close()


# -- restart, duplicates, late records ---------------------------------------------------------
def test_a_restart_loses_no_alarm_and_sends_none_twice(db_url, receiver, fake, runners):
    store = Store(db_url)
    cabinet(store, CAB1)
    cabinet(store, CAB2)
    add_hook(store, receiver.url("/h"))
    first = runner(runners, store, fake)
    a1 = event("door_forced", clock.iso(fake()), device="D1")
    send(store, CAB1, a1)
    first.tick()
    fake.advance(10)
    first.tick()
    assert alarm_ids(receiver.got("/h")) == [a1.id]
    receiver.failures["/h"] = 1
    a2 = event("lock_fault", clock.iso(fake()), device="D2")
    send(store, CAB2, a2)
    first.tick()
    fake.advance(10)
    first.tick()  # a2's message fails once: waiting for its retry
    a3 = event("tamper", clock.iso(fake()))
    send(store, CAB1, a3)
    first.tick()  # a3 found, its group not yet due
    assert alarm_ids(receiver.tries("/h")) == [a1.id, a2.id]  # a2 not delivered yet
    first.stop()
    store.close()

    a4 = event("scale_fault", clock.iso(fake()), device="S1")
    later = Store(db_url)
    send(later, CAB1, a4)  # while no runner runs
    send(later, CAB1, a1)  # the cabinet sends a1 again (its ack was lost): stored once
    a5 = event("storage_low", clock.iso(fake()))
    send(later, CAB2, a5)
    with later.engine.begin() as conn:  # a5 as a slow transaction leaves it: an older stamp
        r = t.records.c
        stamp = conn.execute(sa.select(r.received_at).where(r.id == a5.id)).scalar_one()
        older = stamp - timedelta(minutes=5)
        conn.execute(t.records.update().where(r.id == a5.id).values(received_at=older))
    second = runner(runners, later, fake)
    fake.advance(60)
    second.tick()
    fake.advance(10)
    second.tick()

    sent = alarm_ids(receiver.got("/h"))
    assert sorted(sent) == sorted(r.id for r in (a1, a2, a3, a4, a5))  # each once
    fake.advance(3600)
    second.tick()
    assert len(alarm_ids(receiver.got("/h"))) == 5
    later.close()


def test_a_day_old_alarm_is_sent_in_a_message_of_its_own_marked_late(
    store, receiver, fake, runners
):
    cabinet(store, CAB1, "人民医院专柜")
    add_hook(store, receiver.url("/json"))
    add_hook(store, receiver.url("/wecom"), fmt="wecom")
    old = event("door_forced", clock.iso(fake() - timedelta(days=1)), device="D1")
    new = event("door_left_open", clock.iso(fake()), device="D1")
    send(store, CAB1, old, new)  # the cabinet back after a day offline
    hooks_ = runner(runners, store, fake)
    hooks_.tick()
    fake.advance(10)
    hooks_.tick()

    late = {b["late"]: alarm_ids([b]) for b in receiver.got("/json")}
    assert late == {True: [old.id], False: [new.id]}
    texts = [b["markdown"]["content"] for b in receiver.got("/wecom")]
    [late_text] = [x for x in texts if "迟到" in x]
    raised = clock.parse(old.at).astimezone(alarm_text.ZoneInfo("Asia/Shanghai"))
    assert raised.strftime("%Y-%m-%d %H:%M") in late_text and "Late" in late_text
    assert "柜门被强行打开" in late_text
    [fresh_text] = [x for x in texts if "迟到" not in x]
    assert "柜门未关" in fresh_text


# -- message shapes ------------------------------------------------------------------------------
def test_the_wecom_and_dingtalk_robots_get_markdown_chinese_first(store, receiver, fake, runners):
    cabinet(store, CAB1, "人民医院专柜", "琼海市嘉积镇", route="north")
    add_hook(store, receiver.url("/wecom"), fmt="wecom")
    add_hook(store, receiver.url("/ding"), fmt="dingtalk")
    send(store, CAB1, event("door_forced", clock.iso(fake()), device="D1", door="D1"))
    hooks_ = runner(runners, store, fake)
    hooks_.tick()  # found: they wait for the cabinet to be quiet
    fake.advance(10)
    hooks_.tick()

    [wecom] = receiver.got("/wecom")
    assert wecom["msgtype"] == "markdown" and set(wecom["markdown"]) == {"content"}
    content = wecom["markdown"]["content"]
    assert content.startswith("**告警")
    for words in ("人民医院专柜", CAB1, "琼海市嘉积镇", "north", "D1"):
        assert words in content
    assert content.index("柜门被强行打开") < content.index("door forced")
    [ding] = receiver.got("/ding")
    assert ding["msgtype"] == "markdown" and set(ding["markdown"]) == {"title", "text"}
    assert (
        ding["markdown"]["title"].startswith("告警") and "人民医院专柜" in ding["markdown"]["title"]
    )
    assert ding["markdown"]["text"] == content


def test_a_long_burst_fits_the_robots_limit_and_says_how_many_more():
    at = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    alarms = tuple(
        alarm_text.Alarm(str(i), "misplaced_item", f"S{i}", clock.iso(at), at, {"sku": "x" * 200})
        for i in range(50)
    )
    m = alarm_text.Message("m1", alarm_text.Cabinet(CAB1, "人民医院专柜"), False, alarms)
    content = alarm_text.render(m, "wecom")["markdown"]["content"]
    assert len(content.encode()) <= 4096
    shown = content.count("\n- ") - 1
    assert f"另有 {50 - shown} 条 / and {50 - shown} more" in content
    assert "10:00:00" in content  # Asia/Shanghai


# -- managing hooks ------------------------------------------------------------------------------
def test_hooks_refuse_bad_input_and_hide_robot_keys(tmp_path):
    from central import migrate

    migrate.upgrade(tmp_path / "c.db")
    store = Store(tmp_path / "c.db")
    cabinet(store, CAB1)
    for url, kw in (
        ("ftp://example.com/x", {}),
        ("not a url", {}),
        ("http://example.com/x", {"route": "a", "cabinet": CAB1}),
        ("http://example.com/x", {"cabinet": "QH-9999"}),
        ("http://example.com/x", {"fmt": "xml"}),
        ("http://example.com/x", {"route": " "}),
    ):
        with pytest.raises(HookError):
            add_hook(store, url, **kw)
    assert hooks(store) == []
    key = "693axxxx-7aoc-4bc4-97a0-0ec2sifa5aaa"
    h = add_hook(store, f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}", fmt="wecom")
    assert key not in h.describe() and "key=693a…" in h.describe()
    assert mask_url("https://u:secret@example.com/x?access_token=abcdef") == (
        "https://u:…@example.com/x?access_token=abcd…"
    )
    assert set_enabled(store, h.id, False) and not hooks(store)[0].enabled
    assert remove_hook(store, h.id) == 0 and remove_hook(store, h.id) is None
    store.close()


def test_a_disabled_hook_is_sent_nothing(store, receiver, fake, runners):
    cabinet(store, CAB1)
    off = add_hook(store, receiver.url("/off"))
    add_hook(store, receiver.url("/on"))
    set_enabled(store, off.id, False)
    send(store, CAB1, event("door_forced", clock.iso(fake())))
    hooks_ = runner(runners, store, fake)
    hooks_.tick()  # found: they wait for the cabinet to be quiet
    fake.advance(10)
    hooks_.tick()
    assert len(receiver.got("/on")) == 1 and receiver.tries("/off") == []


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from central.cli import UsageError

    p = argparse.ArgumentParser(prog="kiosk central")
    hooks_cli.add_cli(p.add_subparsers(dest="action"))
    try:
        args = p.parse_args(argv)
        code = int(args.handler(args))
    except UsageError as e:
        print(f"kiosk central: {e}", file=sys.stderr)
        code = 2
    except SystemExit as e:  # argparse
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_hook_commands(tmp_path, receiver, capsys):
    from central import migrate

    db = str(tmp_path / "c.db")
    migrate.upgrade(db)
    store = Store(db)
    cabinet(store, CAB1, route="north")
    store.close()
    ok = receiver.url("/ok")
    assert _cli(["hook", "add", "--db", db, "--url", ok, "--route", "north"], capsys)[:2] == (
        0,
        f"hook 1 added: json, route north -> {ok}\n",
    )
    code, out, _ = _cli(["hook", "add", "--db", db, "--url", ok, "--route", "south"], capsys)
    assert code == 0 and "no cabinet is on route 'south'" in out
    wecom = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=secretkey123"
    assert _cli(["hook", "add", "--db", db, "--url", wecom, "--format", "wecom"], capsys)[0] == 0
    for bad in (
        ["--url", ok, "--route", "a", "--cabinet", CAB1],
        ["--url", "ftp://x/y"],
        ["--url", ok, "--cabinet", "QH-9999"],
        ["--url", ok, "--format", "xml"],
    ):
        code, _, err = _cli(["hook", "add", "--db", db, *bad], capsys)
        assert code == 2 and err.count("\n") >= 1, bad
    code, _, err = _cli(["hook", "add", "--db", db, "--url", "ftp://x/y"], capsys)
    assert err == "kiosk central: 'ftp://x/y' is not an http:// or https:// URL\n"

    code, out, _ = _cli(["hook", "list", "--db", db], capsys)
    assert code == 0 and len(out.splitlines()) == 3
    assert "secretkey123" not in out and "key=secr…" in out

    assert _cli(["hook", "test", "--db", db, "1"], capsys)[:2] == (
        0,
        "hook 1: test message delivered\n",
    )
    [msg] = receiver.got("/ok")
    assert msg["test"] is True and msg["alarms"][0]["kind"] == "test"
    receiver.failures["/ok"] = 1
    code, _, err = _cli(["hook", "test", "--db", db, "1"], capsys)
    assert code == 1 and "not delivered: HTTP 500" in err
    code, out, _ = _cli(["hook", "list", "--db", db, "--json"], capsys)
    listed = json.loads(out)
    assert listed[0]["last_error"] == "HTTP 500" and "secretkey123" not in out

    assert _cli(["hook", "disable", "--db", db, "2"], capsys)[:2] == (0, "hook 2 disabled\n")
    assert _cli(["hook", "remove", "--db", db, "2"], capsys)[:2] == (0, "hook 2 removed\n")
    assert _cli(["hook", "remove", "--db", db, "2"], capsys)[:3] == (
        2,
        "",
        "kiosk central: no hook 2\n",
    )
    assert _cli(["hook", "test", "--db", db, "9"], capsys)[0] == 2
    assert _cli(["hook", "list", "--db", str(tmp_path / "none.db")], capsys)[0] == 2
    assert [
        h["id"] for h in json.loads(_cli(["hook", "list", "--db", db, "--json"], capsys)[1])
    ] == [
        1,
        3,
    ]


# -- the whole path ------------------------------------------------------------------------------
def test_a_cabinets_alarm_reaches_the_hook_through_the_running_centre(
    tmp_path, receiver, cabinet_db, sync_proc
):
    """A cabinet's controller raises an alarm; ``kiosk sync`` uploads it over HTTP to a
    running ``CentralService``; its alarm hooks POST it."""
    from central.service import CentralService
    from kiosk import db as kdb
    from kiosk import journal
    from tests.sync.conftest import CABINET, KEY

    fast = HookSettings(poll_s=0.05, quiet_s=0.2, window_s=2)
    with CentralService(tmp_path / "central.db", {CABINET: KEY}, alarm_hooks=fast) as centre:
        add_hook(centre.store, receiver.url("/wecom"), cabinet=CABINET, fmt="wecom")
        db = kdb.connect(cabinet_db)
        with kdb.transaction(db):
            journal.raise_event(db, "door_forced", clock.now_iso(), device="D1", detail={})
            journal.raise_event(db, "door_opened", clock.now_iso(), severity="info", alarm=False)
        db.conn.close()
        sync_proc(http=centre.http_url)
        wait_for(lambda: receiver.got("/wecom"), 20, "the alarm at the hook")
    [msg] = receiver.got("/wecom")
    assert "柜门被强行打开" in msg["markdown"]["content"] and CABINET in msg["markdown"]["content"]
