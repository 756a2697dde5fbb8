"""The on-screen scan-to-open code: single-use nonces that expire with the idle screen.

The QR carries ``{central.http}/s/{cabinet}/{nonce}`` (sync.md). The platform authorises the
phone and sends ``session_authorized`` naming the nonce as its ``session``; the controller opens a
door only for a nonce it issued, still valid, and not used before. A nonce stops being shown when
a session starts and is replaced every ``ROTATE_S`` of idle and after each session; a nonce taken
off the screen is still honoured for ``GRACE_S`` (the customer scanned it a moment before).

Issued nonces live in the settings table, so a restart does not strand a customer mid-scan.
Times are wall-clock seconds (they must survive a restart; a monotonic clock does not).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kiosk import db as kdb

ROTATE_S = 300.0
GRACE_S = 60.0
SETTING = "scan_nonces"


class ScanCodes:
    def __init__(
        self,
        db: Any,
        now: Callable[[], datetime],
        rotate_s: float = ROTATE_S,
        grace_s: float = GRACE_S,
    ):
        self.db, self._now = db, now
        self.rotate_s, self.grace_s = rotate_s, grace_s
        self.current: str | None = None
        self.issued: dict[str, float] = {}  # nonce -> wall time it stops being honoured
        self._shown_until = 0.0  # when the current nonce is due for rotation
        raw = kdb.get_setting(db, SETTING)
        if raw:
            try:
                d = json.loads(raw)
                self.current = d.get("current")
                self.issued = {str(k): float(v) for k, v in d.get("issued", {}).items()}
                self._shown_until = float(d.get("shown_until", 0.0))
            except (ValueError, AttributeError, TypeError):
                self.current, self.issued = None, {}

    def _t(self) -> float:
        return self._now().timestamp()

    def due(self) -> bool:
        """The idle screen needs a (new) code: none yet, or the current one is old."""
        return self.current is None or self._t() >= self._shown_until

    def rotate(self) -> str:
        """Retire the code on screen (honoured a little longer) and show a fresh one."""
        t = self._t()
        self._retire_current(t)
        nonce = secrets.token_urlsafe(12)
        self.current = nonce
        self._shown_until = t + self.rotate_s
        self.issued[nonce] = self._shown_until + self.grace_s
        self._save(t)
        return nonce

    def retire(self) -> None:
        """The idle screen is gone (a session started): stop showing the current code."""
        if self.current is not None:
            t = self._t()
            self._retire_current(t)
            self._save(t)

    def valid(self, nonce: str | None) -> bool:
        return bool(nonce) and self.issued.get(str(nonce), 0.0) > self._t()

    def use(self, nonce: str) -> bool:
        """Spend ``nonce`` (inside the caller's transaction): True when it was valid."""
        ok = self.valid(nonce)
        self.issued.pop(nonce, None)
        if self.current == nonce:
            self.current = None
        self._save(self._t())
        return ok

    def _retire_current(self, t: float) -> None:
        if self.current is not None and self.current in self.issued:
            self.issued[self.current] = min(self.issued[self.current], t + self.grace_s)
        self.current = None

    def _save(self, t: float) -> None:
        self.issued = {k: v for k, v in self.issued.items() if v > t}
        body = {"current": self.current, "issued": self.issued, "shown_until": self._shown_until}
        with kdb.transaction(self.db):
            kdb.set_setting(self.db, SETTING, json.dumps(body, sort_keys=True))
