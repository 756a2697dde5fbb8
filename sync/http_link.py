"""The HTTP path to the centre (sync.md, "HTTP"): signed requests with ``requests``.

Every failure is translated here, once: ``CentralUnreachable`` for anything worth retrying
(no connection, timeout, 5xx, an answer that is not JSON), ``CentralRefused`` for a 4xx that
must not be retried as it is.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from kiosk import signing, wire


class CentralUnreachable(Exception):
    """The centre did not answer usefully; try again later."""


class CentralRefused(Exception):
    """The centre answered 4xx: the request is wrong and is not retried as it is."""

    def __init__(self, status: int, error: str):
        super().__init__(f"{status}: {error}")
        self.status, self.error = status, error


class HttpLink:
    def __init__(
        self,
        base_url: str,
        cabinet: str,
        key: bytes,
        timeout_s: float = 10.0,
        ca_file: str | None = None,
    ):
        self.base = f"{base_url.rstrip('/')}/api/v1/cabinets/{cabinet}"
        self.cabinet = cabinet
        self.key = key
        self.timeout_s = timeout_s
        self.session = requests.Session()
        if ca_file:
            self.session.verify = ca_file

    def close(self) -> None:
        self.session.close()

    def _request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        ts = int(time.time())
        h = {
            "X-Cabinet": self.cabinet,
            "X-Timestamp": str(ts),
            "X-Signature": signing.request_signature(self.key, ts, body),
            **(headers or {}),
        }
        if body:
            h["Content-Type"] = "application/json"
        try:
            r = self.session.request(
                method, self.base + path, data=body or None, headers=h, timeout=self.timeout_s
            )
        except requests.RequestException as e:
            raise CentralUnreachable(f"{method} {path}: {type(e).__name__}") from e
        if r.status_code >= 500:
            raise CentralUnreachable(f"{method} {path}: HTTP {r.status_code}")
        if r.status_code == 204:
            return 204, None
        try:
            answer = r.json()
        except ValueError as e:
            raise CentralUnreachable(f"{method} {path}: answer is not JSON") from e
        if r.status_code >= 400:
            err = answer.get("error", "") if isinstance(answer, dict) else ""
            raise CentralRefused(r.status_code, str(err))
        return r.status_code, answer

    def post_batch(self, batch_id: str, body: bytes) -> wire.Ack:
        _, answer = self._request("POST", "/batches", body, {"Idempotency-Key": batch_id})
        try:
            return wire.parse_ack(answer, batch_id)
        except wire.WireError as e:
            raise CentralUnreachable(f"POST /batches: {e}") from e

    def get_down(self, kind: str, after: int) -> dict[str, Any] | None:
        """The newest catalogue/config/accounts after version ``after``, or None."""
        status, answer = self._request("GET", f"/{kind}?after={after}")
        return answer if status == 200 else None

    def get_commands(self, after: str | None) -> list[Any]:
        _, answer = self._request("GET", "/commands" + (f"?after={after}" if after else ""))
        return answer if isinstance(answer, list) else []

    def post_json(self, path: str, message: dict[str, Any]) -> Any:
        _, answer = self._request("POST", path, json.dumps(message).encode())
        return answer
