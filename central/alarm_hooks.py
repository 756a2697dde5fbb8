"""Alarms off site: new alarms go to webhooks (per route, per cabinet or for all), grouped per
cabinet, retried with backoff.

Rules:

- **What is an alarm**: an ``event`` record whose body's ``severity`` is ``alarm`` or missing
  (a cabinet's default, ``kiosk.journal.raise_event``; the same as ``central.alarms``). Info
  and warning events never go out.
- **Finding them, once** (``scan``): records carry nothing that only grows (a late cabinet
  sends old ``seq`` and ``at``, and ``received_at`` is stamped before a transaction commits,
  by whichever process stored it). So the scan reads event records received since its cursor
  (the runner's clock when the previous scan began) *minus a margin* (``lag_s``, 15 min: a
  slow transaction, another ingest machine's clock), skips those already in ``alarm_outbox``
  (keyed by record id) and adds the new ones. A record stored twice is one record; one
  committed late is still found; a restart resumes from the cursor row: nothing lost, nothing
  repeated. The very first scan of a database starts ``lag_s`` back, not at the beginning of
  time.
- **Late alarms**: an alarm found more than ``late_after_s`` (10 min) after the cabinet raised
  it (a cabinet offline for a day sends yesterday's) is still sent, because it may still be
  true and nobody has seen it, but in a message of its own marked late, saying when it was
  raised (``late`` in JSON, 迟到 in the robots' text), so it is not taken for a new break-in.
- **Grouping**: a cabinet's alarms wait until it has been quiet for ``quiet_s`` (10 s), or
  until the first of them waited ``window_s`` (60 s); then they become one message (up to
  ``max_alarms``: a bigger burst is a few). Late and fresh alarms are grouped apart. Each
  message gets one delivery per enabled hook whose scope matches the cabinet then (``all``;
  ``route`` = the cabinet's route; ``cabinet`` = its id). With no hook, nothing is sent.
- **Delivery**: a JSON POST (``central.alarm_text`` makes the body); 2xx is delivered (for the
  robots, also ``errcode`` 0 in the answer). A failure is tried again after
  ``backoff_base_s·2^(n-1)`` capped at ``backoff_cap_s``, times 0.5..1 (jitter: hooks that
  failed together do not all come back at once), until ``give_up_s`` (a day) after the
  message was made; then the delivery is ``failed`` and logged. A failing hook's other
  waiting messages wait for the same retry (it is not tried once a pass meanwhile; a message
  made later tries it once: is it back?). Each hook is delivered on its own worker thread,
  oldest message first, so a hook that hangs or fails holds up nobody else's messages. A
  delivery is claimed in the database before it is sent (its next try moved a lease ahead), so
  two runners on one database do not send it twice. The service runs one runner; ``kiosk
  central ingest`` workers run none.
- **At least once**: a process killed between the POST and the write that records it sends
  that message again after the lease; the message ``id`` is the same, for the receiver to
  drop. A normal stop waits for the POSTs in flight.
- Times come from an injected clock (``now``) and jitter from ``rand``: tests drive grouping
  and backoff with a fake clock and ``tick()``; the service runs ``start()``/``stop()``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import requests
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from central import alarm_text as text
from central import schema as t
from central import schema_alarm_hooks as th
from central.ingest_rows import utc
from central.store import Store
from kiosk import clock, ids

log = logging.getLogger("central.alarm_hooks")

CURSOR = "records"  # the cursor row's name
SCAN_LIMIT = 5000  # alarm records read per scan (a bigger backlog takes several)
CURSOR_WRITE_S = 60  # an idle scan moves the cursor at most this often (a write each time)


class HookError(ValueError):
    """A hook that cannot be added or used as given (the message says why)."""


class _Taken(Exception):
    """Another runner grouped some of these alarms first (the transaction is rolled back)."""


@dataclass(frozen=True)
class HookSettings:
    poll_s: float = 1.0  # how often the runner looks for new alarms and due deliveries
    quiet_s: float = 10.0  # a cabinet's alarms go out once it has been quiet this long ...
    window_s: float = 60.0  # ... or this long after the first of them
    max_alarms: int = 50  # alarms in one message
    late_after_s: float = 600.0  # found this long after it was raised: late
    lag_s: float = 900.0  # how far before its cursor a scan looks again
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 600.0
    give_up_s: float = 86_400.0  # after this long a message is not sent to a failing hook
    timeout_s: float = 5.0  # to connect, and again to read the answer
    workers: int = 4  # hooks delivered at once
    keep_days: float = 90.0  # messages (and the alarms in them) kept this long
    timezone: str = "Asia/Shanghai"  # for the times in the robots' text


@dataclass(frozen=True)
class Hook:
    id: int
    url: str
    scope: str
    target: str | None
    format: str
    enabled: bool
    created_at: datetime
    last_ok_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    pending: int  # messages not yet delivered to it

    def describe(self) -> str:
        where = "all cabinets" if self.scope == "all" else f"{self.scope} {self.target}"
        return f"{self.format}, {where} -> {mask_url(self.url)}"


@dataclass(frozen=True)
class _Due:
    message: str
    hook: int
    url: str
    format: str
    attempts: int
    created_at: datetime


# -- the database -----------------------------------------------------------------------------
@contextmanager
def _write(store: Store) -> Iterator[Connection]:
    # as Store._write: on SQLite, BEGIN IMMEDIATE (the writer takes the lock up front)
    with store.engine.connect() as conn:
        conn.execution_options(kiosk_write=True)
        with conn.begin():
            yield conn


@contextmanager
def _read(store: Store) -> Iterator[Connection]:
    with store.engine.connect() as conn, conn.begin():
        yield conn


def _insert(store: Store, table: sa.Table) -> Any:
    return (postgresql.insert if store.postgres else sqlite.insert)(table)


def is_alarm(body: Any) -> bool:
    """An event body that is an alarm: severity ``alarm``, or none (the cabinet's default)."""
    return isinstance(body, dict) and body.get("severity", "alarm") == "alarm"


def detail_of(body: dict[str, Any]) -> dict[str, Any]:
    """The controller nests it (``{"detail": {...}}``), the sync agent spreads it in the body."""
    d = body.get("detail")
    if isinstance(d, dict):
        return d
    return {k: v for k, v in body.items() if k not in ("id", "kind", "severity", "device")}


def backoff_s(failures: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Seconds to wait after the ``failures``-th failure in a row."""
    return min(cap, base * 2 ** min(failures - 1, 30)) * (0.5 + 0.5 * rand())


# -- hooks: add, list, remove ----------------------------------------------------------------
def check_url(url: str) -> str:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname or any(c.isspace() for c in url):
        raise HookError(f"{mask_url(url)!r} is not an http:// or https:// URL")
    if len(url) > 2000:
        raise HookError("the URL is longer than 2000 characters")
    return url


def mask_url(url: str) -> str:
    """The URL with its secrets cut: the robots' ``key=``/``access_token=`` and any password."""
    try:
        u = urlsplit(url)
        netloc = u.netloc
        if u.password is not None:
            netloc = netloc.replace(f":{u.password}@", ":…@")
        query = "&".join(
            f"{quote(k)}={quote(v[:4]) + '…' if len(v) > 4 else quote(v)}"
            for k, v in parse_qsl(u.query, True)
        )
        return urlunsplit((u.scheme, netloc, u.path, query, ""))
    except ValueError:
        return "<not a URL>"


def add_hook(
    store: Store,
    url: str,
    *,
    route: str | None = None,
    cabinet: str | None = None,
    fmt: str = "json",
    now: datetime | None = None,
) -> Hook:
    """A new enabled hook; ``HookError`` for a bad URL, format, both scopes or a cabinet the
    centre does not know."""
    check_url(url)
    if fmt not in text.FORMATS:
        raise HookError(f"format is one of {', '.join(text.FORMATS)}")
    if route is not None and cabinet is not None:
        raise HookError("give --route or --cabinet, not both")
    scope, target = ("route", route) if route is not None else ("cabinet", cabinet)
    if target is None:
        scope = "all"
    elif not target.strip():
        raise HookError(f"the {scope} is empty")
    with _write(store) as conn:
        if scope == "cabinet":
            known = conn.execute(sa.select(t.cabinets.c.id).where(t.cabinets.c.id == target))
            if known.first() is None:
                raise HookError(f"unknown cabinet {target!r}")
        hid = conn.execute(
            th.alarm_hooks.insert()
            .values(
                url=url,
                scope=scope,
                target=target,
                format=fmt,
                enabled=True,
                created_at=now or clock.now(),
            )
            .returning(th.alarm_hooks.c.id)
        ).scalar_one()
    got = hook(store, hid)
    assert got is not None
    return got


def _hooks(store: Store, where: Any = None) -> list[Hook]:
    h, d = th.alarm_hooks.c, th.alarm_deliveries.c
    pending = (
        sa.select(sa.func.count())
        .where(d.hook == h.id, d.state == "pending")
        .scalar_subquery()
        .label("pending")
    )
    q = sa.select(th.alarm_hooks, pending).order_by(h.id)
    if where is not None:
        q = q.where(where)
    with _read(store) as conn:
        got = conn.execute(q).all()

    def opt(v: datetime | None) -> datetime | None:
        return utc(v) if v is not None else None

    return [
        Hook(
            r.id,
            r.url,
            r.scope,
            r.target,
            r.format,
            bool(r.enabled),
            utc(r.created_at),
            opt(r.last_ok_at),
            r.last_error,
            opt(r.last_error_at),
            int(r.pending),
        )
        for r in got
    ]


def hooks(store: Store) -> list[Hook]:
    return _hooks(store)


def hook(store: Store, hook_id: int) -> Hook | None:
    got = _hooks(store, th.alarm_hooks.c.id == hook_id)
    return got[0] if got else None


def remove_hook(store: Store, hook_id: int) -> int | None:
    """Remove a hook and its undelivered messages: how many those were; None: no such hook."""
    h, d = th.alarm_hooks.c, th.alarm_deliveries.c
    with _write(store) as conn:
        if conn.execute(sa.select(h.id).where(h.id == hook_id)).first() is None:
            return None
        dropped = conn.execute(
            sa.select(sa.func.count()).where(d.hook == hook_id, d.state == "pending")
        ).scalar_one()
        conn.execute(th.alarm_deliveries.delete().where(d.hook == hook_id))
        conn.execute(th.alarm_hooks.delete().where(h.id == hook_id))
    return int(dropped)


def cabinets_on_route(store: Store, route: str | None) -> int:
    with _read(store) as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(t.cabinets.c.route == route)
        ).scalar_one()


def set_enabled(store: Store, hook_id: int, enabled: bool) -> bool:
    """A disabled hook is sent nothing: alarms meanwhile are not kept for it, messages made
    before wait until it is enabled again. False: no such hook."""
    h = th.alarm_hooks.c
    with _write(store) as conn:
        done = conn.execute(th.alarm_hooks.update().where(h.id == hook_id).values(enabled=enabled))
    return done.rowcount == 1


# -- sending -------------------------------------------------------------------------------------
def post(url: str, body: dict[str, Any], fmt: str, timeout_s: float) -> str | None:
    """POST one message: None when delivered, else why not (short, without the URL: it may
    carry the robot's key)."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "kiosk-central"}
    if "id" in body:
        headers["X-Kiosk-Message"] = str(body["id"])
    try:
        r = requests.post(
            url,
            data=text.dumps(body),
            headers=headers,
            timeout=(timeout_s, timeout_s),
            allow_redirects=False,  # a redirect would resend the alarm to somewhere unchecked
        )
    except requests.Timeout:
        return f"no answer in {timeout_s:g} s"
    except requests.ConnectionError:
        return "cannot connect"
    except requests.RequestException as e:
        return type(e).__name__
    if not 200 <= r.status_code < 300:
        return f"HTTP {r.status_code}"
    if fmt in ("wecom", "dingtalk"):
        # The robots answer 200 with {"errcode": N, "errmsg"} when they refuse a message
        # (a wrong key, a keyword missing, too many messages a minute).
        try:
            answer = r.json()
        except ValueError:
            return None
        code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
        if code != 0:
            return f"errcode {code}: {str(answer.get('errmsg', ''))[:100]}"
    return None


def send_test(store: Store, hook_id: int, settings: HookSettings = HookSettings()) -> str | None:
    """Send one test message to a hook now (no retry): None when delivered, else why not.
    ``HookError`` when there is no such hook. The outcome is kept as the hook's last."""
    h = hook(store, hook_id)
    if h is None:
        raise HookError(f"no hook {hook_id}")
    now = clock.now()
    cab = text.Cabinet(h.target if h.scope == "cabinet" and h.target else "TEST", "测试 Test")
    if h.scope == "route":
        cab = text.Cabinet("TEST", "测试 Test", route=h.target)
    msg = text.Message(
        ids.uuid7(),
        cab,
        late=False,
        alarms=(
            text.Alarm(
                ids.uuid7(), "test", None, clock.iso(now), now, {"note": "kiosk central hook test"}
            ),
        ),
        test=True,
    )
    why = post(h.url, text.render(msg, h.format, settings.timezone), h.format, settings.timeout_s)
    _note_outcome(store, hook_id, why, clock.now())
    return why


def _note_outcome(store: Store, hook_id: int, why: str | None, now: datetime) -> None:
    values = {"last_ok_at": now} if why is None else {"last_error": why, "last_error_at": now}
    with _write(store) as conn:
        conn.execute(th.alarm_hooks.update().where(th.alarm_hooks.c.id == hook_id).values(**values))


# -- the runner ----------------------------------------------------------------------------------
class AlarmHooks:
    """Scans for new alarms, groups them, delivers them: ``tick()`` once, or ``start()`` a
    thread that ticks every ``poll_s`` until ``stop()``."""

    def __init__(
        self,
        store: Store,
        settings: HookSettings = HookSettings(),
        *,
        now: Callable[[], datetime] = clock.now,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.settings = settings
        self._now = now
        self._rand = rand
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="alarm-hook")
        self._busy: set[int] = set()  # hooks with a worker on them now
        self._lock = threading.Lock()
        self._last_cursor_write: datetime | None = None
        self._pruned_at: datetime | None = None

    # -- running -----------------------------------------------------------------------------
    def start(self) -> AlarmHooks:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alarm-hooks", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop ticking; wait for the POSTs in flight (at most ``2 × timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.poll_s + 5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        pause = self.settings.poll_s
        while not self._stop.is_set():
            try:
                self.tick(wait=False)
                pause = self.settings.poll_s
            except Exception:  # the database away: try again, less often, until it is back
                log.exception("alarm hooks: a pass failed")
                pause = min(30.0, max(pause * 2, self.settings.poll_s))
            self._stop.wait(pause)

    def tick(self, wait: bool = True) -> None:
        """One pass: find new alarms, group those whose time has come, deliver what is due
        (``wait``: until those deliveries are done, as tests want)."""
        self.scan()
        self.group()
        self.deliver(wait)
        self._prune()

    # -- finding ------------------------------------------------------------------------------
    def scan(self) -> int:
        """Add the alarm records not yet in the outbox; how many were new."""
        s = self.settings
        began = self._now()
        r, o, cur = t.records.c, th.alarm_outbox.c, th.alarm_hook_cursor.c
        with _read(self.store) as conn:
            scanned = conn.execute(
                sa.select(cur.scanned_at).where(cur.name == CURSOR)
            ).scalar_one_or_none()
            since = (utc(scanned) if scanned is not None else began) - timedelta(seconds=s.lag_s)
            got = conn.execute(
                sa.select(r.id, r.cabinet, r.seq, r.at, r.at_utc, r.body)
                .select_from(t.records.outerjoin(th.alarm_outbox, o.record_id == r.id))
                .where(
                    r.type == "event",
                    r.received_at >= since,
                    o.record_id.is_(None),
                    # only bodies that may be alarms are read and parsed (bodies are dumped
                    # compactly, store._dumps); is_alarm decides
                    sa.or_(r.body.like('%"severity":"alarm"%'), r.body.not_like('%"severity":%')),
                )
                .order_by(r.received_at)
                .limit(SCAN_LIMIT)
            ).all()
        new = []
        for rid, cab, seq, at, at_utc, body in got:
            b = json.loads(body)
            if not is_alarm(b):
                continue
            raised = utc(at_utc) if at_utc is not None else None
            late = raised is not None and (began - raised).total_seconds() > s.late_after_s
            kind, device = b.get("kind"), b.get("device")
            new.append(
                {
                    "record_id": rid,
                    "cabinet": cab,
                    "seq": seq,
                    "at": at,
                    "at_utc": raised,
                    "kind": kind if isinstance(kind, str) else "?",
                    "device": device if isinstance(device, str) else None,
                    "detail": json.dumps(detail_of(b), ensure_ascii=False),
                    "found_at": began,
                    "late": late,
                }
            )
        # With the limit reached there may be more in this window: keep the cursor (a scan that
        # moved past rows it did not read could lose them once they fall behind ``lag_s``).
        move = len(got) < SCAN_LIMIT and (
            new
            or scanned is None
            or self._last_cursor_write is None
            or (began - self._last_cursor_write).total_seconds() >= CURSOR_WRITE_S
        )
        if not (new or move):
            return 0
        with _write(self.store) as conn:
            if new:
                conn.execute(
                    _insert(self.store, th.alarm_outbox).on_conflict_do_nothing(
                        index_elements=[o.record_id]
                    ),
                    new,
                )
            if move:
                ins = _insert(self.store, th.alarm_hook_cursor).values(
                    name=CURSOR, scanned_at=began
                )
                conn.execute(
                    ins.on_conflict_do_update(
                        index_elements=[cur.name], set_={"scanned_at": ins.excluded.scanned_at}
                    )
                )
        if move:
            self._last_cursor_write = began
        if new:
            log.info("alarm hooks: %d new alarm(s)", len(new))
        return len(new)

    # -- grouping -----------------------------------------------------------------------------
    def group(self) -> int:
        """Make messages of the alarms whose time has come; how many messages."""
        s = self.settings
        now = self._now()
        o = th.alarm_outbox.c
        with _read(self.store) as conn:
            waiting = conn.execute(
                sa.select(o.record_id, o.cabinet, o.late, o.found_at)
                .where(o.message.is_(None))
                .order_by(o.cabinet, o.late, o.seq, o.record_id)
            ).all()
        made = 0
        for (cab, late), rows_ in groupby(waiting, key=lambda x: (x.cabinet, bool(x.late))):
            rows = list(rows_)
            found = [utc(x.found_at) for x in rows]
            quiet = (now - max(found)).total_seconds() >= s.quiet_s
            long = (now - min(found)).total_seconds() >= s.window_s
            if not (quiet or long):
                continue
            for i in range(0, len(rows), s.max_alarms):
                chunk = [x.record_id for x in rows[i : i + s.max_alarms]]
                made += self._make_message(cab, late, chunk, now)
        return made

    def _make_message(
        self, cabinet: str, late: bool, record_ids: Sequence[str], now: datetime
    ) -> int:
        mid = ids.uuid7()
        try:
            targets = self._insert_message(mid, cabinet, late, record_ids, now)
        except _Taken:
            return 0
        log.info(
            "alarm hooks: message %s: %d alarm(s) of %s%s for %d hook(s)",
            mid,
            len(record_ids),
            cabinet,
            " (late)" if late else "",
            targets,
        )
        return 1

    def _insert_message(
        self, mid: str, cabinet: str, late: bool, record_ids: Sequence[str], now: datetime
    ) -> int:
        """The message, its alarms claimed, one delivery per matching hook: how many hooks."""
        o, h = th.alarm_outbox.c, th.alarm_hooks.c
        with _write(self.store) as conn:
            conn.execute(
                th.alarm_messages.insert().values(
                    id=mid, cabinet=cabinet, late=late, created_at=now
                )
            )
            took = conn.execute(
                th.alarm_outbox.update()
                .where(o.record_id.in_(record_ids), o.message.is_(None))
                .values(message=mid)
            ).rowcount
            if took != len(record_ids):
                raise _Taken  # rolls the message back
            route = conn.execute(
                sa.select(t.cabinets.c.route).where(t.cabinets.c.id == cabinet)
            ).scalar_one_or_none()
            scope = [h.scope == "all", sa.and_(h.scope == "cabinet", h.target == cabinet)]
            if route:
                scope.append(sa.and_(h.scope == "route", h.target == route))
            targets = (
                conn.execute(
                    sa.select(h.id).where(h.enabled == sa.true(), sa.or_(*scope)).order_by(h.id)
                )
                .scalars()
                .all()
            )
            if targets:
                conn.execute(
                    th.alarm_deliveries.insert(),
                    [
                        {
                            "message": mid,
                            "hook": hid,
                            "state": "pending",
                            "attempts": 0,
                            "next_try_at": now,
                        }
                        for hid in targets
                    ],
                )
        return len(targets)

    # -- delivering ---------------------------------------------------------------------------
    def deliver(self, wait: bool = True) -> None:
        """Hand each hook's due deliveries to a worker (one worker per hook at a time)."""
        now = self._now()
        d, h, m = th.alarm_deliveries.c, th.alarm_hooks.c, th.alarm_messages.c
        with _read(self.store) as conn:
            due = conn.execute(
                sa.select(d.message, d.hook, h.url, h.format, d.attempts, m.created_at)
                .select_from(
                    th.alarm_deliveries.join(th.alarm_hooks, h.id == d.hook).join(
                        th.alarm_messages, m.id == d.message
                    )
                )
                .where(d.state == "pending", d.next_try_at <= now, h.enabled == sa.true())
                # oldest first over all hooks, so one hook's backlog cannot crowd out the rest
                .order_by(m.created_at, m.id, d.hook)
                .limit(1000)
            ).all()
        work: dict[int, list[_Due]] = {}
        for x in due:
            work.setdefault(x.hook, []).append(
                _Due(x.message, x.hook, x.url, x.format, x.attempts, utc(x.created_at))
            )
        futures: list[Future[None]] = []
        for hid, items in work.items():
            with self._lock:
                if hid in self._busy:
                    continue
                self._busy.add(hid)
            try:
                futures.append(self._pool.submit(self._deliver_hook, hid, items))
            except RuntimeError:  # the pool is shut down: stopping
                with self._lock:
                    self._busy.discard(hid)
                break
        if wait:
            for f in futures:
                f.result()

    def _deliver_hook(self, hook_id: int, work: list[_Due]) -> None:
        try:
            for due in work:
                if self._stop.is_set() or not self._deliver_one(due):
                    break  # a failure: this hook's other messages wait for the next pass
        except Exception:
            log.exception("alarm hooks: hook %d: delivery failed", hook_id)
        finally:
            with self._lock:
                self._busy.discard(hook_id)

    def _deliver_one(self, due: _Due) -> bool:
        s = self.settings
        d = th.alarm_deliveries.c
        now = self._now()
        # Claimed: its next try moved past the longest a POST can take, so another runner (or
        # the next pass) does not send it meanwhile; a crash here means one resend later.
        lease = timedelta(seconds=2 * s.timeout_s + 30)
        with _write(self.store) as conn:
            claimed = conn.execute(
                th.alarm_deliveries.update()
                .where(
                    d.message == due.message,
                    d.hook == due.hook,
                    d.state == "pending",
                    d.next_try_at <= now,
                )
                .values(next_try_at=now + lease)
            ).rowcount
            if claimed != 1:
                return True
            message = self._message(conn, due.message)
        why = post(due.url, text.render(message, due.format, s.timezone), due.format, s.timeout_s)
        if why is None:
            self._sent(due)
        else:
            self._failed(due, why)
        return why is None

    def _sent(self, due: _Due) -> None:
        now = self._now()
        d, h = th.alarm_deliveries.c, th.alarm_hooks.c
        with _write(self.store) as conn:
            conn.execute(
                th.alarm_deliveries.update()
                .where(d.message == due.message, d.hook == due.hook)
                .values(state="sent", attempts=due.attempts + 1, sent_at=now, last_error=None)
            )
            conn.execute(th.alarm_hooks.update().where(h.id == due.hook).values(last_ok_at=now))
        log.info("alarm hooks: message %s delivered to hook %d", due.message, due.hook)

    def _failed(self, due: _Due, why: str) -> None:
        s = self.settings
        now = self._now()
        tries = due.attempts + 1
        give_up = (now - due.created_at).total_seconds() >= s.give_up_s
        wait = backoff_s(tries, s.backoff_base_s, s.backoff_cap_s, self._rand)
        retry_at = now + timedelta(seconds=wait)
        d, h = th.alarm_deliveries.c, th.alarm_hooks.c
        with _write(self.store) as conn:
            conn.execute(
                th.alarm_deliveries.update()
                .where(d.message == due.message, d.hook == due.hook)
                .values(
                    state="failed" if give_up else "pending",
                    attempts=tries,
                    last_error=why,
                    next_try_at=retry_at,
                )
            )
            conn.execute(
                th.alarm_hooks.update()
                .where(h.id == due.hook)
                .values(last_error=why, last_error_at=now)
            )
            # The hook as a whole waits: its other messages are not tried one a pass meanwhile
            # (a message made later still tries it once: is it back?).
            conn.execute(
                th.alarm_deliveries.update()
                .where(d.hook == due.hook, d.state == "pending", d.next_try_at < retry_at)
                .values(next_try_at=retry_at)
            )
        if give_up:
            log.error(
                "alarm hooks: message %s NOT delivered to hook %d (%s): gave up after %d tries",
                due.message,
                due.hook,
                why,
                tries,
            )
        else:
            log.warning(
                "alarm hooks: hook %d: %s (try %d; again in %.0f s)", due.hook, why, tries, wait
            )

    def _message(self, conn: Connection, message_id: str) -> text.Message:
        m, o, c = th.alarm_messages.c, th.alarm_outbox.c, t.cabinets.c
        head = conn.execute(
            sa.select(m.id, m.cabinet, m.late, c.name, c.location, c.route)
            .select_from(th.alarm_messages.outerjoin(t.cabinets, c.id == m.cabinet))
            .where(m.id == message_id)
        ).one()
        alarms = conn.execute(
            sa.select(o.record_id, o.kind, o.device, o.at, o.at_utc, o.detail)
            .where(o.message == message_id)
            .order_by(o.seq, o.record_id)
        ).all()
        return text.Message(
            head.id,
            text.Cabinet(head.cabinet, head.name or "", head.location or "", head.route),
            bool(head.late),
            tuple(
                text.Alarm(
                    a.record_id,
                    a.kind,
                    a.device,
                    a.at,
                    utc(a.at_utc) if a.at_utc is not None else None,
                    json.loads(a.detail),
                )
                for a in alarms
            ),
        )

    # -- housekeeping -------------------------------------------------------------------------
    def _prune(self) -> None:
        """Hourly: forget messages older than ``keep_days`` (long after any retry, and long
        after their records left the scan's window)."""
        now = self._now()
        if self._pruned_at is not None and (now - self._pruned_at).total_seconds() < 3600:
            return
        self._pruned_at = now
        m = th.alarm_messages.c
        old = sa.select(m.id).where(m.created_at < now - timedelta(days=self.settings.keep_days))
        with _write(self.store) as conn:
            conn.execute(th.alarm_deliveries.delete().where(th.alarm_deliveries.c.message.in_(old)))
            conn.execute(th.alarm_outbox.delete().where(th.alarm_outbox.c.message.in_(old)))
            conn.execute(th.alarm_messages.delete().where(m.id.in_(old)))
