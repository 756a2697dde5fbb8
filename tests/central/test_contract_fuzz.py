"""Hypothesis against the contract's decoder: whatever arrives, the answer is a decoded value or
a ``ContractError``, never another exception; every record of a batch is accounted for; and a
well-formed batch comes out as it went in, unknown keys included."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import clock, contract, wire
from kiosk.contract import ContractError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

# Text with every code point, lone surrogates included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
# Pieces that hit the strict parser's edges when joined.
TOKENS = [
    "[", "]", "{", "}", '"', "\\", ":", ",", " ", "1", "-", "0.5", "1e999", "-1e400", "NaN",
    "Infinity", "true", "null", '"a"', '"\\ud800"', '"\\udfff\\ud800"', '"\\ud83d\\ude00"',
    '"\\\\"', '"\\""', "99999999999999999999", "-9223372036854775808", '{"a":1,"a":2}',
    '"\x00"', "\ufeff", "\ud800", '"\\u0000"',
]  # fmt: skip
token_text = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


def _raises_only_contract_error(f, *args) -> Any:
    try:
        return f(*args)
    except ContractError as e:
        assert str(e)
        return e


@FAST
@given(
    data=st.binary(max_size=200)
    | any_text
    | token_text
    | token_text.map(lambda t: t.encode("utf-8", "surrogatepass"))
)
def test_loads_raises_nothing_but_contract_error(data):
    value = _raises_only_contract_error(contract.loads, data)
    if not isinstance(value, ContractError):
        json.dumps(value, allow_nan=False)  # what it accepted is JSON again
        contract.check_tree(value)


json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | any_text
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=15,
)
record_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=70) | json_values,
        "seq": st.integers(-5, 2**60) | json_values,
        "type": st.sampled_from(wire.RECORD_TYPES) | json_values,
        "at": st.sampled_from(["2026-11-28T09:31:12.004Z", "1970-01-01T00:00:00Z", "x"])
        | json_values,
        "body": st.dictionaries(
            st.sampled_from(["items", "total_fen", "kind", "ok", "version", "sku", "x"]),
            json_values,
        )
        | json_values,
    },
)
batch_like = st.fixed_dictionaries(
    {"batch": st.text(min_size=1, max_size=64), "records": st.lists(record_like | json_values)}
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@FAST
@given(value=batch_like | json_values, parsed=st.booleans())
def test_decode_batch_accounts_for_every_record(value, parsed):
    b = _raises_only_contract_error(contract.decode_batch, value if parsed else _encode(value))
    if isinstance(b, ContractError):
        return
    records = value["records"]
    with_ids = [r for r in records if isinstance(r, dict) and isinstance(r.get("id"), str)]
    assert b.dropped == len(records) - len(with_ids)
    assert len(b.records) + len(b.rejected) == len(with_ids)
    assert Counter(r["id"] for r in with_ids) == Counter(
        [r.id for r in b.records] + [r.id for r in b.rejected]
    )
    for r in b.rejected:
        assert r.why
    for r in b.records:
        assert contract.check_body(r.type, r.body) is None


# -- well-formed batches ----------------------------------------------------------------------
sku = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True)
# Text a cabinet can send: any Unicode but lone surrogates (not UTF-8) and U+0000.
good_chars = st.characters(codec="utf-8", exclude_characters="\x00")
ident = st.text(good_chars, min_size=1, max_size=64)
times = st.datetimes(datetime(2000, 1, 1), datetime(2100, 12, 31), timezones=st.just(UTC)).map(
    clock.iso
)
unknown = st.dictionaries(
    st.sampled_from(["newer", "x-extra", "flags"]),
    st.none()
    | st.integers(-1000, 1000)
    | st.text(good_chars, max_size=10)
    | st.lists(st.booleans()),
    max_size=2,
)


@st.composite
def sale_body(draw) -> dict:
    skus = draw(st.lists(sku, min_size=1, max_size=5, unique=True))
    items = [
        {
            "sku": s,
            "qty": draw(st.integers(1, 999)),
            "unit_price_fen": draw(st.integers(0, 10**6)),
        }
        for s in skus
    ]
    return {
        **draw(unknown),
        "id": draw(ident),
        "items": items,
        "total_fen": sum(i["qty"] * i["unit_price_fen"] for i in items),
        "opened_at": draw(times),
        "payment": {"method": "card", "status": "deferred", "account": None},
        "confidence": draw(st.floats(0, 1)),
        "catalog_version": draw(st.integers(1, 2**53)),
    }


bodies = st.one_of(
    st.tuples(st.just("sale"), sale_body()),
    st.tuples(
        st.just("adjustment"),
        st.fixed_dictionaries(
            {"id": ident, "sale": ident, "amount_fen": st.integers(0, 10**9)}, optional={}
        ).flatmap(lambda d: unknown.map(lambda u: {**u, **d})),
    ),
    st.tuples(
        st.just("event"),
        st.fixed_dictionaries(
            {"kind": ident, "severity": st.sampled_from(contract.SEVERITIES)},
            optional={"device": st.none() | st.text(good_chars, max_size=64), "detail": unknown},
        ),
    ),
    st.tuples(
        st.just("telemetry"),
        st.fixed_dictionaries(
            {"backlog": st.integers(0, 10**6), "uptime_s": st.floats(0, 1e9)},
            optional={"devices": unknown, "mqtt": st.booleans()},
        ),
    ),
    st.tuples(st.just("cmd_result"), st.fixed_dictionaries({"cmd_id": ident, "ok": st.booleans()})),
    st.tuples(
        st.just("applied"),
        st.fixed_dictionaries(
            {"kind": st.sampled_from(wire.DOWN_KINDS), "version": st.integers(1, 2**53)}
        ),
    ),
    st.tuples(st.just("session"), unknown),
    st.tuples(st.just("inventory"), unknown),
)


@FAST
@given(
    batch=ident,
    drawn=st.lists(st.tuples(bodies, times, unknown), max_size=8),
    encoded=st.booleans(),
)
def test_a_well_formed_batch_round_trips(batch, drawn, encoded):
    records = [
        {**extra, "id": f"r-{n}", "seq": n, "type": t, "at": at, "body": body}
        for n, ((t, body), at, extra) in enumerate(drawn, 1)
    ]
    value = {"batch": batch, "records": records}
    b = contract.decode_batch(json.dumps(value, ensure_ascii=False).encode() if encoded else value)
    assert b.batch == batch and b.rejected == () and b.dropped == 0
    assert [(r.id, r.seq, r.type, r.at, r.body) for r in b.records] == [
        (r["id"], r["seq"], r["type"], r["at"], r["body"]) for r in records
    ]
