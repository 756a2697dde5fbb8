"""Wall-clock time as the database and the wire store it: RFC 3339 UTC, ms, ``Z``.

Fixed-width text sorts in time order, so SQL can compare these strings directly.
Timeouts use ``time.monotonic()``, never this.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)")


def iso(moment: datetime) -> str:
    """``2026-11-28T10:00:00.123Z`` for an aware datetime (converted to UTC)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no time zone; give it one")
    d = moment.astimezone(UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def iso_from_ts(ts: float) -> str:
    return iso(datetime.fromtimestamp(ts, UTC))


def now() -> datetime:
    return datetime.now(UTC)


def now_iso() -> str:
    return iso(now())


def parse(text: str) -> datetime:
    """An RFC 3339 time (any offset) as an aware UTC datetime; ValueError when it is not one."""
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 time")
    body = text.upper().replace("Z", "+00:00")
    frac = re.search(r"\.(\d+)", body)
    if frac and len(frac.group(1)) > 6:  # fromisoformat takes at most microseconds
        body = body.replace(frac.group(0), "." + frac.group(1)[:6])
    return datetime.fromisoformat(body).astimezone(UTC)


def normalize(text: str) -> str:
    """Any RFC 3339 time in the stored form (so text comparison is time comparison)."""
    return iso(parse(text))
