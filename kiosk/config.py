"""The cabinet's configuration: one TOML file, loaded into frozen dataclasses.

Every problem is collected (not just the first) and reported as
``<file>: <key path>: <problem>``, with list indexes counted from 1 as people count.
Relative paths are resolved against the configuration file's folder; serial URLs that
are plain paths are resolved the same way, so ``kiosk sim`` and ``kiosk run`` meet there.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiosk.problems import Problems

LOCK_PROTOCOLS = ("8a80", "kerong_cu", "wkly")
# Addressing limits per lock protocol (hardware.md sections 1 and 2; WKLY: docs/internals.md).
BOARD_RANGE = {"8a80": (1, 32), "kerong_cu": (0, 15), "wkly": (0, 31)}
LOCK_RANGE = {"8a80": (1, 24), "kerong_cu": (1, 16), "wkly": (1, 48)}
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class ConfigError(Problems):
    """A configuration that cannot be used; ``problems`` lists every reason."""


@dataclass(frozen=True)
class Lane:
    sku: str
    count: int
    low_stock: int = 1  # a lane at or under this count raises a low-stock alarm


@dataclass(frozen=True)
class Door:
    id: str
    protocol: str
    url: str
    baud: int
    board: int
    lock: int
    # True for a board wired the other way round from the field convention: 8A/80 status
    # 11 (not 00) means open, a Kerong CU hook bit of 1 means open (not locked), WKLY state
    # 01 (not 00) means open.
    status_inverted: bool = False


@dataclass(frozen=True)
class Shelf:
    id: str
    door: str
    slave: int
    capacity_g: int
    lanes: tuple[Lane, ...]


@dataclass(frozen=True)
class Scales:
    url: str
    baud: int = 9600
    timeout_s: float = 0.1


@dataclass(frozen=True)
class Scanner:
    url: str
    baud: int = 9600


@dataclass(frozen=True)
class Central:
    mqtt: str = ""  # mqtt://host:port or mqtts://host:port; empty: no MQTT
    http: str = ""  # base URL of the central platform; empty: no HTTP
    ca_file: Path | None = None
    key_file: Path | None = None
    # The cabinet's broker login (``kiosk central cabinet add`` makes both): ``kiosk-{id}``,
    # and a file holding its password. Empty: no login (a broker that allows anonymous ones).
    mqtt_username: str = ""
    mqtt_password_file: Path | None = None
    http_fallback_after_s: float = 30.0
    batch_max_records: int = 500
    batch_max_bytes: int = 256_000
    telemetry_interval_s: float = 60.0
    poll_interval_s: float = 30.0
    prune_delivered_after_days: float = 30.0
    storage_low_mb: float = 200.0


@dataclass(frozen=True)
class Limits:
    unlock_timeout_s: float = 10.0
    door_open_alarm_s: float = 120.0
    card_offline_limit_fen: int = 20_000
    confirm_timeout_s: float = 60.0
    settle_timeout_s: float = 8.0


@dataclass(frozen=True)
class Simulator:
    catalog: Path | None = None
    control_port: int = 0  # 0: any free port
    seed: int = 1
    noise_g: float = 0.8


@dataclass(frozen=True)
class Cabinet:
    id: str
    timezone: str = "Asia/Shanghai"
    name: str = ""
    location: str = ""


@dataclass(frozen=True)
class Config:
    path: Path
    cabinet: Cabinet
    doors: tuple[Door, ...]
    shelves: tuple[Shelf, ...]
    scales: Scales
    scanner: Scanner
    database: Path
    central: Central = field(default_factory=Central)
    limits: Limits = field(default_factory=Limits)
    simulator: Simulator = field(default_factory=Simulator)
    # Things worth fixing that still leave the file usable (``kiosk config check`` prints them)
    warnings: tuple[str, ...] = ()

    def door(self, door_id: str) -> Door:
        return next(d for d in self.doors if d.id == door_id)

    def shelves_of(self, door_id: str) -> tuple[Shelf, ...]:
        return tuple(s for s in self.shelves if s.door == door_id)


# ---------------------------------------------------------------------------
# Validation: a tiny schema walker. Each section is a table of key -> (type, check,
# default); ``REQUIRED`` marks keys without a default.

REQUIRED = object()
Check = Callable[[Any], str | None]


def _in_range(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"{v} is outside {lo}..{hi}"

    return check


def _at_most(n: int) -> Check:
    def check(v: Any) -> str | None:
        return None if len(v) <= n else f"must be at most {n} characters"

    return check


def _positive(v: Any) -> str | None:
    return None if v > 0 else f"{v} must be greater than 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else f"{v} must not be negative"


def _one_of(choices: tuple[Any, ...]) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"{v!r} is not one of {', '.join(map(str, choices))}"

    return check


def _identifier(v: Any) -> str | None:
    ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", v)
    return None if ok else f"{v!r} is not an id (letters, digits, '-', '_', '.'; up to 32)"


def _timezone(v: Any) -> str | None:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{v!r} is not a known time zone"
    return None


def _status_byte(v: Any) -> str | None:
    return None if re.fullmatch(r"[0-9A-Fa-f]{2}", v) else f"{v!r} is not a hex byte like '11'"


def _not_empty(v: Any) -> str | None:
    return None if v.strip() else "must not be empty"


Spec = dict[str, tuple[type | tuple[type, ...], Check | None, Any]]

CABINET: Spec = {
    "id": (str, _identifier, REQUIRED),
    "timezone": (str, _timezone, "Asia/Shanghai"),
    "name": (str, _at_most(200), ""),  # both go up in telemetry (kiosk.contract's ranges)
    "location": (str, _at_most(200), ""),
}
DOOR: Spec = {
    "id": (str, _identifier, REQUIRED),
    "protocol": (str, _one_of(LOCK_PROTOCOLS), REQUIRED),
    "url": (str, _not_empty, REQUIRED),
    "baud": (int, _one_of(BAUD_RATES), None),  # None: the protocol's own default
    "board": (int, None, REQUIRED),  # range depends on the protocol: checked below
    "lock": (int, None, REQUIRED),
    "status_inverted": (bool, None, None),  # None: not stated (config check warns)
    "open_state": (str, _status_byte, None),  # the old 8A/80 spelling of status_inverted
}
LANE: Spec = {
    "sku": (str, _not_empty, REQUIRED),
    "count": (int, _non_negative, REQUIRED),
    "low_stock": (int, _non_negative, 1),
}
SHELF: Spec = {
    "id": (str, _identifier, REQUIRED),
    "door": (str, None, REQUIRED),
    "slave": (int, _in_range(1, 247), REQUIRED),
    "capacity_g": (int, _positive, REQUIRED),
    "lanes": (list, None, REQUIRED),
}
SCALES: Spec = {
    "url": (str, _not_empty, REQUIRED),
    "baud": (int, _one_of(BAUD_RATES), 9600),
    "timeout_s": ((int, float), _positive, 0.1),
}
SCANNER: Spec = {
    "url": (str, _not_empty, REQUIRED),
    "baud": (int, _one_of(BAUD_RATES), 9600),
}
DATABASE: Spec = {"path": (str, _not_empty, REQUIRED)}
CENTRAL: Spec = {
    "mqtt": (str, None, ""),
    "http": (str, None, ""),
    "ca_file": (str, None, None),
    "key_file": (str, None, None),
    "mqtt_username": (str, _at_most(64), ""),
    "mqtt_password_file": (str, None, None),
    "http_fallback_after_s": ((int, float), _non_negative, 30.0),
    "batch_max_records": (int, _in_range(1, 10_000), 500),
    # At most 1 MB: the centre refuses an HTTP body over 1 MiB (docs/integration.md, "Limits").
    "batch_max_bytes": (int, _in_range(1_000, 1_000_000), 256_000),
    "telemetry_interval_s": ((int, float), _positive, 60.0),
    "poll_interval_s": ((int, float), _positive, 30.0),
    "prune_delivered_after_days": ((int, float), _non_negative, 30.0),
    "storage_low_mb": ((int, float), _non_negative, 200.0),
}
LIMITS: Spec = {
    "unlock_timeout_s": ((int, float), _positive, 10.0),
    "door_open_alarm_s": ((int, float), _positive, 120.0),
    "card_offline_limit_fen": (int, _non_negative, 20_000),
    "confirm_timeout_s": ((int, float), _positive, 60.0),
    "settle_timeout_s": ((int, float), _positive, 8.0),
}
SIMULATOR: Spec = {
    "catalog": (str, None, None),
    "control_port": (int, _in_range(0, 65535), 0),
    "seed": (int, None, 1),
    "noise_g": ((int, float), _non_negative, 0.8),
}
TOP_TABLES = {
    "cabinet": CABINET,
    "scales": SCALES,
    "scanner": SCANNER,
    "database": DATABASE,
    "central": CENTRAL,
    "limits": LIMITS,
    "simulator": SIMULATOR,
}
OPTIONAL_TABLES = ("central", "limits", "simulator")
PROTOCOL_BAUD = {"8a80": 9600, "kerong_cu": 19200, "wkly": 9600}

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _type_name(t: type | tuple[type, ...]) -> str:
    return "a number" if isinstance(t, tuple) else _TYPE_NAMES.get(t, t.__name__)


class _Checker:
    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def problem(self, path: str, why: str) -> None:
        self.problems.append(f"{self.filename}: {path}: {why}")

    def warn(self, path: str, why: str) -> None:
        self.warnings.append(f"{self.filename}: {path}: {why}")

    def table(self, data: Any, spec: Spec, path: str) -> dict[str, Any] | None:
        if not isinstance(data, dict):
            self.problem(path, "must be a table")
            return None
        out: dict[str, Any] = {}
        for key in data:
            if key not in spec:
                self.problem(f"{path}.{key}", "unknown key")
        for key, (typ, check, default) in spec.items():
            if key not in data:
                if default is REQUIRED:
                    self.problem(f"{path}.{key}", "missing")
                else:
                    out[key] = default
                continue
            value = data[key]
            # bool is an int in Python; TOML's true is never a number here.
            if (isinstance(value, bool) and typ is not bool) or not isinstance(value, typ):
                self.problem(f"{path}.{key}", f"must be {_type_name(typ)}, not {value!r}")
                continue
            why = check(value) if check else None
            if why:
                self.problem(f"{path}.{key}", why)
                continue
            out[key] = value
        return out


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def resolve_url(base: Path, url: str) -> str:
    """A pyserial URL with a scheme (``socket://``, ``loop://``) is kept; a path is resolved,
    also after ``evdev:`` (a keyboard scanner's input device, ``[scanner]`` only)."""
    if url.startswith("evdev:"):
        return "evdev:" + str(_resolve(base, url.removeprefix("evdev:")))
    return url if "://" in url else str(_resolve(base, url))


def parse(data: dict[str, Any], path: Path) -> Config:
    """Validate already-parsed TOML; raise ``ConfigError`` listing every problem."""
    ck = _Checker(path.name)
    base = path.parent
    for key in data:
        if key not in TOP_TABLES and key not in ("doors", "shelves"):
            ck.problem(key, "unknown key")
    tables: dict[str, dict[str, Any] | None] = {}
    for name, spec in TOP_TABLES.items():
        if name not in data:
            if name in OPTIONAL_TABLES:
                tables[name] = ck.table({}, spec, name)
            else:
                ck.problem(name, "missing")
                tables[name] = None
            continue
        tables[name] = ck.table(data[name], spec, name)

    doors: list[Door] = []
    raw_doors = data.get("doors", [])
    if not isinstance(raw_doors, list) or not raw_doors:
        ck.problem("doors", "at least one [[doors]] is needed")
        raw_doors = []
    seen_doors: set[str] = set()
    seen_addr: dict[tuple[str, str, int, int], str] = {}
    for i, raw in enumerate(raw_doors, 1):
        where = f"doors[{i}]"
        d = ck.table(raw, DOOR, where)
        if d is None or "id" not in d or "protocol" not in d:
            continue
        proto = d["protocol"]
        if d["id"] in seen_doors:
            ck.problem(f"{where}.id", f"{d['id']!r} is used by another door")
        seen_doors.add(d["id"])
        ok = True
        for key, ranges in (("board", BOARD_RANGE), ("lock", LOCK_RANGE)):
            lo, hi = ranges[proto]
            if key in d and not lo <= d[key] <= hi:
                ck.problem(f"{where}.{key}", f"{d[key]} is outside {lo}..{hi}")
                ok = False
        inverted = _polarity(ck, where, proto, d)
        if inverted is None:
            ok = False
        if not ok or "url" not in d or "board" not in d or "lock" not in d:
            continue
        url = resolve_url(base, d["url"])
        addr = (url, proto, d["board"], d["lock"])
        if addr in seen_addr:
            ck.problem(
                f"{where}.lock", f"board {d['board']} lock {d['lock']} is {seen_addr[addr]}'s"
            )
        seen_addr[addr] = d["id"]
        doors.append(
            Door(
                id=d["id"],
                protocol=proto,
                url=url,
                baud=d.get("baud") or PROTOCOL_BAUD[proto],
                board=d["board"],
                lock=d["lock"],
                status_inverted=inverted,
            )
        )

    shelves: list[Shelf] = []
    raw_shelves = data.get("shelves", [])
    if not isinstance(raw_shelves, list) or not raw_shelves:
        ck.problem("shelves", "at least one [[shelves]] is needed")
        raw_shelves = []
    seen_shelves: set[str] = set()
    seen_slaves: dict[int, str] = {}
    for i, raw in enumerate(raw_shelves, 1):
        where = f"shelves[{i}]"
        s = ck.table(raw, SHELF, where)
        if s is None or "id" not in s:
            continue
        if s["id"] in seen_shelves:
            ck.problem(f"{where}.id", f"{s['id']!r} is used by another shelf")
        seen_shelves.add(s["id"])
        if "door" in s and s["door"] not in seen_doors:
            ck.problem(f"{where}.door", f"{s['door']!r} is not a door in [[doors]]")
        if "slave" in s:
            if s["slave"] in seen_slaves:
                ck.problem(
                    f"{where}.slave", f"{s['slave']} is already shelf {seen_slaves[s['slave']]}'s"
                )
            seen_slaves[s["slave"]] = s["id"]
        lanes: list[Lane] = []
        seen_skus: set[str] = set()
        for j, raw_lane in enumerate(s.get("lanes", []), 1):
            lane = ck.table(raw_lane, LANE, f"{where}.lanes[{j}]")
            if lane is None or "sku" not in lane or "count" not in lane:
                continue
            if lane["sku"] in seen_skus:
                ck.problem(f"{where}.lanes[{j}].sku", f"{lane['sku']!r} has another lane here")
            seen_skus.add(lane["sku"])
            lanes.append(Lane(**lane))
        if {"id", "door", "slave", "capacity_g"} <= s.keys():
            shelves.append(Shelf(s["id"], s["door"], s["slave"], s["capacity_g"], tuple(lanes)))

    central_t = tables.get("central") or {}
    if bool(central_t.get("mqtt_username")) != bool(central_t.get("mqtt_password_file")):
        given, other = (
            ("mqtt_username", "mqtt_password_file")
            if central_t.get("mqtt_username")
            else ("mqtt_password_file", "mqtt_username")
        )
        ck.problem(f"central.{other}", f"missing ({given} needs it)")

    if ck.problems:
        raise ConfigError(ck.problems)

    t = {k: v for k, v in tables.items() if v is not None}
    central = dict(t["central"])
    for key in ("ca_file", "key_file", "mqtt_password_file"):
        central[key] = _resolve(base, central[key]) if central[key] else None
    sim = dict(t["simulator"])
    sim["catalog"] = _resolve(base, sim["catalog"]) if sim["catalog"] else None
    scales = dict(t["scales"], url=resolve_url(base, t["scales"]["url"]))
    scanner = dict(t["scanner"], url=resolve_url(base, t["scanner"]["url"]))
    return Config(
        path=path,
        cabinet=Cabinet(**t["cabinet"]),
        doors=tuple(doors),
        shelves=tuple(shelves),
        scales=Scales(**scales),
        scanner=Scanner(**scanner),
        database=_resolve(base, t["database"]["path"]),
        central=Central(**central),
        limits=Limits(**t["limits"]),
        simulator=Simulator(**sim),
        warnings=tuple(ck.warnings),
    )


# What each protocol's default (status_inverted = false) reads, for the messages below.
FIELD_CONVENTION = {
    "8a80": "status 00 = open, 11 = closed",
    "kerong_cu": "a hook bit of 1 = locked",
    "wkly": "state 00 = open, 01 = closed",
}


def _polarity(ck: _Checker, where: str, proto: str, d: dict[str, Any]) -> bool | None:
    """The door's ``status_inverted`` (None after a problem). ``open_state`` is its old
    8A/80 spelling, where "11" meant open: that wiring is the inverted one now."""
    inverted, open_state = d.get("status_inverted"), d.get("open_state")
    if open_state is not None:
        if proto != "8a80":
            ck.problem(f"{where}.open_state", "only the 8a80 protocol has open_state")
            return None
        if inverted is not None:
            ck.problem(f"{where}.open_state", "give status_inverted alone (open_state is old)")
            return None
        if open_state.upper() not in ("00", "11"):
            ck.problem(f"{where}.open_state", f"{open_state!r} is neither '00' nor '11'")
            return None
        inverted = open_state.upper() == "11"
        ck.warn(
            f"{where}.open_state",
            f"replaced by status_inverted: write status_inverted = {str(inverted).lower()}",
        )
        return inverted
    if inverted is None and proto in FIELD_CONVENTION:
        ck.warn(
            f"{where}.status_inverted",
            f"not stated; false assumed ({FIELD_CONVENTION[proto]}): check the board's wiring",
        )
    return bool(inverted)


def load(path: str | Path) -> Config:
    """Read and validate a configuration file."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path.name}: cannot read: {e.strerror}"]) from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path.name}: not valid TOML: {e}"]) from e
    return parse(data, path)
