"""Scoring of weighing results against truth (spec/weighing.md), for the regression test."""

from __future__ import annotations

import math
from typing import Any


def charged(taken: dict[str, int], prices: dict[str, int]) -> int:
    return sum(prices.get(sku, 0) * n for sku, n in taken.items())


def moves(lst: list[dict[str, str]]) -> set[tuple[str, str, str]]:
    return {(m["sku"], m["from"], m["to"]) for m in lst}


def score(results: list[dict[str, Any]], scenarios: list[dict[str, Any]]) -> dict[str, float]:
    by_id = {r["id"]: r for r in results}
    n = len(scenarios)
    exact = unc = wrong = over = 0
    lags = []
    for sc in scenarios:
        tr, r = sc["truth"], by_id[sc["id"]]
        prices = {ln["sku"]: ln["price_fen"] for sh in sc["shelves"] for ln in sh["stock"]}
        t_ok = r["taken"] == tr["taken"]
        same = (
            t_ok
            and moves(r["misplaced"]) == moves(tr["misplaced"])
            and set(r["foreign"]) == set(tr["foreign"])
            and set(r["fault"]) == set(tr["fault"])
        )
        unc += r["uncertain"]
        exact += not r["uncertain"] and same
        silent_wrong = not r["uncertain"] and not t_ok
        wrong += silent_wrong
        over += silent_wrong and charged(r["taken"], prices) > charged(tr["taken"], prices)
        lags.append(r["decided_s"] - tr["settled_s"])
    lags.sort()
    pos = 0.95 * (len(lags) - 1)
    lo = math.floor(pos)
    p95 = lags[lo] + (lags[min(lo + 1, len(lags) - 1)] - lags[lo]) * (pos - lo)
    pct = lambda k: 100.0 * k / n  # noqa: E731
    return {
        "exact": pct(exact),
        "uncertain": pct(unc),
        "silent_wrong": pct(wrong),
        "silent_overcharge": pct(over),
        "lag_p95_s": p95,
    }
