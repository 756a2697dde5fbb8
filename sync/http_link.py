"""The HTTP path to the centre (integration.md, "HTTP"): signed requests with ``requests``.

Every answer is translated here, once, into a value or one of these exceptions:

- ``CentralUnreachable``: nothing usable came back (no connection, a timeout, a 5xx, an answer
  that is not JSON): try again later, with backoff. Three kinds say more:

  - ``CentralBusy``: 429 or 503; ``retry_after`` is its ``Retry-After`` in seconds (capped at
    ``RETRY_AFTER_CAP_S``), or None when it gave none;
  - ``ClockSkew``: 401 ``clock skew``: this cabinet's clock is too far from the centre's, which
    says its own time in ``centre_time`` (Unix seconds) when it can;
  - ``UnsignedAnswer``: an answer to ``POST /batches`` whose signature does not hold.

- ``CentralRefused``: any other 4xx: the request, as it is, will not be accepted. It keeps the
  answer's ``detail`` and whether the answer was signed; ``named_records`` reads the records a
  refusal of a batch names (the only refusal that dead-letters anything).

Answers are signed by the centre (``X-Timestamp``/``X-Signature`` over the body, with this
cabinet's key). An ack of a batch counts only when its signature holds: whoever can answer in the
centre's place must not be able to mark sales delivered, or refuse them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from kiosk import contract, signing, wire

RETRY_AFTER_CAP_S = 300.0  # a centre asking for longer is believed only this far
CLOCK_SKEW = "clock skew"  # the centre's ``error`` for a request timestamp out of its window


class CentralUnreachable(Exception):
    """The centre did not answer usefully; try again later."""


class CentralBusy(CentralUnreachable):
    """429 or 503: the centre asks the cabinet to come back later (``retry_after`` s, or None)."""

    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


class ClockSkew(CentralUnreachable):
    """401 ``clock skew``: the centre refused the request's timestamp; ``centre_time`` is the
    centre's clock (Unix seconds) when its answer said it."""

    def __init__(self, message: str, centre_time: float | None):
        super().__init__(message)
        self.centre_time = centre_time


class UnsignedAnswer(CentralUnreachable):
    """An answer to ``POST /batches`` without a good signature: no ack, whoever sent it."""


class CentralRefused(Exception):
    """The centre answered 4xx: the request is wrong and is not retried as it is."""

    def __init__(self, status: int, error: str, detail: Any = None, signed: bool = False):
        super().__init__(f"{status}: {error}")
        self.status, self.error, self.detail, self.signed = status, error, detail, signed


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the JSON answer; None for 204
    unsigned: str | None  # why the answer's signature does not hold; None when it does


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date, read
    against ``now`` in Unix seconds), within 0..RETRY_AFTER_CAP_S; None when absent or not
    one of those."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Very long digit runs are just "a long time" (and int() refuses over 4300 digits).
        return RETRY_AFTER_CAP_S if len(text) > 6 else min(float(text), RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # an HTTP-date is always GMT
    return min(max(when.timestamp() - now, 0.0), RETRY_AFTER_CAP_S)


def named_records(e: CentralRefused) -> tuple[wire.Rejected, ...]:
    """The records a refusal of a batch names, each with why: a signed 400 or 422 whose
    ``detail`` is ``{"rejected": [{"id", "why"}]}``, ``{"ids": [id, ...]}``, or a list of
    either. Anything else names none (and so dead-letters nothing)."""
    if e.status not in (400, 422) or not e.signed:
        return ()
    d = e.detail
    items = d.get("rejected", d.get("ids")) if isinstance(d, dict) else d
    if not isinstance(items, list):
        return ()
    out: list[wire.Rejected] = []
    for item in items:
        if isinstance(item, str) and item:
            out.append(wire.Rejected(item, e.error or f"refused ({e.status})"))
        elif isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            why = item.get("why")
            out.append(wire.Rejected(item["id"], str(why) if why else e.error))
    return tuple(out)


def _centre_time(detail: Any) -> float | None:
    t = detail.get("centre_time") if isinstance(detail, dict) else None
    # Within 1970..2100: a wild value is no time to report (nor to format).
    if isinstance(t, int | float) and not isinstance(t, bool) and 0 < t < 4_102_444_800:
        return float(t)
    return None


class HttpLink:
    def __init__(
        self,
        base_url: str,
        cabinet: str,
        key: bytes,
        timeout_s: float = 10.0,
        ca_file: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        """``clock``: the cabinet's wall clock (Unix seconds), which stamps every request."""
        self.base = f"{base_url.rstrip('/')}/api/v1/cabinets/{cabinet}"
        self.cabinet = cabinet
        self.key = key
        self.timeout_s = timeout_s
        self.clock = clock
        self.session = requests.Session()
        if ca_file:
            self.session.verify = ca_file

    def close(self) -> None:
        self.session.close()

    def _request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        now = self.clock()
        ts = int(now)
        h = {
            "X-Cabinet": self.cabinet,
            "X-Timestamp": str(ts),
            "X-Signature": signing.request_signature(self.key, ts, body),
            **(headers or {}),
        }
        if body:
            h["Content-Type"] = "application/json"
        what = f"{method} {path.split('?')[0]}"
        try:
            r = self.session.request(
                method, self.base + path, data=body or None, headers=h, timeout=self.timeout_s
            )
        except requests.RequestException as e:
            raise CentralUnreachable(f"{what}: {type(e).__name__}") from e
        if r.status_code in (429, 503):
            wait = retry_after_s(r.headers.get("Retry-After"), now)
            raise CentralBusy(f"{what}: HTTP {r.status_code}, retry after {wait} s", wait)
        if r.status_code >= 500:
            raise CentralUnreachable(f"{what}: HTTP {r.status_code}")
        # No skew check: a replayed genuine answer is harmless, and this clock may be off.
        unsigned = signing.check_signed(
            self.key, r.headers.get("X-Timestamp"), r.headers.get("X-Signature"), r.content
        )
        if r.status_code == 204:
            return Answer(204, None, unsigned)
        try:
            # Strict and bounded (never a RecursionError): an answer is as untrusted as a batch.
            answer = contract.loads(r.content, contract.MAX_BATCH_BYTES)
        except contract.ContractError as e:
            raise CentralUnreachable(f"{what}: answer is not JSON") from e
        if r.status_code >= 400:
            err = answer.get("error", "") if isinstance(answer, dict) else ""
            detail = answer.get("detail") if isinstance(answer, dict) else None
            if r.status_code == 401 and err == CLOCK_SKEW:
                raise ClockSkew(f"{what}: 401 {CLOCK_SKEW}", _centre_time(detail))
            raise CentralRefused(r.status_code, str(err), detail, unsigned is None)
        return Answer(r.status_code, answer, unsigned)

    def post_batch(self, batch_id: str, body: bytes) -> wire.Ack:
        """The centre's ack of a batch; ``UnsignedAnswer`` when the answer is not signed with
        this cabinet's key (it is then no ack: the records go again)."""
        a = self._request("POST", "/batches", body, {"Idempotency-Key": batch_id})
        if a.unsigned is not None:
            raise UnsignedAnswer(f"POST /batches: answer not taken: {a.unsigned}")
        try:
            return wire.parse_ack(a.body, batch_id)
        except (wire.WireError, ValueError) as e:
            raise CentralUnreachable(f"POST /batches: {e}") from e

    def get_down(self, kind: str, after: int) -> dict[str, Any] | None:
        """The newest catalogue/config/accounts after version ``after``, or None."""
        # Not the answer's signature: the message carries its own ``sig`` (sync.inbound).
        a = self._request("GET", f"/{kind}?after={after}")
        return a.body if a.status == 200 else None

    def get_commands(self, after: str | None) -> list[Any]:
        a = self._request("GET", "/commands" + (f"?after={after}" if after else ""))
        return a.body if isinstance(a.body, list) else []

    def post_json(self, path: str, message: dict[str, Any]) -> Any:
        return self._request("POST", path, json.dumps(message).encode()).body
