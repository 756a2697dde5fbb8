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
