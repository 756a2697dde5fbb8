"""Keys and signatures of the sync contract (sync.md, "Identity and security").

Pure functions; the test vectors of sync.md are in tests/test_signing.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any


class KeyFileError(Exception):
    """The cabinet's key file is missing or not 64 hex digits."""


def load_key(path: str | Path) -> bytes:
    """Read a key file: 64 hex digits (32 bytes) on one line."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{path}: cannot read the key file: {e}") from e
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise KeyFileError(f"{path}: a key file holds 64 hex digits on one line")
    return key


def canonical(message: dict[str, Any]) -> bytes:
    """The signed form of a message: without ``sig``, sorted keys, no spaces, UTF-8."""
    body = {k: v for k, v in message.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hmac_hex(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def sign_message(key: bytes, message: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``message`` with its ``sig``."""
    return {
        **{k: v for k, v in message.items() if k != "sig"},
        "sig": _hmac_hex(key, canonical(message)),
    }


def verify_message(key: bytes, message: dict[str, Any]) -> bool:
    sig = message.get("sig")
    # compare_digest raises on non-ASCII text: a hostile sig must be a refusal, not a crash.
    return (
        isinstance(sig, str)
        and sig.isascii()
        and hmac.compare_digest(sig, _hmac_hex(key, canonical(message)))
    )


def card_account(key: bytes, uid: str) -> str:
    """A card's account: card numbers never leave the cabinet (or reach its database) in clear."""
    return _hmac_hex(key, b"card:" + uid.strip().upper().encode())[:32]


def request_signature(key: bytes, timestamp: int, body: bytes) -> str:
    """``X-Signature`` of an HTTP request from the cabinet."""
    return _hmac_hex(key, str(timestamp).encode() + b"\n" + body)


def verify_request(key: bytes, timestamp: int, body: bytes, signature: str) -> bool:
    return signature.isascii() and hmac.compare_digest(
        signature, request_signature(key, timestamp, body)
    )


# -- signed payloads: HTTP answers and MQTT batches and acks (integration.md, "Identity") -----
# One rule for every payload that is not a signed JSON message: HMAC-SHA256 with the cabinet's
# key over ``timestamp + "\n" + payload bytes``, carried as ``X-Timestamp``/``X-Signature``
# headers on HTTP and as the MQTT v5 user properties ``x-timestamp``/``x-signature``.
TIMESTAMP_PROPERTY = "x-timestamp"
SIGNATURE_PROPERTY = "x-signature"


def signed_properties(key: bytes, payload: bytes, now: float) -> dict[str, str]:
    """``{"x-timestamp": ..., "x-signature": ...}`` for ``payload`` sent at ``now``."""
    ts = int(now)
    return {
        TIMESTAMP_PROPERTY: str(ts),
        SIGNATURE_PROPERTY: request_signature(key, ts, payload),
    }


def check_signed(
    key: bytes,
    timestamp: str | None,
    signature: str | None,
    payload: bytes,
    now: float | None = None,
    skew_s: float | None = None,
) -> str | None:
    """Why a signed payload is refused, or None when it is good.

    ``skew_s`` (with ``now``) also refuses a timestamp further than that from ``now``; without
    it only the signature counts (a replayed ack or batch is harmless: ids are stored once).
    """
    if timestamp is None or signature is None:
        return "unsigned"
    if not (timestamp.isascii() and timestamp.isdigit() and 0 < len(timestamp) <= 12):
        return "timestamp is not Unix seconds"
    ts = int(timestamp)
    if skew_s is not None and now is not None and abs(now - ts) > skew_s:
        return "clock skew"
    if not verify_request(key, ts, payload, signature):
        return "bad signature"
    return None
