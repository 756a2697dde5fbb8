"""Secrets sealed under the master key open only with it, only for their purpose."""

from __future__ import annotations

import os
import stat

import pytest

from central.keyring import Keyring, KeyringError, load_master_key, new_master_key


def test_a_sealed_secret_opens_with_its_master_key_and_purpose_only(tmp_path):
    path = new_master_key(tmp_path / "etc" / "master.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = Keyring.from_file(path)
    sealed = ring.seal(b"\x00" * 32, "cabinet-key:QH-0001")
    assert b"\x00" * 32 not in bytes.fromhex(sealed.split(".")[2])
    assert ring.open(sealed, "cabinet-key:QH-0001") == b"\x00" * 32
    assert ring.seal(b"x", "p") != ring.seal(b"x", "p")  # a fresh nonce every time
    with pytest.raises(KeyringError, match="does not open"):
        ring.open(sealed, "cabinet-key:QH-0002")  # copied into another cabinet's row
    with pytest.raises(KeyringError, match="does not open"):
        Keyring(os.urandom(32)).open(sealed, "cabinet-key:QH-0001")  # another master key
    for damaged in (sealed[:-2] + "00", "v2" + sealed[2:], "not sealed", ""):
        with pytest.raises(KeyringError):
            ring.open(damaged, "cabinet-key:QH-0001")
    with pytest.raises(KeyringError):
        ring.check([(sealed, "cabinet-key:QH-0001"), (sealed, "card-uid:1")])


def test_a_missing_or_malformed_master_key_is_one_clear_line(tmp_path):
    with pytest.raises(KeyringError, match=r"no such file .*master-key new"):
        load_master_key(tmp_path / "none.key")
    bad = tmp_path / "bad.key"
    bad.write_text("12345\n")
    with pytest.raises(KeyringError, match="64 hex digits"):
        load_master_key(bad)
    with pytest.raises(FileExistsError):  # never overwrites the key everything is sealed with
        new_master_key(new_master_key(tmp_path / "m.key"))
