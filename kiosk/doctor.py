"""``kiosk doctor``: is this cabinet fit to sell? One ``Check`` per thing a technician can fix.

Each check is a function returning frozen ``Check`` rows; the hardware checks take factories
typed by ``kiosk.hardware``'s interfaces, so this module never imports ``drivers/`` (the CLI
passes the real ones in). Every probe runs under a deadline: a device that hangs is reported,
not waited for.

The centre's broker gets three lines: ``central mqtt`` (a TCP connect), ``central tls`` (is the
URL ``mqtts://``, and does ``ca_file`` verify the broker's certificate) and ``central login``
(does the broker accept ``mqtt_username`` with the password in ``mqtt_password_file``). The
login is a real MQTT connect as the cabinet: the broker takes the login as the client id, so a
running ``kiosk sync`` loses its connection for a moment and reconnects (its backoff).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from kiosk import config as config_mod
from kiosk.config import Central, Config, Door
from kiosk.hardware import CodeSource, DeviceHealth, LockBoard, Reading, ScaleBus

T = TypeVar("T")

EARLIEST_SANE_YEAR = 2025  # a clock before this was never set (RTC battery flat, no NTP)
LATEST_SANE_YEAR = 2100


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def format_checks(checks: Sequence[Check]) -> list[str]:
    """``ok   <name>  <detail>`` / ``FAIL <name>  <why>``, names in one column."""
    width = max((len(c.name) for c in checks), default=0)
    return [f"{'ok' if c.ok else 'FAIL':<4} {c.name:<{width}}  {c.detail}".rstrip() for c in checks]


class ProbeTimeout(Exception):
    pass


def within(seconds: float, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a daemon thread; raise ``ProbeTimeout`` if it takes longer than ``seconds``.

    A driver stuck in a blocking read must not hang the doctor; the thread is abandoned
    (the process exits soon after).
    """
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=run, daemon=True, name="doctor-probe")
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise ProbeTimeout(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _why(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())


def missing_device(url: str) -> str | None:
    """A serial URL that is a plain path and does not exist: say so before any driver waits."""
    if "://" in url:
        return None
    return None if Path(url).exists() else f"{url}: no such device"


# -- configuration ------------------------------------------------------------------------
def check_config(path: str | Path) -> tuple[Check, Config | None]:
    try:
        cfg = config_mod.load(path)
    except config_mod.ConfigError as e:
        more = f" (and {len(e.problems) - 1} more)" if len(e.problems) > 1 else ""
        return Check("config", False, e.problems[0] + more), None
    detail = (
        f"{Path(path).name}: cabinet {cfg.cabinet.id}, {len(cfg.doors)} doors, "
        f"{len(cfg.shelves)} shelves"
    )
    return Check("config", True, detail), cfg


# -- devices ------------------------------------------------------------------------------
LockOpener = Callable[[str, str, int], LockBoard]  # (protocol, url, baud) -> an open board line


def check_doors(cfg: Config, open_line: LockOpener, timeout_s: float = 5.0) -> list[Check]:
    """Query every lock board the doors use; one row per door, naming its line and board."""
    lines: dict[tuple[str, str, int], list[Door]] = {}
    for door in cfg.doors:
        lines.setdefault((door.protocol, door.url, door.baud), []).append(door)
    rows: list[Check] = []
    for (protocol, url, baud), doors in lines.items():
        missing = missing_device(url)
        if missing:
            rows += [Check(f"door {d.id}", False, f"lock board line {missing}") for d in doors]
            continue
        try:
            board = within(timeout_s, lambda p=protocol, u=url, b=baud: open_line(p, u, b))
        except Exception as e:
            rows += [Check(f"door {d.id}", False, f"{url}: {_why(e)}") for d in doors]
            continue
        try:
            rows += _query_doors(board, doors, protocol, url, timeout_s)
        finally:
            _quietly(board.close)
    return rows


def _query_doors(
    board: LockBoard, doors: Sequence[Door], protocol: str, url: str, timeout_s: float
) -> list[Check]:
    """One ``open_locks`` query per board address on the line; one row per door."""
    answers: dict[int, frozenset[int] | Exception] = {}
    rows = []
    for d in doors:
        if d.board not in answers:
            try:
                answers[d.board] = within(timeout_s, lambda b=d.board: board.open_locks(b))
            except Exception as e:
                answers[d.board] = e
        got = answers[d.board]
        where = f"{protocol} board {d.board} lock {d.lock} on {url}"
        if isinstance(got, Exception):
            rows.append(Check(f"door {d.id}", False, f"{where}: {_why(got)}"))
        else:
            state = "open (not latched)" if d.lock in got else "latched"
            rows.append(Check(f"door {d.id}", True, f"{where}: {state}"))
    return rows


def check_shelves(
    cfg: Config,
    open_bus: Callable[[Callable[[DeviceHealth], None]], ScaleBus],
    window_s: float = 2.0,
) -> list[Check]:
    """Poll the scale bus until every shelf answered or ``window_s`` passed; one row per shelf."""
    url = cfg.scales.url
    missing = missing_device(url)
    if missing:
        return [Check(f"shelf {s.id}", False, f"scale bus {missing}") for s in cfg.shelves]
    answered: dict[str, Reading] = {}
    faults: dict[str, str] = {}
    bus_down: list[str] = []
    done = threading.Event()
    want = {s.id for s in cfg.shelves}

    def on_reading(r: Reading) -> None:
        if r.grams is not None:
            answered.setdefault(r.shelf, r)
            faults.pop(r.shelf, None)
            if want <= answered.keys():
                done.set()
        elif r.shelf not in answered:
            faults[r.shelf] = f"no answer ({r.fault})" if r.fault else "no answer"

    def on_health(h: DeviceHealth) -> None:
        if not h.ok and h.device in ("scales", f"scales:{url}"):
            bus_down.append(h.why or "bus down")

    try:
        bus = within(window_s + 3, lambda: open_bus(on_health))
        within(window_s + 3, lambda: bus.start(on_reading))
    except Exception as e:
        return [Check(f"shelf {s.id}", False, f"{url}: {_why(e)}") for s in cfg.shelves]
    try:
        done.wait(window_s)
    finally:
        _quietly(bus.stop)
    rows = []
    for s in cfg.shelves:
        where = f"slave {s.slave} on {url}"
        r = answered.get(s.id)
        if r is not None:
            assert r.grams is not None
            rows.append(Check(f"shelf {s.id}", True, f"{where}: {r.grams:.0f} g"))
        else:
            why = faults.get(s.id) or (bus_down[0] if bus_down else f"no answer in {window_s:g} s")
            rows.append(Check(f"shelf {s.id}", False, f"{where}: {why}"))
    return rows


def check_scanner(
    cfg: Config,
    open_scanner: Callable[[Callable[[DeviceHealth], None]], CodeSource],
    timeout_s: float = 3.0,
) -> Check:
    """The scanner only talks when it reads something: its port opening is all we can ask."""
    url, baud = cfg.scanner.url, cfg.scanner.baud
    evdev = url.startswith("evdev:")  # a keyboard scanner's input device: no baud rate
    missing = missing_device(url.removeprefix("evdev:"))
    if missing:
        return Check("scanner", False, missing)
    reports: list[DeviceHealth] = []
    reported = threading.Event()

    def on_health(h: DeviceHealth) -> None:
        reports.append(h)
        reported.set()

    try:
        source = within(timeout_s, lambda: open_scanner(on_health))
        within(timeout_s, lambda: source.start(lambda code: None))
    except Exception as e:
        return Check("scanner", False, f"{url}: {_why(e)}")
    # A driver that opens its port in the background says how that went through on_health.
    reported.wait(timeout_s)
    _quietly(source.stop)
    if reports and not reports[0].ok:
        return Check("scanner", False, f"{url}: {reports[0].why or 'cannot open'}")
    return Check("scanner", True, f"{url} opens" + (" (grabbed)" if evdev else f" at {baud} baud"))


def _quietly(fn: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # closing a device that already failed: nothing to add
        fn()


# -- database, disk, clock ----------------------------------------------------------------
def check_database(path: Path, expected_version: int | None = None) -> Check:
    """Opens read-only, schema version (migrations applied), ``PRAGMA quick_check``."""
    if not path.exists():
        return Check("database", False, f"{path}: does not exist (run `kiosk db init`)")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as e:
        return Check("database", False, f"{path}: cannot open: {_why(e)}")
    try:
        try:
            version = con.execute(
                "SELECT count(*) FROM _sqlite_migrations WHERE migration_set = 'kiosk'"
            ).fetchone()[0]
        except sqlite3.OperationalError:
            version = 0
        quick = [row[0] for row in con.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as e:
        return Check("database", False, f"{path}: {_why(e)}")
    finally:
        con.close()
    if quick != ["ok"]:
        return Check("database", False, f"{path}: quick_check: {'; '.join(quick[:3])}")
    if version == 0:
        return Check("database", False, f"{path}: no schema (run `kiosk db init`)")
    if expected_version is not None and version != expected_version:
        return Check(
            "database",
            False,
            f"{path}: schema version {version}, this kiosk expects {expected_version} "
            "(run `kiosk db migrate`)",
        )
    return Check("database", True, f"{path}: schema version {version}, quick_check ok")


def check_disk(path: Path, low_mb: float) -> Check:
    where = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
    try:
        usage = shutil.disk_usage(where)
    except OSError as e:
        return Check("disk", False, f"{where}: {_why(e)}")
    free_mb = usage.free / 1_000_000
    detail = f"{free_mb:,.0f} MB free on the database's filesystem (alarm under {low_mb:g} MB)"
    return Check("disk", free_mb >= low_mb, detail)


def ntp_synchronized(run: Callable[[Sequence[str]], str | None] | None = None) -> bool | None:
    """``timedatectl``'s NTPSynchronized: True/False, or None when it cannot be asked."""
    run = run or _run_quietly
    out = run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if out is None:
        return None
    value = out.strip().lower()
    return {"yes": True, "no": False}.get(value)


def _run_quietly(argv: Sequence[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def check_clock(now: datetime | None = None, synced: bool | None = None) -> Check:
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    if not EARLIEST_SANE_YEAR <= now.year <= LATEST_SANE_YEAR:
        return Check("clock", False, f"{stamp}: the clock was never set (check NTP and the RTC)")
    if synced is False:
        return Check("clock", False, f"{stamp}: NTP not synchronised (signed requests need ±300 s)")
    state = "NTP synchronised" if synced else "NTP state unknown"
    return Check("clock", True, f"{stamp}, {state}")


# -- central ------------------------------------------------------------------------------
def check_http(base: str, timeout_s: float = 3.0) -> Check:
    """Any HTTP answer under 500 means the platform is reachable (the base URL may be 404)."""
    if not base:
        return Check("central http", True, "not configured")
    try:
        with urllib.request.urlopen(base, timeout=timeout_s) as r:
            code = r.status
    except urllib.error.HTTPError as e:
        code = e.code
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return Check("central http", False, f"{base}: {_why(reason)}")  # type: ignore[arg-type]
    if code >= 500:
        return Check("central http", False, f"{base}: HTTP {code}")
    return Check("central http", True, f"{base}: answers (HTTP {code})")


def check_mqtt(url: str, timeout_s: float = 3.0) -> Check:
    """A TCP connect to the broker (the sync agent does the MQTT and TLS handshakes)."""
    if not url:
        return Check("central mqtt", True, "not configured")
    parts = urlsplit(url)
    tls = parts.scheme in ("mqtts", "ssl", "tls")
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl", "tls") or not parts.hostname:
        return Check("central mqtt", False, f"{url}: not an mqtt:// or mqtts:// URL")
    try:
        port = parts.port or (8883 if tls else 1883)
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        return Check("central mqtt", False, f"{url}: {_why(e)}")
    return Check("central mqtt", True, f"{url}: broker accepts connections")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """What the sync agent checks the broker with (``tls_set(ca_certs=ca_file)``)."""
    if ca_file is not None and not Path(ca_file).exists():
        raise FileNotFoundError(f"ca_file {ca_file}: no such file")
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _tls_why(e: BaseException, ca_file: str | Path | None) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        by = f"ca_file {ca_file}" if ca_file else "the system's CAs"
        return f"the broker's certificate is not verified by {by}: {e.verify_message}"
    return _why(e)


def check_mqtt_tls(url: str, ca_file: str | Path | None = None, timeout_s: float = 3.0) -> Check:
    """Is the link encrypted, and does ``ca_file`` verify the broker (a TLS handshake)."""
    if not url:
        return Check("central tls", True, "not configured")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "mqtts":
        if _loopback(host):
            return Check("central tls", True, f"{url}: not encrypted (loopback only)")
        return Check("central tls", False, f"{url}: not encrypted: use mqtts:// with ca_file")
    try:
        port = parts.port or 8883
        ctx = _tls_context(ca_file)

        def handshake() -> tuple[str, str]:
            with (
                socket.create_connection((host, port), timeout=timeout_s) as raw,
                ctx.wrap_socket(raw, server_hostname=host) as tls,
            ):
                cert = tls.getpeercert() or {}
                subject = dict(x[0] for x in cert.get("subject", ()))
                return str(tls.version()), str(subject.get("commonName", host))

        version, name = within(timeout_s + 1, handshake)
    except Exception as e:
        return Check("central tls", False, f"{url}: {_tls_why(e, ca_file)}")
    by = f"ca_file {Path(ca_file).name}" if ca_file else "the system's CAs"
    return Check("central tls", True, f"{url}: {version}, {name!r} verified by {by}")


def mqtt_login(
    url: str,
    ca_file: str | Path | None,
    username: str,
    password: str,
    timeout_s: float = 3.0,
) -> str | None:
    """One MQTT v5 connect: None when the broker accepts it, else why not."""
    import paho.mqtt.client as mqtt

    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    answer: list[str | None] = []
    client_id = username or f"kiosk-doctor-{os.getpid()}"
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if tls:
        c.tls_set_context(_tls_context(ca_file))
    if username:
        c.username_pw_set(username, password)

    def on_connect(client, userdata, flags, reason, props) -> None:
        answer.append(str(reason) if reason.is_failure else None)

    c.on_connect = on_connect
    c.connect_timeout = timeout_s
    try:
        c.connect(parts.hostname or "", parts.port or (8883 if tls else 1883), 10, clean_start=True)
        end = time.monotonic() + timeout_s
        while not answer and time.monotonic() < end:
            if c.loop(0.1) != mqtt.MQTT_ERR_SUCCESS and not answer:
                return "the broker closed the connection"
        if not answer:
            return f"no answer within {timeout_s:g} s"
        return answer[0]
    finally:
        with contextlib.suppress(Exception):
            c.disconnect()


def check_mqtt_login(
    url: str,
    ca_file: str | Path | None = None,
    username: str = "",
    password_file: str | Path | None = None,
    timeout_s: float = 3.0,
) -> Check:
    """Does the broker accept the cabinet's login (or an anonymous one, without a login)."""
    if not url:
        return Check("central login", True, "not configured")
    who = username or "an anonymous login"
    password = ""
    if password_file is not None:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else _why(e)
            return Check("central login", False, f"mqtt_password_file {password_file}: {why}")
    try:
        refused = within(timeout_s + 2, lambda: mqtt_login(url, ca_file, username, password))
    except Exception as e:
        return Check("central login", False, f"{who} not tried: {_tls_why(e, ca_file)}")
    if refused is not None:
        hint = " (check mqtt_username and mqtt_password_file)" if username else ""
        return Check("central login", False, f"{who} refused: {refused}{hint}")
    return Check("central login", True, f"{who} accepted")


def check_central_mqtt(central: Central, timeout_s: float = 3.0) -> list[Check]:
    """The broker: reachable, encrypted and verified, the login accepted (three lines)."""
    url, ca = central.mqtt, central.ca_file
    reach = check_mqtt(url, timeout_s)
    tls = check_mqtt_tls(url, ca, timeout_s)
    if url and not reach.ok:
        login = Check("central login", False, "not tried: the broker is not reached")
    elif url and not tls.ok:
        login = Check("central login", False, "not tried: the link is not safe (central tls)")
    else:
        login = check_mqtt_login(
            url, ca, central.mqtt_username, central.mqtt_password_file, timeout_s
        )
    return [reach, tls, login]


def all_ok(checks: Iterable[Check]) -> bool:
    return all(c.ok for c in checks)
