"""The fleet API's pure parts: folding inventory records (any order, the same lanes), reading
an event record, repricing a catalogue, the review rule. No database, no HTTP."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.alarms import event_row
from central.auth import AuthError
from central.fleet_actions import repriced
from central.fleet_view import apply_inventory, needs_review
from tests.central.test_http import EXAMPLE_CATALOG

RECORDS = [
    (2, "2026-06-01T08:00:00Z", {"reason": "restock", "lanes": [
        {"shelf": "S1", "sku": "a", "count": 6, "expires_on": "2027-01-01"},
        {"shelf": "S2", "sku": "b", "count": 4, "expires_on": None}]}),
    (3, "2026-06-02T08:00:00Z", {"reason": "sale", "lanes": [
        {"shelf": "S1", "sku": "a", "count": 5}]}),
    (5, "2026-06-03T08:00:00Z", {"reason": "sale", "lanes": [
        {"shelf": "S2", "sku": "b", "count": 3}]}),
    (7, "2026-06-09T08:00:00Z", {"reason": "restock", "lanes": [
        {"shelf": "S1", "sku": "a", "count": 9, "expires_on": "2027-03-01"},
        {"shelf": "S2", "sku": "b", "count": 3}]}),
    (8, "2026-06-10T08:00:00Z", {"reason": "sale", "lanes": [
        {"shelf": "S1", "sku": "a", "count": 8}, {"shelf": "S9", "sku": "x", "count": -1},
        "junk", {"shelf": "S3", "sku": "c", "count": True}]}),
]  # fmt: skip


def fold(order: list[int]) -> dict:
    lanes: dict = {}
    for i in order:
        seq, at, body = RECORDS[i]
        apply_inventory(lanes, seq, at, body)
    return {k: vars(v) for k, v in lanes.items()}


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(len(RECORDS))))
def test_inventory_records_fold_to_the_same_lanes_in_any_order(order: list[int]) -> None:
    assert fold(list(order)) == {
        ("S1", "a"): {"count": 8, "seq": 8, "at": "2026-06-10T08:00:00Z",
                      "expires_on": "2027-03-01", "expires_seq": 7,
                      "restocked_at": "2026-06-09T08:00:00Z", "restock_seq": 7},
        ("S2", "b"): {"count": 3, "seq": 7, "at": "2026-06-09T08:00:00Z",
                      "expires_on": None, "expires_seq": 2,
                      "restocked_at": "2026-06-09T08:00:00Z", "restock_seq": 7},
    }  # fmt: skip


def test_an_event_record_is_read_as_the_cabinet_sends_it() -> None:
    body = {"id": "e1", "kind": "door_forced", "severity": "alarm", "device": "D1",
            "detail": {"door": "D1"}}  # fmt: skip
    row = event_row("r1", "QH-0001", 4, "2026-11-28T09:00:00Z", body)
    assert (row.kind, row.severity, row.device, json.loads(row.detail)) == (
        "door_forced", "alarm", "D1", {"door": "D1"}
    )  # fmt: skip
    # no severity: the cabinet's default, an alarm; detail given flat: the rest of the body
    flat = event_row("r2", "QH-0001", 5, "2026-11-28T09:00:00Z", {"kind": "tamper", "x": 1})
    assert (flat.severity, flat.device, json.loads(flat.detail)) == ("alarm", None, {"x": 1})
    nulled = event_row("r3", "QH-0001", 6, "2026-11-28T09:00:00Z", {"kind": "k", "severity": None})
    assert nulled.severity == "info"


def test_a_price_change_is_the_next_catalogue_version() -> None:
    new = repriced(EXAMPLE_CATALOG, {"zr-rice-5kg": 4800})
    assert new["version"] == EXAMPLE_CATALOG["version"] + 1
    prices = {p["sku"]: p["price_fen"] for p in new["products"]}
    old = {p["sku"]: p["price_fen"] for p in EXAMPLE_CATALOG["products"]}
    assert prices == {**old, "zr-rice-5kg": 4800}
    assert EXAMPLE_CATALOG["products"][0]["price_fen"] == 4500  # the old one is untouched
    for bad in ({"nope": 100}, {"zr-rice-5kg": 0}, {"zr-rice-5kg": 10**7}, {"zr-rice-5kg": 1.5}):
        with pytest.raises(AuthError) as e:
            repriced(EXAMPLE_CATALOG, bad)
        assert e.value.status == 400


@pytest.mark.parametrize(
    ("confidence", "body", "review"),
    [
        (0.998, {}, False),
        (0.7, {}, False),
        (0.69, {}, True),
        (0.95, {"review": True}, True),
        (None, {}, False),
        (None, {"review": "yes"}, False),
    ],
)
def test_which_sales_go_to_the_review_queue(confidence, body, review) -> None:
    assert needs_review(confidence, body) is review
