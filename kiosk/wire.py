"""The sync contract's messages on the wire (sync.md): topics, times, batches, acks.

Pure functions and frozen dataclasses, shared by the sync agent (``sync/``) and the centre
(``central/``) so both ends read the contract from one place; the ranges of every field and
strict JSON are in ``kiosk.contract``. No I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kiosk import clock

# Re-exported: both ends of the contract stamp times and ids through this module.
from kiosk.clock import iso_from_ts as iso  # noqa: F401
from kiosk.clock import now_iso  # noqa: F401
from kiosk.ids import uuid7  # noqa: F401

TOPIC_ROOT = "kiosk/v1"
RECORD_TYPES = (
    "sale",
    "adjustment",
    "session",
    "inventory",
    "event",
    "telemetry",
    "cmd_result",
    "applied",
)
DOWN_KINDS = ("catalog", "config", "accounts")
HTTP_SKEW_S = 300  # the centre refuses a request timestamp further than this from its clock


def topic(cabinet: str, leaf: str) -> str:
    """``kiosk/v1/{cabinet}/{leaf}``; leaf is ``status``, ``up``, ``ack``, ``down/cmd`` ..."""
    return f"{TOPIC_ROOT}/{cabinet}/{leaf}"


def cabinet_of(topic_name: str) -> str | None:
    parts = topic_name.split("/")
    return parts[2] if len(parts) >= 4 and "/".join(parts[:2]) == TOPIC_ROOT else None


# -- times and ids (kiosk.clock, kiosk.ids) ------------------------------------------------------
_STORED_FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def parse_time(text: Any) -> float | None:
    """Unix seconds of an RFC 3339 time, or None when it is not one."""
    if isinstance(text, str) and _STORED_FORM.fullmatch(text):  # the common form, fast
        try:
            return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC).timestamp()
        except ValueError:
            return None
    try:
        return clock.parse(text).timestamp()
    except (ValueError, TypeError, OverflowError):
        return None


# -- batches up -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One outbox record; ``body`` is its JSON text exactly as stored."""

    id: str
    seq: int
    type: str
    at: str
    body: str


def record_json(r: Record) -> str:
    # The body is already JSON: spliced in, not parsed and dumped again (the pump's hot path).
    return (
        f'{{"id":{json.dumps(r.id)},"seq":{r.seq},"type":{json.dumps(r.type)},'
        f'"at":{json.dumps(r.at)},"body":{r.body}}}'
    )


def batch_json(batch_id: str, records_json: Iterable[str]) -> bytes:
    return (
        f'{{"batch":{json.dumps(batch_id)},"records":[' + ",".join(records_json) + "]}"
    ).encode()


@dataclass(frozen=True)
class Rejected:
    id: str
    why: str


@dataclass(frozen=True)
class Ack:
    batch: str
    stored: tuple[str, ...]
    rejected: tuple[Rejected, ...]


class WireError(ValueError):
    """A message that does not follow the contract."""


def parse_ack(data: bytes | dict[str, Any], batch: str | None = None) -> Ack:
    """An ``ack`` from MQTT, or an HTTP answer to ``POST /batches`` (give its ``batch``).

    ``kiosk.contract.decode_ack``; its ``ContractError`` is a ``WireError``.
    """
    from kiosk import contract  # contract builds on this module: imported when first used

    return contract.decode_ack(data, batch)
