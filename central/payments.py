"""Payment codes: ``POST /payments/authorize`` and ``/payments/capture`` (integration.md).

The centre does not take payments itself: a ``PaymentProvider`` (the acquirer: WeChat Pay,
Alipay, a bank) decides whether a customer's one-time payment code may hold an amount. The
store keeps each hold and its capture (``Store.add_authorization``, ``Store.capture``);
settling captured holds with the acquirer goes from the store's payments table.

- ``UnconfiguredProvider``: what ``kiosk central serve`` uses until an acquirer is plugged in
  here; every authorisation is declined, saying so, and the cabinet tells the customer.
- ``ScriptedProvider``: ``--simulate`` only; a code ending in 9999 is declined, a hold over
  5,000 yuan too, anything else is held.

The payment code is passed to the provider and never stored, logged or echoed in an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from central.store import Store
from kiosk.contract import ContractError, loads
from kiosk.ids import uuid7

MAX_FEN = 10**7  # 100,000 yuan: more than any cabinet holds, and far below overflow
MAX_BODY_BYTES = 4096  # {session, code, hold_fen} or {auth_id, amount_fen}: a few dozen bytes
_CODE = re.compile(r"[0-9]{10,32}")  # WeChat/Alipay codes are 18 digits; room for others
_ID = re.compile(r"[!-~]{1,64}")  # session and auth ids: printable ASCII, no spaces


@dataclass(frozen=True)
class Authorization:
    ok: bool
    auth_id: str | None
    why: str = ""  # the provider's reason when not ok
    provider_ref: str = ""  # the provider's own reference for the hold, kept by the store


class ProviderUnavailable(Exception):
    """The provider did not answer: the cabinet is told to try later (503), not declined."""


class PaymentProvider(Protocol):
    name: str

    def authorize(self, cabinet: str, session: str, code: str, hold_fen: int) -> Authorization:
        """Hold ``hold_fen`` on the customer's payment code, within a few seconds (the
        customer waits); raise ``ProviderUnavailable`` when the acquirer cannot be reached."""
        ...


class UnconfiguredProvider:
    """The production stub: no acquirer is configured, so no payment code is accepted.

    Plug the acquirer in here: a class with ``name`` and ``authorize`` as in
    ``PaymentProvider``, passed to ``central.http_app.create_app(payments=...)``.
    """

    name = "unconfigured"

    def authorize(self, cabinet: str, session: str, code: str, hold_fen: int) -> Authorization:
        return Authorization(False, None, "no payment provider configured")


class ScriptedProvider:
    """``--simulate``: declines codes ending in 9999 and holds over 500,000 fen; holds the rest."""

    name = "scripted"
    max_hold_fen = 500_000

    def authorize(self, cabinet: str, session: str, code: str, hold_fen: int) -> Authorization:
        if code.endswith("9999"):
            return Authorization(False, None, "declined")
        if hold_fen > self.max_hold_fen:
            return Authorization(False, None, "over the limit")
        auth_id = uuid7()
        return Authorization(True, auth_id, "", f"scripted-{auth_id}")


# -- the requests, checked strictly ------------------------------------------------------------
@dataclass(frozen=True)
class AuthorizeRequest:
    session: str
    code: str = field(repr=False)  # never in a log line or traceback
    hold_fen: int


@dataclass(frozen=True)
class CaptureRequest:
    auth_id: str
    amount_fen: int


def _object(body: bytes) -> dict[str, Any]:
    m = loads(body, max_bytes=MAX_BODY_BYTES)
    if not isinstance(m, dict):
        raise ContractError("the body is a JSON object")
    return m


def _fen(m: dict[str, Any], name: str) -> int:
    v = m.get(name)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_FEN:
        raise ContractError(f"{name} must be an integer 0..{MAX_FEN}")
    return v


def _id(m: dict[str, Any], name: str) -> str:
    v = m.get(name)
    if not isinstance(v, str) or not _ID.fullmatch(v):
        raise ContractError(f"{name} must be 1..64 printable ASCII characters")
    return v


def parse_authorize(body: bytes) -> AuthorizeRequest:
    """``{"session","code","hold_fen"}``; ``ContractError`` says what is wrong (not the code).

    Unknown keys are ignored: what comes up from a newer cabinet is not refused for them."""
    m = _object(body)
    code = m.get("code")
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise ContractError("code must be 10..32 digits")
    return AuthorizeRequest(_id(m, "session"), code, _fen(m, "hold_fen"))


def parse_capture(body: bytes) -> CaptureRequest:
    """``{"auth_id","amount_fen"}``; ``ContractError`` says what is wrong."""
    m = _object(body)
    return CaptureRequest(_id(m, "auth_id"), _fen(m, "amount_fen"))


# -- what the HTTP side runs (in a worker thread) ------------------------------------------------
def authorize(
    store: Store, provider: PaymentProvider, cabinet: str, req: AuthorizeRequest
) -> dict[str, Any]:
    """The provider decides; a hold it grants is kept in the store before the cabinet hears of
    it (a capture can then always find it). The answer is final for this customer."""
    a = provider.authorize(cabinet, req.session, req.code, req.hold_fen)
    if not a.ok or not a.auth_id:
        return {"ok": False, "auth_id": None, "why": a.why or "declined"}
    store.add_authorization(
        cabinet, req.session, req.hold_fen, a.auth_id, a.provider_ref or provider.name
    )
    return {"ok": True, "auth_id": a.auth_id}


def capture(store: Store, cabinet: str, req: CaptureRequest) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer): idempotent per ``auth_id`` (the store's rule)."""
    return store.capture(cabinet, req.auth_id, req.amount_fen)
