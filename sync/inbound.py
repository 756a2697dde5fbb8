"""Checking what comes down from the centre (pure: no I/O, no database).

A message is accepted only whole: signature (HMAC over the canonical form), then schema and
limits, then freshness (``expires_at`` for commands, a version newer than the one in force
for catalogue, configuration and accounts). Replays are caught by the database (``inbound``'s
UNIQUE(kind, ref)), not here. Every refusal carries a reason that goes into an event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiosk import signing, wire

MAX_MESSAGE_BYTES = 2_000_000
CONTROLLER_COMMANDS = ("open_door", "session_authorized", "refund", "reboot")
AGENT_COMMANDS = ("set_price", "block_card", "unblock_card", "report_now")
MAX_PRICE_FEN = 10_000_000  # 100,000 yuan: no single farm product costs more
MAX_TTL_S = 7 * 24 * 3600  # a command valid for longer than a week is a mistake


@dataclass(frozen=True)
class Command:
    cmd_id: str
    cmd: str
    args: dict[str, Any]
    expires_at: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class Down:
    kind: str  # catalog | config | accounts
    version: int
    payload: Any
    raw: dict[str, Any]


@dataclass(frozen=True)
class Refusal:
    kind: str
    ref: str | None  # cmd_id or version when known (and signed), else None
    why: str


# -- argument schemas: name -> (type, check) -------------------------------------------------
Check = Callable[[Any], bool]


def _text(max_len: int) -> tuple[type, Check]:
    return (str, lambda v: 0 < len(v) <= max_len)


def _fen(lo: int, hi: int) -> tuple[type, Check]:
    return (int, lambda v: lo <= v <= hi)


_ACCOUNT = (str, lambda v: re.fullmatch(r"[0-9a-f]{32}", v) is not None)
ARGS: dict[str, dict[str, tuple[type, Check]]] = {
    "open_door": {"door": _text(32), "reason": _text(200)},
    "set_price": {"sku": _text(64), "price_fen": _fen(1, MAX_PRICE_FEN)},
    "block_card": {"account": _ACCOUNT},
    "unblock_card": {"account": _ACCOUNT},
    "refund": {
        "sale": _text(64),
        "items": (list, lambda v: 0 < len(v) <= 100),
        "amount_fen": _fen(1, MAX_PRICE_FEN * 100),
        "reason": _text(200),
    },
    "session_authorized": {
        "session": _text(64),
        "account": _text(64),
        "limit_fen": _fen(1, MAX_PRICE_FEN),
    },
    "report_now": {},
    "reboot": {},
}
OPTIONAL_ARGS = {"refund": {"items", "amount_fen"}}

# Configuration the centre may set: key -> (type, low, high).
CONFIG_KEYS: dict[str, tuple[type | tuple[type, ...], float, float]] = {
    "unlock_timeout_s": ((int, float), 1, 120),
    "door_open_alarm_s": ((int, float), 10, 3600),
    "card_offline_limit_fen": (int, 0, 1_000_000),
    "confirm_timeout_s": ((int, float), 5, 600),
    "settle_timeout_s": ((int, float), 1, 60),
    "telemetry_interval_s": ((int, float), 1, 86_400),
    "poll_interval_s": ((int, float), 1, 86_400),
}
ACCOUNT_STATUSES = ("active", "blocked")


def _is(v: Any, t: type | tuple[type, ...]) -> bool:
    return isinstance(v, t) and not isinstance(v, bool)


def _check_args(cmd: str, args: Any) -> str | None:
    if not isinstance(args, dict):
        return "args must be an object"
    spec = ARGS[cmd]
    optional = OPTIONAL_ARGS.get(cmd, set())
    for k in args:
        if k not in spec:
            return f"{cmd}: unknown argument {k!r}"
    for k, (t, ok) in spec.items():
        if k not in args:
            if k in optional:
                continue
            return f"{cmd}: missing argument {k!r}"
        if not _is(args[k], t) or not ok(args[k]):
            return f"{cmd}: {k} out of range or of the wrong type"
    if cmd == "refund" and not (set(args) & optional):
        return "refund: needs items or amount_fen"
    return None


def decode(data: bytes | str | Any) -> dict[str, Any] | None:
    """A JSON object from the wire, or None (too large, not JSON, not an object)."""
    if isinstance(data, bytes | bytearray):
        if len(data) > MAX_MESSAGE_BYTES:
            return None
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return None
    return data if isinstance(data, dict) else None


def check_command(key: bytes, message: Any, now: float) -> Command | Refusal:
    m = decode(message)
    if m is None:
        return Refusal("cmd", None, "not a JSON object")
    if not signing.verify_message(key, m):
        return Refusal("cmd", None, "bad signature")
    cmd_id = m.get("cmd_id")
    if not isinstance(cmd_id, str) or not 0 < len(cmd_id) <= 64:
        return Refusal("cmd", None, "cmd_id must be a string of 1..64 characters")
    for k in m:
        if k not in ("cmd_id", "cmd", "args", "expires_at", "sig"):
            return Refusal("cmd", cmd_id, f"unknown field {k!r}")
    cmd = m.get("cmd")
    if cmd not in ARGS:
        return Refusal("cmd", cmd_id, f"unknown command {cmd!r}")
    expires = wire.parse_time(m.get("expires_at"))
    if expires is None:
        return Refusal("cmd", cmd_id, "expires_at must be an RFC 3339 time")
    if expires <= now:
        return Refusal("cmd", cmd_id, "expired")
    if expires > now + MAX_TTL_S:
        return Refusal("cmd", cmd_id, "expires_at too far in the future")
    why = _check_args(cmd, m.get("args", {}))
    if why:
        return Refusal("cmd", cmd_id, why)
    return Command(cmd_id, cmd, dict(m.get("args", {})), m["expires_at"], m)


def _check_config(c: Any) -> str | None:
    if not isinstance(c, dict):
        return "config must be an object"
    for k, v in c.items():
        if k not in CONFIG_KEYS:
            return f"unknown config key {k!r}"
        t, lo, hi = CONFIG_KEYS[k]
        if not _is(v, t) or not lo <= v <= hi:
            return f"{k} must be {lo}..{hi}"
    return None


def _check_accounts(a: Any) -> str | None:
    if not isinstance(a, list) or len(a) > 100_000:
        return "accounts must be a list"
    seen: set[str] = set()
    for i, x in enumerate(a, 1):
        if not isinstance(x, dict) or set(x) - {"account", "name", "status", "offline_limit_fen"}:
            return f"account {i}: not {{account, name, status, offline_limit_fen}}"
        acct = x.get("account")
        if not isinstance(acct, str) or not _ACCOUNT[1](acct):
            return f"account {i}: account must be 32 hex digits"
        if x["account"] in seen:
            return f"account {i}: listed twice"
        seen.add(x["account"])
        if not isinstance(x.get("name"), str) or len(x["name"]) > 100:
            return f"account {i}: name must be text"
        if x.get("status") not in ACCOUNT_STATUSES:
            return f"account {i}: status must be active or blocked"
        lim = x.get("offline_limit_fen")
        if lim is not None and (not _is(lim, int) or not 0 <= lim <= 1_000_000):
            return f"account {i}: offline_limit_fen out of range"
    return None


def check_down(kind: str, key: bytes, message: Any, current: int) -> Down | Refusal:
    """A catalogue, configuration or accounts message; ``current`` is the version in force."""
    m = decode(message)
    if m is None:
        return Refusal(kind, None, "not a JSON object")
    if not signing.verify_message(key, m):
        return Refusal(kind, None, "bad signature")
    version = m.get("version")
    if not _is(version, int) or version < 1:
        return Refusal(kind, None, "version must be a positive integer")
    if set(m) != {"version", kind, "sig"}:
        return Refusal(kind, str(version), f"a {kind} message is {{version, {kind}, sig}}")
    if version <= current:
        return Refusal(kind, str(version), f"version {version} is not newer than {current}")
    payload = m[kind]
    if kind == "catalog":
        why = None
        if not isinstance(payload, dict):
            why = "catalog must be an object"
        elif payload.get("version") != version:
            why = "the catalogue's own version differs from the message's"
    elif kind == "config":
        why = _check_config(payload)
    else:
        why = _check_accounts(payload)
    if why:
        return Refusal(kind, str(version), why)
    return Down(kind, version, payload, m)
