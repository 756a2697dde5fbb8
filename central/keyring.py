"""Secrets at rest under the service's master key: cabinet keys, staff card UIDs.

The master key is 32 random bytes, written as 64 hex digits on one line in a file only the
service user may read (``--master-key FILE``, default ``/etc/kiosk-central/master.key``;
``kiosk central master-key new FILE`` makes one). Each secret is sealed with AES-256-GCM: a
random 96-bit nonce, and the secret's purpose and owner as associated data (``cabinet-key:
QH-0001``), so a sealed value copied into another row or column does not open. The stored
form is text: ``v1.<nonce hex>.<ciphertext+tag hex>``.

A wrong master key is found at start (``Keyring.check``): the service refuses to run with
one clear line rather than failing on the first cabinet.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk import signing

DEFAULT_PATH = Path("/etc/kiosk-central/master.key")
_PREFIX = "v1"


class KeyringError(Exception):
    """The master key is missing, unreadable, malformed, or not the one the data was sealed
    with (the message is one line for the operator)."""


def load_master_key(path: str | Path) -> bytes:
    """The master key from its file (the same 64-hex-digit form as a cabinet's key file)."""
    p = Path(path)
    if not p.exists():
        raise KeyringError(
            f"master key {p}: no such file (make one with `kiosk central master-key new {p}`)"
        )
    try:
        return signing.load_key(p)
    except signing.KeyFileError as e:
        raise KeyringError(f"master key {e}") from None


def new_master_key(path: str | Path) -> Path:
    """Write a fresh master key (mode 0600); refuses to overwrite one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(os.urandom(32).hex() + "\n")
    return p


class Keyring:
    def __init__(self, master_key: bytes):
        if len(master_key) != 32:
            raise KeyringError("the master key is 32 bytes")
        self._aead = AESGCM(master_key)

    @classmethod
    def from_file(cls, path: str | Path) -> Keyring:
        return cls(load_master_key(path))

    def seal(self, secret: bytes, purpose: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret, purpose.encode("utf-8"))
        return f"{_PREFIX}.{nonce.hex()}.{sealed.hex()}"

    def open(self, text: str, purpose: str) -> bytes:
        """The secret sealed as ``text`` for ``purpose``; ``KeyringError`` when it does not
        open (another master key, another purpose, or damaged)."""
        try:
            prefix, nonce_hex, sealed_hex = text.split(".")
            if prefix != _PREFIX:
                raise ValueError(prefix)
            return self._aead.decrypt(
                bytes.fromhex(nonce_hex), bytes.fromhex(sealed_hex), purpose.encode("utf-8")
            )
        except (ValueError, InvalidTag):
            raise KeyringError(
                f"a sealed {purpose.split(':')[0]} does not open with this master key"
            ) from None

    def check(self, samples: list[tuple[str, str]]) -> None:
        """Open each (sealed text, purpose): ``KeyringError`` on the first that does not (the
        service runs this on a few stored secrets at start)."""
        for text, purpose in samples:
            self.open(text, purpose)
