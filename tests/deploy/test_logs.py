"""Log lines: one per event, key=value, and no card number, PIN or key ever in them."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import logs

ROOT = Path(__file__).resolve().parents[2]
SESSION = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"  # a UUIDv7: must stay readable
LINE = re.compile(r'^ts=\S+Z level=\w+ event=\S+( [A-Za-z_][\w.-]*=("([^"\\]|\\.)*"|\S+))*$')


def lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def fields(line: str) -> dict[str, str]:
    return {
        k: v[1:-1] if v.startswith('"') else v
        for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)
    }


def test_one_key_value_line_per_event(out: io.StringIO) -> None:
    logs.log("door_opened", door="D1", session=SESSION, grams=15060.42, ok=True, n=None)
    (line,) = lines(out)
    assert LINE.match(line), line
    f = fields(line)
    assert f["level"] == "info" and f["event"] == "door_opened"
    assert f["door"] == "D1" and f["session"] == SESSION
    assert f["grams"] == "15060.4" and f["ok"] == "true" and f["n"] == "-"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", f["ts"])


def test_values_with_spaces_are_quoted_and_newlines_stay_on_the_line(out: io.StringIO) -> None:
    logs.warning("sale_recorded", note='补货 restock "now"\nsecond line', empty="")
    (line,) = lines(out)
    assert LINE.match(line), line
    assert 'note="补货 restock \\"now\\"\\nsecond line"' in line
    assert 'empty=""' in line
    assert "level=warning" in line


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("card", "04A1B2C3"),
        ("uid", "04a1b2c3d4e5f6"),
        ("payment_code", "134567890123456789"),
        ("code", "anything at all"),
        ("pin", "1234"),
        ("operator_pin", "987654"),
        ("key", "00" * 32),
        ("secret", "hunter2"),
        ("api_token", "t0k3n"),
        ("cardUid", "04A1B2C3"),
    ],
)
def test_secret_fields_are_masked(out: io.StringIO, key: str, value: str) -> None:
    logs.log("auth_attempt", **{key: value}, door="D1")
    text = out.getvalue()
    assert value not in text
    assert fields(text)[key] == logs.MASK
    assert fields(text)["door"] == "D1"


@pytest.mark.parametrize(
    "secret",
    ["04A1B2C3", "04a1b2c3d4e5f6", "134567890123456789", "286543210987654321", "ab" * 32],
)
def test_card_numbers_payment_codes_and_keys_are_masked_anywhere(
    out: io.StringIO, secret: str
) -> None:
    logs.log(f"scanned {secret}", detail=f"read {secret} at D1", items=[{"note": secret}])
    logging.getLogger("pymodbus.client").warning("unexpected %s from scanner", secret)
    try:
        raise ValueError(f"bad code {secret}")
    except ValueError:
        logs.error("scanner_failed")
    text = out.getvalue()
    assert secret not in text and secret.upper() not in text
    assert len(lines(out)) == 3


def test_ids_hashes_and_numbers_people_need_are_kept(out: io.StringIO) -> None:
    account = "1847ec8a0df92538223ca2572ea4cfd3"  # the keyed hash, sent to the centre anyway
    logs.log("sale", session=SESSION, account=account, total_fen=4500, status_code=200)
    f = fields(out.getvalue())
    assert f["session"] == SESSION and f["account"] == account
    assert f["total_fen"] == "4500" and f["status_code"] == "200"


def test_library_records_share_the_format_and_the_level(out: io.StringIO) -> None:
    logs.setup("warning", stream=out)
    logging.getLogger("sync.mqtt").info("connected")
    logging.getLogger("sync.mqtt").error("broker %s refused", "127.0.0.1:1883")
    logs.log("door_opened", door="D1")
    (line,) = lines(out)
    assert LINE.match(line), line
    f = fields(line)
    assert f["event"] == "log" and f["logger"] == "sync.mqtt" and f["level"] == "error"
    assert f["msg"] == "broker 127.0.0.1:1883 refused"


@settings(max_examples=200, deadline=None)
@given(
    uid=st.sampled_from([8, 14]).flatmap(
        lambda n: st.text("0123456789abcdefABCDEF", min_size=n, max_size=n)
    ),
    pay=st.from_regex(r"\A(1[0-5]|2[5-9]|30)[0-9]{16}\Z"),
    # What separates a code from its neighbours in a message (a code glued to letters or
    # digits is a different, longer token).
    around=st.text(" ,;:/()[]{}=\"'\t\n测试", max_size=6),
)
def test_no_scanned_code_survives_in_any_text(uid: str, pay: str, around: str) -> None:
    for secret in (uid, pay):
        text = logs.format_line("t", "info", "e", {"detail": f"{around}{secret}{around}"})
        assert secret not in text


def test_stdout_under_journald_gets_a_priority_prefix() -> None:
    # Under systemd, stdout is the journal and "<3>" makes a line an error in journalctl -p.
    code = (
        "import os, sys; from kiosk import logs; st = os.fstat(1); "
        "os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}'; "
        "logs.setup('info'); logs.error('lock_offline', door='D1')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.startswith("<3>ts=")
    assert "event=lock_offline door=D1" in done.stdout
