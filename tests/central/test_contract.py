"""The contract's one decoder (kiosk.contract): strict JSON, and every hostile input of the issue
refused with a reason (the batch answered with nothing, or the record rejected), never a crash."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from kiosk import catalog, contract, signing, wire
from kiosk.contract import ContractError
from sync import inbound

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))
AT = "2026-11-28T09:31:12.004Z"


def sale(**changes) -> dict:
    body = {
        "id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "session": "s-1",
        "door": "D1",
        "opened_at": AT,
        "closed_at": AT,
        "items": [
            {"sku": "zr-rice-5kg", "qty": 1, "unit_price_fen": 4500, "cert_no": "FP-1"},
            {"sku": "hs-tea-100g", "qty": 2, "unit_price_fen": 3800, "supplier": "hs"},
        ],
        "total_fen": 12100,
        "payment": {"method": "card", "account": "0" * 32, "status": "deferred"},
        "confidence": 0.998,
        "catalog_version": 7,
    }
    body.update(changes)
    return body


def record(body: dict, type_: str = "sale", seq: int = 1, rid: str = "r-1", **more) -> dict:
    return {"id": rid, "seq": seq, "type": type_, "at": AT, "body": body, **more}


def batch(*records: dict) -> bytes:
    return json.dumps({"batch": "b-1", "records": list(records)}).encode()


def rejected(data: bytes) -> dict[str, str]:
    return {r.id: r.why for r in contract.decode_batch(data).rejected}


# -- strict JSON ------------------------------------------------------------------------------
def test_a_well_formed_batch_decodes_with_unknown_keys_kept():
    body = sale(newer_field={"x": [1, 2]})
    b = contract.decode_batch(batch(record(body), record({"kind": "x"}, "event", 2, "r-2")))
    assert b.batch == "b-1" and b.rejected == () and b.dropped == 0
    assert b.records[0] == contract.UpRecord("r-1", 1, "sale", AT, body)
    assert b.records[1].body == {"kind": "x"}


def test_seq_2_to_the_70_never_reaches_anything():
    with pytest.raises(ContractError, match="integer out of range"):
        contract.decode_batch(batch(record(sale(), seq=2**70)))
    assert "seq" in rejected(batch(record(sale(), seq=2**53 + 1)))["r-1"]
    assert contract.loads(str(-(2**63))) == -(2**63)
    with pytest.raises(ContractError):
        contract.loads("1" + "0" * 5000)  # beyond int()'s own digit limit too


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000, "[" * 33 + "]" * 33],
    ids=["open-arrays", "open-objects", "balanced-arrays", "depth-33"],
)
def test_deep_nesting_is_refused_without_recursion_error(text):
    with pytest.raises(ContractError, match="nested deeper than 32"):
        contract.loads(text)
    with pytest.raises(ContractError):
        contract.decode_batch(text.encode())


def test_depth_32_is_fine_and_brackets_inside_strings_do_not_count():
    assert contract.loads("[" * 32 + "]" * 32) is not None
    tricky = json.dumps({"a": "[[[[" * 20, "b": ['\\"[{', "]]]}", ""], "c": "\\\\"})
    assert contract.loads(tricky)["a"] == "[[[[" * 20


@pytest.mark.parametrize(
    "data",
    [
        '"\ud800"',  # raw, in text
        b'"\xed\xa0\x80"',  # raw, as (invalid) UTF-8
        '"\\ud800"',  # escaped, in a value
        '{"\\udfff": 1}',  # escaped, in a key
        '["ok", {"k": "x\\uDBFFy"}]',  # escaped, nested, upper case
        '"\\ude00\\ud83d"',  # a pair in the wrong order
    ],
)
def test_lone_surrogates_are_refused(data):
    with pytest.raises(ContractError, match=r"surrogate|UTF-8"):
        contract.loads(data)


def test_escaped_pairs_and_escaped_backslashes_are_fine():
    assert contract.loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert contract.loads('"\\\\ud800"') == "\\ud800"  # a backslash, then text


@pytest.mark.parametrize(
    "data",
    ['{"a": 1, "a": 2}', '{"x": {"a": 1, "b": {"c": 1, "c": 1}}}', '[{"id": 1}, {"k": 1, "k": 1}]'],
)
def test_duplicated_keys_are_refused_at_any_depth(data):
    with pytest.raises(ContractError, match="duplicated key"):
        contract.loads(data)


def test_a_duplicated_key_in_a_record_refuses_the_batch():
    data = batch(record(sale())).replace(b'"door": "D1"', b'"door": "D1", "door": "D2"')
    with pytest.raises(ContractError, match="duplicated key 'door'"):
        contract.decode_batch(data)


@pytest.mark.parametrize("data", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e999", "[-1e400]"])
def test_nan_and_infinity_are_refused(data):
    with pytest.raises(ContractError):
        contract.loads(data)


def test_nan_in_a_batch_rejects_only_its_record():
    good = json.dumps(record(sale(), rid="good"))
    bad = json.dumps(record(sale(), rid="bad", seq=2)).replace("0.998", "NaN")
    huge = json.dumps(record({"kind": "x", "v": 1}, "event", 3, "huge")).replace("1}", "1e999}")
    data = f'{{"batch": "b", "records": [{good}, {bad}, {huge}]}}'.encode()
    b = contract.decode_batch(data)
    assert [r.id for r in b.records] == ["good"]
    assert {r.id: r.why for r in b.rejected} == {
        "bad": "NaN or Infinity is not JSON",
        "huge": "NaN or Infinity is not JSON",
    }


def test_text_holding_nul_rejects_only_its_record():
    b = contract.decode_batch(
        batch(record({"kind": "a\x00b"}, "event", 1, "nul"), record({"kind": "ok"}, "event", 2))
    )
    assert {r.id: r.why for r in b.rejected} == {"nul": "text holds U+0000"}
    assert [r.id for r in b.records] == ["r-1"]


def test_size_utf8_and_type_limits():
    with pytest.raises(ContractError, match="over 10 bytes"):
        contract.loads(b"[" + b" " * 20 + b"]", max_bytes=10)
    with pytest.raises(ContractError, match="not UTF-8"):
        contract.loads(b'"\xff"')
    with pytest.raises(ContractError, match="not JSON"):
        contract.loads(b"\xef\xbb\xbf{}")  # a byte order mark
    with pytest.raises(ContractError, match="not JSON"):
        contract.loads("{} {}")
    with pytest.raises(ContractError):
        contract.loads(12)  # type: ignore[arg-type]


# -- records: the ranges ----------------------------------------------------------------------
HOSTILE_SALES = {
    "total 10^12": (sale(total_fen=10**12), "total_fen must be an integer 0..10^9"),
    "qty 0": (
        sale(items=[{"sku": "zr-rice-5kg", "qty": 0, "unit_price_fen": 4500}], total_fen=0),
        "qty must be an integer 1..999",
    ),
    "sku path": (
        sale(items=[{"sku": "../../etc/passwd", "qty": 1, "unit_price_fen": 1}], total_fen=1),
        "sku must be a SKU",
    ),
    "total not the sum": (sale(total_fen=12000), "total_fen 12000 is not the sum"),
    "price 10^7+1": (
        sale(items=[{"sku": "a", "qty": 1, "unit_price_fen": 10**7 + 1}], total_fen=10**7 + 1),
        "unit_price_fen must be an integer 0..10^7",
    ),
    "sku twice": (
        sale(
            items=[{"sku": "a", "qty": 1, "unit_price_fen": 1}] * 2,
            total_fen=2,
        ),
        "listed twice",
    ),
    "201 items": (
        sale(
            items=[{"sku": f"s{i}", "qty": 1, "unit_price_fen": 0} for i in range(201)],
            total_fen=0,
        ),
        "items must be a list of at most 200",
    ),
    "qty as bool": (
        sale(items=[{"sku": "a", "qty": True, "unit_price_fen": 1}], total_fen=1),
        "qty must be",
    ),
    "confidence 2": (sale(confidence=2), "confidence must be a finite number 0..1"),
    "no total": ({k: v for k, v in sale().items() if k != "total_fen"}, "total_fen is missing"),
    "long door": (sale(door="D" * 33), "door must be text of 1..32 characters"),
}


@pytest.mark.parametrize("case", HOSTILE_SALES)
def test_a_hostile_sale_is_rejected_with_its_reason(case):
    body, why = HOSTILE_SALES[case]
    b = contract.decode_batch(batch(record(sale(), rid="ok"), record(body, seq=2, rid="bad")))
    assert [r.id for r in b.records] == ["ok"]
    assert [r.id for r in b.rejected] == ["bad"]
    assert why in b.rejected[0].why


def test_a_signed_looking_sale_is_still_checked():
    body = sale(total_fen=10**12)
    signed = signing.sign_message(KEY, body)
    assert "total_fen" in rejected(batch(record(signed)))["r-1"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"seq": 0}, "seq must be an integer 1..2^53"),
        ({"seq": "1"}, "seq must be"),
        ({"id": "x" * 65}, "id must be text of 1..64"),
        ({"id": ""}, "id must be text of 1..64"),
        ({"type": "refund"}, "type must be one of"),
        ({"at": "1999-12-31T23:59:59.000Z"}, "at must be an RFC 3339 UTC time"),
        ({"at": "2101-01-01T00:00:00Z"}, "at must be an RFC 3339 UTC time"),
        ({"at": "2026-13-01T00:00:00.000Z"}, "at must be"),
        ({"at": "yesterday"}, "at must be"),
        ({"body": []}, "body must be an object"),
        ({"body": None}, "body is missing"),
    ],
)
def test_a_record_outside_the_envelope_ranges_is_rejected(change, why):
    r = {**record(sale()), **change}
    reasons = rejected(batch(r))
    assert why in reasons[r["id"]]


def test_other_times_and_unknown_envelope_keys_are_accepted():
    for at in ("2026-11-28T09:31:12Z", "2026-11-28T17:31:12.5+08:00", "2100-12-31T23:59:59Z"):
        b = contract.decode_batch(batch({**record(sale()), "at": at, "newer": True}))
        assert b.rejected == () and b.records[0].at == at


def test_records_without_a_string_id_are_dropped_and_counted():
    b = contract.decode_batch(
        json.dumps(
            {"batch": "b", "records": [1, [], {"seq": 1}, {"id": 7}, record(sale())]}
        ).encode()
    )
    assert [r.id for r in b.records] == ["r-1"] and b.rejected == () and b.dropped == 4


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"[]", "a batch is a JSON object"),
        (b'{"records": []}', "batch id"),
        (b'{"batch": "", "records": []}', "batch id"),
        (b'{"batch": "b", "records": {}}', "list of records"),
        (json.dumps({"batch": "b", "records": [{}] * 10_001}).encode(), "at most 10000"),
    ],
)
def test_a_malformed_batch_is_refused_whole(data, why):
    with pytest.raises(ContractError, match=why):
        contract.decode_batch(data)


def test_bytes_like_batches():
    data = batch(record(sale()))
    for form in (data, bytearray(data), memoryview(data), data.decode()):
        assert [r.id for r in contract.decode_batch(form).records] == ["r-1"]


def test_a_batch_parsed_elsewhere_gets_the_same_checks():
    assert contract.decode_batch({"batch": "b", "records": [record(sale())]}).records
    for bad in (math.nan, math.inf, 2**64, "\ud800", {1: 2}, object()):
        with pytest.raises(ContractError):
            contract.decode_batch({"batch": "b", "records": [record({"kind": "x", "v": bad})]})
    deep: list = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ContractError, match="nested"):
        contract.decode_batch({"batch": "b", "records": [record({"kind": "x", "v": deep})]})


@pytest.mark.parametrize(
    ("type_", "body", "why"),
    [
        ("adjustment", {"sale": "s", "amount_fen": 1}, "adjustment: id is missing"),
        ("adjustment", {"id": "a", "sale": "s", "amount_fen": 10**9 + 1}, "amount_fen"),
        (
            "adjustment",
            {"id": "a", "sale": "s", "amount_fen": 1, "items": [{"sku": "A B", "qty": 1}]},
            "sku must be a SKU",
        ),
        ("event", {"severity": "alarm"}, "event: kind is missing"),
        ("event", {"kind": "x", "severity": "panic"}, "severity must be one of"),
        ("telemetry", {"backlog": "12"}, "backlog must be a finite number"),
        ("telemetry", {"name": "n" * 201}, "name must be text of 0..200"),
        ("cmd_result", {"cmd_id": "c"}, "ok is missing"),
        ("applied", {"kind": "planogram", "version": 1}, "kind must be one of"),
        ("applied", {"kind": "catalog", "version": 0}, "version must be an integer 1..2^53"),
        ("session", {"started_at": "1970-01-01T00:00:00.000Z"}, "started_at must be"),
        ("inventory", {"lanes": {}}, "lanes must be a list"),
    ],
)
def test_each_record_type_has_its_ranges(type_, body, why):
    assert why in (contract.check_body(type_, body) or "")


def test_check_body_of_an_unknown_type_or_a_non_object():
    assert contract.check_body("refund", {}) == "unknown record type 'refund'"
    assert contract.check_body("sale", []) == "body must be an object"
    assert contract.check_body("sale", sale()) is None


def test_one_record_is_checked_as_in_a_batch():
    assert contract.check_record(record(sale())) is None
    assert contract.check_record([]) == "a record is a JSON object"
    assert "qty" in (contract.check_record(record(sale(items=[{"sku": "a", "qty": 0}]))) or "")


# -- acks -------------------------------------------------------------------------------------
def test_acks_are_decoded_strictly_and_bounded():
    ack = contract.decode_ack(
        b'{"batch": "b", "stored": ["a"], "rejected": [{"id": "c", "why": "no"}], "x": 1}'
    )
    assert ack == wire.Ack("b", ("a",), (wire.Rejected("c", "no"),))
    assert contract.decode_ack({"stored": []}, "b2") == wire.Ack("b2", (), ())
    long = contract.decode_ack({"batch": "b", "rejected": [{"id": "c", "why": "w" * 10_000}]})
    assert len(long.rejected[0].why) == contract.MAX_WHY
    # ids no cabinet makes name none of its records: left out, the rest of the ack counts
    odd = {"batch": "b", "stored": ["a", "", "x" * 65], "rejected": [{"id": "y" * 65}]}
    assert contract.decode_ack(odd) == wire.Ack("b", ("a",), ())
    for bad in (
        b'{"batch": "b", "batch": "c"}',
        b'{"batch": "\\ud800"}',
        b'{"batch": "b", "stored": [1]}',
        b'{"batch": "b", "stored": "a"}',
        b'{"batch": "b", "rejected": [{"why": "no id"}]}',
        b"[" * 50_000,
        json.dumps({"batch": "b", "stored": ["a"] * 10_001}).encode(),
        b"{}",
    ):
        with pytest.raises(ContractError):
            contract.decode_ack(bad)
        with pytest.raises(wire.WireError):  # what the agent catches
            wire.parse_ack(bad)
    # an answer parsed elsewhere (HTTP) gets what loads would refuse refused too
    for bad_why in ("\ud800", math.nan, json.loads("[" * 40 + "]" * 40)):
        with pytest.raises(ContractError):
            contract.decode_ack({"batch": "b", "rejected": [{"id": "c", "why": bad_why}]})


# -- down: unknown keys refused, ranges kept --------------------------------------------------
def test_config_accounts_and_command_args():
    assert contract.check_config({"door_open_alarm_s": 90, "unlock_timeout_s": 2.5}) is None
    assert contract.check_config({"colour": 1}) == "unknown config key 'colour'"
    assert (
        contract.check_config({"unlock_timeout_s": math.nan}) == "unlock_timeout_s must be 1..120"
    )
    assert contract.check_config({"unlock_timeout_s": True}) == "unlock_timeout_s must be 1..120"
    good = {"account": "0" * 32, "name": "王医生", "status": "active", "offline_limit_fen": 1}
    assert contract.check_accounts([good]) is None
    assert "unknown key 'pin'" in (contract.check_accounts([{**good, "pin": "1"}]) or "")
    assert "listed twice" in (contract.check_accounts([good, good]) or "")
    assert "status" in (contract.check_accounts([{**good, "status": "vip"}]) or "")
    assert contract.check_command_args("set_price", {"sku": "zr-rice-5kg", "price_fen": 1}) is None
    assert "sku must be a SKU" in (
        contract.check_command_args("set_price", {"sku": "../x", "price_fen": 1}) or ""
    )
    assert "unknown key 'x'" in (contract.check_command_args("reboot", {"x": 1}) or "")
    assert contract.check_command_args("format_disk", {}) == "unknown command 'format_disk'"
    refund = {"sale": "s", "reason": "damaged"}
    assert contract.check_command_args("refund", refund) == "refund: needs items or amount_fen"
    assert contract.check_command_args("refund", {**refund, "amount_fen": 100}) is None
    items = [{"sku": "zr-rice-5kg", "qty": 1}]
    assert contract.check_command_args("refund", {**refund, "items": items}) is None
    for bad in ([1], [{"sku": "zr-rice-5kg"}], [{"sku": "a", "qty": 1, "price": 1}]):
        assert contract.check_command_args("refund", {**refund, "items": bad})


def catalog_doc() -> dict:
    return json.loads((ROOT / "examples" / "catalog.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("where", "value", "why"),
    [
        ("unit_g", math.inf, "products[1].unit_g: must be a finite number, not inf"),
        ("unit_g", math.nan, "products[1].unit_g: must be a finite number, not nan"),
        ("unit_g", 100_001, "products[1].unit_g: 100001 must be at most 100000"),
        ("unit_sd_g", 10_000.5, "products[1].unit_sd_g: 10000.5 must be at most 10000"),
        ("sku", "../../etc/passwd", "products[1].sku: '../../etc/passwd' is not a SKU"),
        ("sku", "Rice", "products[1].sku: 'Rice' is not a SKU"),
        ("colour", "red", "products[1].colour: unknown key"),
        ("zh", "米" * 101, "products[1].zh: must be at most 100 characters"),
        ("shelf_life_days", 10**6, "products[1].shelf_life_days: 1000000 must be at most 36500"),
    ],
)
def test_catalogue_ranges(where, value, why):
    doc = catalog_doc()
    doc["products"][0][where] = value
    problem = contract.check_catalog(doc) or ""
    assert problem.startswith(why)
    with pytest.raises(catalog.CatalogError) as e:
        catalog.parse_catalog(doc)
    assert e.value.problems[0].startswith(why)


def test_catalogue_version_and_top_level_keys():
    assert contract.check_catalog(catalog_doc()) is None
    doc = {**catalog_doc(), "version": 2**53 + 1}
    assert contract.check_catalog(doc) == f"version: {2**53 + 1} must be at most {2**53}"
    assert contract.check_catalog({**catalog_doc(), "extra": 1}) == "extra: unknown key"


def test_catalogue_files_are_read_as_strict_json(tmp_path):
    text = (ROOT / "examples" / "catalog.json").read_text(encoding="utf-8")
    path = tmp_path / "c.json"
    path.write_text(text.replace('"version": 1', '"version": 1, "version": 2', 1), "utf-8")
    with pytest.raises(catalog.CatalogError, match=r"c\.json: not valid JSON: duplicated key"):
        catalog.load_catalog_file(path)
    path.write_text(text.replace('"unit_sd_g": 15', '"unit_sd_g": NaN', 1), "utf-8")
    with pytest.raises(catalog.CatalogError, match="NaN is not JSON"):
        catalog.load_catalog_file(path)


# -- the cabinet's inbound checks: a refusal, never an exception -------------------------------
def signed_command(**args) -> dict:
    return signing.sign_message(
        KEY,
        {
            "cmd_id": "c-1",
            "cmd": "set_price",
            "args": args or {"sku": "zr-rice-5kg", "price_fen": 4600},
            "expires_at": wire.iso(time.time() + 600),
        },
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000,
        b'{"cmd_id": "\\ud800", "cmd": "reboot"}',
        '{"cmd_id": "\ud800"}',
        b'{"cmd_id": "a", "cmd_id": "b"}',
        b'{"cmd_id": "a", "args": {"price_fen": 1180591620717411303424}}',
        b'{"version": NaN}',
        b"\xff\xfe",
    ],
)
def test_hostile_inbound_messages_are_refusals(payload):
    r = inbound.check_command(KEY, payload, time.time())
    assert isinstance(r, inbound.Refusal) and r.why.startswith("not accepted JSON")
    for kind in ("catalog", "config", "accounts"):
        d = inbound.check_down(kind, KEY, payload, 0)
        assert isinstance(d, inbound.Refusal) and d.ref is None


def test_signed_commands_and_downs_use_the_contract():
    assert isinstance(inbound.check_command(KEY, signed_command(), time.time()), inbound.Command)
    bad = signed_command(sku="../../etc/passwd", price_fen=1)
    r = inbound.check_command(KEY, json.dumps(bad).encode(), time.time())
    assert isinstance(r, inbound.Refusal) and r.ref == "c-1" and "SKU" in r.why
    doc = catalog_doc()
    doc["products"][0]["unit_g"] = 1e9
    m = signing.sign_message(KEY, {"version": 1, "catalog": doc})
    r = inbound.check_down("catalog", KEY, json.dumps(m).encode(), 0)
    assert isinstance(r, inbound.Refusal) and "unit_g" in r.why and r.ref == "1"
    m = signing.sign_message(KEY, {"version": 2**60, "config": {}})
    r = inbound.check_down("config", KEY, m, 0)
    assert isinstance(r, inbound.Refusal) and "version" in r.why


# -- the ranges table is the one in integration.md --------------------------------------------
def test_the_ranges_section_of_integration_md_is_the_table():
    doc = (ROOT / "docs" / "integration.md").read_text(encoding="utf-8")
    section = doc.split("## Ranges\n", 1)[1].split("\n## ", 1)[0]
    assert contract.ranges_markdown() in section
    assert len(contract.RANGES) == len({(r.where, r.field, r.rule) for r in contract.RANGES})
