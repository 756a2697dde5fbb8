"""The test vectors of sync.md, and the ways a signature must fail."""

import pytest

from kiosk import signing

KEY = bytes(range(32))
COMMAND = {
    "cmd_id": "c-0001",
    "cmd": "open_door",
    "args": {"door": "D1", "reason": "补货 restock"},
    "expires_at": "2026-11-28T10:00:00Z",
}
COMMAND_SIG = "c6d06b4a4176260465bd7f512ea97362dacec266f516c366fe9447160d239dcc"


def test_canonical_form_of_the_spec_command():
    assert signing.canonical(COMMAND).decode() == (
        '{"args":{"door":"D1","reason":"补货 restock"},"cmd":"open_door",'
        '"cmd_id":"c-0001","expires_at":"2026-11-28T10:00:00Z"}'
    )


def test_command_signature_vector():
    signed = signing.sign_message(KEY, COMMAND)
    assert signed["sig"] == COMMAND_SIG
    assert signing.verify_message(KEY, signed)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.update(cmd="reboot"),
        lambda m: m["args"].update(door="D2"),
        lambda m: m.update(sig="0" * 64),
        lambda m: m.pop("sig"),
        lambda m: m.update(sig=None),
    ],
)
def test_a_changed_message_fails_verification(tamper):
    signed = signing.sign_message(KEY, COMMAND)
    signed["args"] = dict(signed["args"])
    tamper(signed)
    assert not signing.verify_message(KEY, signed)


def test_another_key_fails_verification():
    assert not signing.verify_message(bytes(32), signing.sign_message(KEY, COMMAND))


def test_card_account_vector_and_case_insensitivity():
    assert signing.card_account(KEY, "04a1b2c3d4") == "1847ec8a0df92538223ca2572ea4cfd3"
    assert signing.card_account(KEY, "04A1B2C3D4") == "1847ec8a0df92538223ca2572ea4cfd3"


def test_http_signature_vector():
    body = b'{"batch":"b1","records":[]}'
    sig = "2bd29dc3fb9cdbc8418bf6d2935e2ae78c56cb94a749f6bf5e8adaefe840d040"
    assert signing.request_signature(KEY, 1796032800, body) == sig
    assert signing.verify_request(KEY, 1796032800, body, sig)
    assert not signing.verify_request(KEY, 1796032801, body, sig)


@pytest.mark.parametrize("content", ["", "abc", "00" * 31, "zz" * 32, "00" * 33])
def test_bad_key_files_are_refused(tmp_path, content):
    path = tmp_path / "cabinet.key"
    path.write_text(content)
    with pytest.raises(signing.KeyFileError, match="64 hex digits"):
        signing.load_key(path)


def test_key_file_roundtrip(tmp_path):
    path = tmp_path / "cabinet.key"
    path.write_text(KEY.hex() + "\n")
    assert signing.load_key(path) == KEY
