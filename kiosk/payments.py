"""The payment port: the one question the core asks the platform while a customer waits.

A payment code opens a door only after the platform holds an amount (``authorize``); after the
door closes the controller captures what was taken (0 releases the hold). ``sync/`` implements
this port over HTTP (sync.md: ``POST /payments/authorize`` and ``/payments/capture``); the CLI
wires it in. ``FakePaymentPort`` follows the same contract in-process for tests and the demo.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Protocol


class PaymentOffline(Exception):
    """The platform could not be reached: the customer is refused with a clear reason."""


@dataclass(frozen=True)
class Authorization:
    ok: bool
    auth_id: str | None = None
    why: str = ""  # the platform's reason when not ok


class PaymentPort(Protocol):
    def authorize(self, session: str, code: str, hold_fen: int) -> Authorization:
        """Hold ``hold_fen`` on the customer's payment code; raise PaymentOffline."""
        ...

    def capture(self, auth_id: str, amount_fen: int) -> bool:
        """Charge ``amount_fen`` (<= the hold; 0 releases it). Idempotent per ``auth_id``.

        True when the platform answered ok; False (or PaymentOffline) leaves the capture
        pending: the controller keeps a ``captures`` row that the sync agent retries.
        """
        ...


@dataclass
class FakePaymentPort:
    """An in-process platform: codes in ``declined`` are refused; ``offline`` raises.

    ``captured`` maps auth_id -> amount; ``holds`` maps auth_id -> (session, hold_fen).
    """

    declined: set[str] = field(default_factory=set)
    offline: bool = False
    capture_offline: bool = False
    holds: dict[str, tuple[str, int]] = field(default_factory=dict)
    captured: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def authorize(self, session: str, code: str, hold_fen: int) -> Authorization:
        with self._lock:
            self.calls.append(("authorize", session, str(hold_fen)))
            if self.offline:
                raise PaymentOffline("fake platform is offline")
            if code in self.declined:
                return Authorization(False, None, "declined")
            auth_id = f"auth-{uuid.uuid4().hex[:12]}"
            self.holds[auth_id] = (session, hold_fen)
            return Authorization(True, auth_id)

    def capture(self, auth_id: str, amount_fen: int) -> bool:
        with self._lock:
            self.calls.append(("capture", auth_id, str(amount_fen)))
            if self.offline or self.capture_offline:
                raise PaymentOffline("fake platform is offline")
            if auth_id not in self.holds or amount_fen > self.holds[auth_id][1]:
                return False
            # idempotent: a second capture of the same auth_id answers as the first did
            self.captured.setdefault(auth_id, amount_fen)
            return self.captured[auth_id] == amount_fen
