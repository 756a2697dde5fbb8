"""The presentation models, without a window: what a customer or operator would read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kiosk.snapshot import AlarmView, SessionState, SupplierView
from ui import fixtures, i18n
from ui import viewmodels as vm


@pytest.fixture(scope="module")
def fx():
    return fixtures.screens()


def test_money_is_yuan_with_two_decimals():
    assert vm.money(4500) == "¥45.00"
    assert vm.money(5) == "¥0.05"
    assert vm.money(-350) == "-¥3.50"


def test_every_fixture_routes_to_its_own_screen(fx):
    for name, (snap, nav) in fx.items():
        assert vm.route(snap, nav) == name


def test_refusal_shows_until_dismissed_then_idle(fx):
    snap, _ = fx["refused"]
    assert vm.route(snap, vm.Nav(refusal_dismissed=True)) == "idle"


def test_a_customer_session_wins_over_attract(fx):
    snap, _ = fx["door-open"]
    assert vm.route(snap, vm.Nav(attract=True)) == "door-open"


def test_operator_pages_need_a_logged_in_operator(fx):
    idle, _ = fx["idle"]
    assert vm.route(idle, vm.Nav(operator_page="alarms")) == "operator-login"
    op, _ = fx["alarms"]
    assert vm.route(op, vm.Nav(operator_page="alarms")) == "alarms"
    assert vm.route(op, vm.Nav()) == "operator-menu"  # an operator card at the idle screen


def test_wall_filters_by_category_and_keeps_catalogue_order(fx):
    snap, _ = fx["idle"]
    drinks = vm.wall(snap, "zh", "drinks")
    assert drinks and all(
        p.category == "drinks" for p in snap.products if p.sku in {c.sku for c in drinks}
    )
    cards = vm.wall(snap, "zh")
    assert len(cards) == len(snap.products)
    assert [c.sku for c in cards] == [p.sku for p in snap.products]
    gone = vm.wall(vm.with_stock(snap, cards[0].sku, 0), "zh")
    assert gone[0].sku == cards[0].sku and gone[0].status == "sold_out"  # stays in place


def test_product_card_labels(fx):
    snap, _ = fx["idle"]
    by = {c.sku: c for c in vm.wall(snap, "zh")}
    assert by["zr-rice-5kg"].price == "¥45.00"
    assert by["zr-rice-5kg"].stock == "有货 4"
    assert by["zr-rice-5kg"].origin == "嘉积镇 · 忠锐农特产"
    assert by["zr-rice-5kg"].badge == "扶贫产品"
    assert by["zr-chili-sauce"].stock == "仅剩 2"
    assert by["hs-motherwort"].stock == "售罄"  # not on any shelf
    assert by["dl-waxapple-1.5kg"].stock == "暂停销售"  # expired batch
    en = {c.sku: c for c in vm.wall(snap, "en")}
    assert en["hs-motherwort"].stock == "Sold out"
    assert en["dl-waxapple-1.5kg"].stock == "Unavailable"
    assert en["zr-rice-5kg"].name == "Eco rice 5 kg"


def test_chips_are_all_plus_the_five_categories(fx):
    snap, _ = fx["idle"]
    cs = vm.chips(snap, "zh", "drinks")
    assert [c.label for c in cs] == [
        "全部",
        "活禽肉蛋",
        "冲调饮品",
        "果蔬五谷",
        "工艺绿化",
        "粮油百货",
    ]
    assert [c.selected for c in cs] == [False, False, True, False, False, False]


def test_countdown_only_in_the_last_30_seconds():
    assert vm.countdown(None) is None
    assert vm.countdown(95.0) is None
    assert vm.countdown(30.01) is None
    assert vm.countdown(30.0) == 30
    assert vm.countdown(12.2) == 13
    assert vm.countdown(-4) == 0


def test_door_open_too_long_asks_to_close_without_countdown(fx):
    snap, _ = fx["door-open"]
    d = vm.door_open(snap, "zh")
    assert d.title == "D1 号门已打开" and d.countdown == 22
    long = replace(snap, session=replace(snap.session, door_open_too_long=True, remaining_s=5))
    d = vm.door_open(long, "en")
    assert d.title == "Please close door D1" and d.countdown is None


def test_receipt_thanks_line_names_cooperatives_and_households(fx):
    snap, _ = fx["receipt"]
    r = snap.receipt
    coops = (
        SupplierView("hs-agtour", "会山农旅体验馆", "cooperative", "会山镇", 138),
        SupplierView("dl-wax", "大路多果莲雾合作社", "cooperative", "大路镇", 64),
    )
    two = replace(r, suppliers=coops, households=202)
    assert vm.thanks_line(two, "zh") == "本次消费帮扶了 会山农旅体验馆 等 2 家合作社, 带动 202 户"
    one = replace(r, suppliers=coops[:1], households=138)
    assert vm.thanks_line(one, "zh") == "本次消费帮扶了 会山农旅体验馆, 带动 138 户"
    assert "138 households" in vm.thanks_line(one, "en")
    assert vm.thanks_line(replace(r, suppliers=()), "zh") == ""


def test_receipt_lines_total_and_payment(fx):
    snap, _ = fx["receipt"]
    m = vm.receipt(snap.receipt, "zh")
    assert [ln.amount for ln in m.lines] == ["¥68.00", "¥116.00", "¥45.00", "¥20.00", "¥78.00"]
    assert m.lines[1].qty == "× 2"
    assert m.total == "¥327.00"
    assert m.paid_by == "支付方式: 工作卡"
    deferred = vm.receipt(replace(snap.receipt, payment_status="deferred", review=True), "en")
    assert "charged later" in deferred.note and "review" in deferred.note


def test_baskets_cheaper_first_even_if_sent_out_of_order(fx):
    snap, _ = fx["confirm"]
    shuffled = tuple(reversed(snap.candidates))
    bs = vm.baskets(shuffled, "zh")
    assert [b.total for b in bs] == ["¥26.00", "¥36.00", "¥44.00"]
    assert bs[0].index == 0  # the index ConfirmBasket takes travels with the card


@pytest.mark.parametrize(
    "code,words",
    [
        ("card_blocked", "administrator"),
        ("over_offline_limit", "payment code"),
        ("network_down", "Card payment still works"),
    ],
)
def test_refusals_say_why_and_what_to_do(code, words):
    m = vm.refusal(code, "en")
    assert m.tone == "fault" and m.code == code
    assert words in m.todo
    zh = vm.refusal(code, "zh")
    assert zh.title and zh.todo and zh.title != m.title


def test_unknown_reason_still_shows_its_code():
    m = vm.out_of_service("flux_capacitor", "en")
    assert m.code == "flux_capacitor" and m.title == "Out of service"


def test_menu_counts_open_alarms(fx):
    snap, _ = fx["operator-menu"]
    tiles = {t.page: t for t in vm.menu(snap, "zh")}
    assert tiles["alarms"].badge == "3 条未处理" and tiles["alarms"].tone == "fault"
    assert set(tiles) == {p for p, _ in vm.TILES}


def test_alarms_newest_first_open_before_acknowledged():
    alarms = (
        AlarmView("old", "2026-11-28T01:00:00.000Z", "scale_fault", "alarm", "D1-S1", {}),
        AlarmView("new", "2026-11-28T05:00:00.000Z", "door_left_open", "alarm", "D2", {}),
        AlarmView("acked", "2026-11-28T06:00:00.000Z", "low_stock", "warning", "D1", {}, True),
    )
    rows = vm.alarm_rows(alarms, "zh")
    assert [r.id for r in rows] == ["new", "old", "acked"]
    assert rows[0].time == "11-28 13:00"  # cabinet time, UTC+8
    assert rows[0].what == "D2 门开得太久"


def test_restock_rows_highlight_a_weight_that_fits_no_count(fx):
    snap, _ = fx["restock"]
    rows = vm.restock_rows(snap, "zh")
    honey = next(r for r in rows if r.sku == "hs-honey-500g")
    assert honey.mismatch and honey.weighed == "?" and honey.count == 6
    rice = next(r for r in rows if r.sku == "zr-rice-5kg")
    assert not rice.mismatch and rice.count == 6


def test_pin_is_masked():
    assert vm.pin_mask("1234") == "●●●●"


def test_every_reason_code_has_words_in_both_languages():
    from kiosk.snapshot import Reason

    customer_facing = [
        "card_unknown", "card_blocked", "over_offline_limit", "network_down", "payment_declined",
        "unknown_code", "busy", "door_not_pulled", "storage_full", "lock_offline", "lock_fault",
        "scale_fault", "door_open", "starting", "bad_pin", "locked_out",
    ]  # fmt: skip
    for code in customer_facing:
        assert code in {r.value for r in Reason}
        assert code in i18n.REASONS, code
    for zh, en in i18n.TEXT.values():
        assert zh and en


def test_with_stock_changes_one_product(fx):
    snap, _ = fx["idle"]
    after = vm.with_stock(snap, "zr-rice-5kg", 0)
    card = next(c for c in vm.wall(after, "zh") if c.sku == "zr-rice-5kg")
    assert card.status == "sold_out" and after.seq == snap.seq + 1
    assert snap.state == SessionState.IDLE


def test_a_read_operator_card_goes_to_the_pin_pad_until_dismissed(fx):
    idle, _ = fx["idle"]
    waiting = replace(idle, operator_pending="王芳")
    assert vm.route(waiting, vm.Nav()) == "operator-login"
    assert vm.route(waiting, vm.Nav(pending_dismissed=True)) == "idle"
    door, _ = fx["door-open"]  # a customer's open door wins
    assert vm.route(replace(door, operator_pending="王芳"), vm.Nav()) == "door-open"


def test_planogram_warnings_sit_with_their_shelf_in_the_screen_language(fx):
    snap, _ = fx["planogram"]
    zh = {r.shelf: r.warnings for r in vm.planogram_rows(snap, "zh")}
    en = {r.shelf: r.warnings for r in vm.planogram_rows(snap, "en")}
    assert zh["D2-S4"] and zh["D2-S4"][0].startswith("小鱼仔")  # no "D2-S4:" prefix
    assert en["D2-S4"][0].startswith("Dried small fish") and not en["D2-S3"]


def test_review_cards_offer_one_item_or_what_is_left(fx):
    snap, _ = fx["sales"]
    r = snap.sales.review_detail[1]
    part = replace(r, refunded_fen=r.items[0].line_fen)
    sales = replace(snap.sales, review_detail=(part,))
    (card,) = vm.review_cards(replace(snap, sales=sales), "en")
    assert [ln.unit for ln in card.lines] == [vm.money(i.unit_price_fen) for i in r.items]
    assert card.refundable_fen == r.total_fen - r.items[0].line_fen
    assert card.refunded.endswith("refunded") and card.time == "11-28 11:12"


def test_attract_households_come_from_the_products(fx):
    snap, _ = fx["attract"]
    slides = vm.attract(snap, "en")
    p = snap.products[0]
    assert slides[0].line == f"{p.town} · {p.households} households" and p.households > 0
