"""Checking what comes down from the centre (pure: no I/O, no database).

A message is accepted only whole: signature (HMAC over the canonical form), then schema and
limits, then freshness (``expires_at`` for commands, a version newer than the one in force
for catalogue, configuration and accounts). Replays are caught by the database (``inbound``'s
UNIQUE(kind, ref)), not here. Every refusal carries a reason that goes into an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiosk import contract, signing

MAX_MESSAGE_BYTES = 2_000_000
CONTROLLER_COMMANDS = ("open_door", "session_authorized", "refund", "reboot")
AGENT_COMMANDS = ("set_price", "block_card", "unblock_card", "report_now")
MAX_PRICE_FEN = contract.MAX_PRICE_FEN
MAX_TTL_S = contract.MAX_TTL_S


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


# The schemas and limits are the contract's (kiosk.contract), shared with the centre.
ARGS = contract.COMMAND_ARGS
CONFIG_KEYS = contract.CONFIG_KEYS
ACCOUNT_STATUSES = contract.ACCOUNT_STATUSES


def decode(data: bytes | str | Any) -> dict[str, Any] | str:
    """A JSON object from the wire, or why it is not one (strict JSON: ``contract.loads``).

    A value parsed elsewhere (an HTTP answer) gets the same checks, bar duplicated keys.
    """
    try:
        if isinstance(data, bytes | bytearray | str):
            data = contract.loads(data, MAX_MESSAGE_BYTES)
        else:
            contract.check_tree(data)
    except contract.ContractError as e:
        return f"not accepted JSON: {e}"
    return data if isinstance(data, dict) else "not a JSON object"


def check_command(key: bytes, message: Any, now: float) -> Command | Refusal:
    m = decode(message)
    if isinstance(m, str):
        return Refusal("cmd", None, m)
    if not signing.verify_message(key, m):
        return Refusal("cmd", None, "bad signature")
    cmd_id = m.get("cmd_id")
    if not isinstance(cmd_id, str) or not 0 < len(cmd_id) <= 64:
        return Refusal("cmd", None, "cmd_id must be a string of 1..64 characters")
    for k in m:
        if k not in ("cmd_id", "cmd", "args", "expires_at", "sig"):
            return Refusal("cmd", cmd_id, f"unknown field {str(k)[:40]!r}")
    cmd = m.get("cmd")
    if not isinstance(cmd, str) or cmd not in ARGS:
        return Refusal("cmd", cmd_id, f"unknown command {str(cmd)[:40]!r}")
    why = contract.check_expiry(m.get("expires_at"), now)
    if why:
        return Refusal("cmd", cmd_id, why)
    why = contract.check_command_args(cmd, m.get("args", {}))
    if why:
        return Refusal("cmd", cmd_id, why)
    return Command(cmd_id, cmd, dict(m.get("args", {})), m["expires_at"], m)


def check_down(kind: str, key: bytes, message: Any, current: int) -> Down | Refusal:
    """A catalogue, configuration or accounts message; ``current`` is the version in force."""
    m = decode(message)
    if isinstance(m, str):
        return Refusal(kind, None, m)
    if not signing.verify_message(key, m):
        return Refusal(kind, None, "bad signature")
    version = m.get("version")
    if type(version) is not int or not 1 <= version <= contract.VERSION_MAX:
        return Refusal(kind, None, "version must be an integer 1..2^53")
    if set(m) != {"version", kind, "sig"}:
        return Refusal(kind, str(version), f"a {kind} message is {{version, {kind}, sig}}")
    if version <= current:
        return Refusal(kind, str(version), f"version {version} is not newer than {current}")
    payload = m[kind]
    if kind == "catalog":
        if not isinstance(payload, dict):
            why: str | None = "catalog must be an object"
        elif payload.get("version") != version:
            why = "the catalogue's own version differs from the message's"
        else:
            why = contract.check_catalog(payload)
    elif kind == "config":
        why = contract.check_config(payload)
    else:
        why = contract.check_accounts(payload)
    if why:
        return Refusal(kind, str(version), why)
    return Down(kind, version, payload, m)
