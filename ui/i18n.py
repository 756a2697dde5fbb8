"""Every word on the screen, in Chinese and English. ``t(key, lang, **fields)``.

Reason codes (``kiosk.snapshot.Reason``) get a title, why, and what to do; an unknown code falls
back to a generic message that still shows the code, so staff can look it up.
"""

from __future__ import annotations

LANGS = ("zh", "en")

TEXT: dict[str, tuple[str, str]] = {
    # idle
    "title": ("消费帮扶 爱心专柜", "Consumption Assistance Cabinet"),
    "all": ("全部", "All"),
    "open_with": ("开门方式", "Ways to open"),
    "tap_card": ("刷工作卡", "Tap staff card"),
    "tap_card_hint": ("把卡贴在读卡区", "Hold it to the reader"),
    "show_code": ("出示付款码", "Show payment code"),
    "show_code_hint": ("对准下方扫码窗口", "To the scanner below"),
    "scan_qr": ("扫码开门", "Scan to open"),
    "qr_unavailable": ("扫码开门暂不可用", "Scan to open: not available"),
    "qr_unavailable_hint": ("请刷卡或出示付款码", "Use a card or a payment code"),
    "scan_qr_hint": ("用手机扫这个码", "Scan this with your phone"),
    "cert_badge": ("扶贫产品", "Certified"),
    "in_stock": ("有货 {n}", "{n} in stock"),
    "low_stock": ("仅剩 {n}", "Only {n} left"),
    "sold_out": ("售罄", "Sold out"),
    "unavailable": ("暂停销售", "Unavailable"),
    "expired": ("暂停销售", "Unavailable"),
    "no_products": ("这一类暂时没有商品", "Nothing in this category yet"),
    "lang_toggle": ("EN", "中"),
    "staff": ("维护", "Staff"),
    "attract_title": ("您的每一次购买, 都在帮助乡村", "Every purchase here helps a village"),
    "attract_supplier": ("{town} · 带动 {households} 户", "{town} · {households} households"),
    "attract_touch": ("轻触屏幕开始", "Touch the screen to start"),
    # authorise
    "authorising": ("正在读卡 ...", "Reading card ..."),
    "authorising_hint": ("请稍候, 不要拿开", "One moment, keep it there"),
    "door_will_open": ("{door} 号门已开锁", "Door {door} is unlocked"),
    "pull_door": ("请拉开 {door} 号门", "Pull door {door} open"),
    "cancel": ("取消", "Cancel"),
    # door open
    "door_open": ("{door} 号门已打开", "Door {door} is open"),
    "take_and_close": ("请取走您需要的商品, 然后关好门", "Take what you need, then close the door"),
    "close_soon": ("请在 {s} 秒内关门", "Please close the door within {s} s"),
    "door_too_long": ("请关好 {door} 号门", "Please close door {door}"),
    "door_too_long_hint": (
        "门开得太久了, 关门后才能结算",
        "The door has been open too long; we settle once it is shut",
    ),
    # settling
    "settling": ("正在清点 ...", "Counting ..."),
    "settling_hint": ("门已关好, 马上就好", "Door closed; this takes a second"),
    # confirm
    "confirm_title": ("我们不太确定您拿了什么", "We are not sure what you took"),
    "confirm_ask": ("哪一个是对的?", "Which is right?"),
    "none_of_these": ("都不对, 请工作人员核对", "None of these: staff will check"),
    "this_one": ("就是这个", "This one"),
    # receipt
    "receipt_title": ("购买成功, 谢谢!", "Thank you!"),
    "total": ("合计", "Total"),
    "paid_by": ("支付方式: {method}", "Paid by {method}"),
    "method_card": ("工作卡", "staff card"),
    "method_payment_code": ("付款码", "payment code"),
    "method_scan_to_open": ("手机扫码", "phone"),
    "method_operator": ("运维", "operator"),
    "payment_deferred": ("稍后扣款", "to be charged later"),
    "payment_failed": ("扣款未成功, 工作人员会联系您", "payment failed; staff will contact you"),
    "under_review": ("本单将由工作人员复核", "Staff will review this sale"),
    "nothing_taken": ("您没有拿走商品, 不收费", "You took nothing; no charge"),
    "thanks_one": (
        "本次消费帮扶了 {first}, 带动 {households} 户",
        "This purchase supports {first}, {households} households",
    ),
    "thanks_many": (
        "本次消费帮扶了 {first} 等 {n} 家{kind}, 带动 {households} 户",
        "This purchase supports {first} and {more} other {kind}: {households} households",
    ),
    "kind_cooperative": ("合作社", "cooperatives"),
    "kind_enterprise": ("企业", "enterprises"),
    "kind_mixed": ("合作社和企业", "cooperatives and enterprises"),
    "done": ("完成", "Done"),
    "back_in": ("{s} 秒后返回", "Back in {s} s"),
    # refused / out of service
    "ok_back": ("知道了", "OK"),
    "code_for_staff": ("故障代码: {code}", "Code for staff: {code}"),
    "oos_title": ("暂停服务", "Out of service"),
    "oos_hint": ("请联系工作人员, 或稍后再来", "Please call staff or come back later"),
    # operator
    "op_login": ("运维登录", "Operator login"),
    "op_menu": ("运维", "Operator"),
    "op_login_hint": ("刷运维卡, 或输入密码", "Tap your operator card, or enter your PIN"),
    "op_pin_for": ("{name}, 请输入密码", "{name}, enter your PIN"),
    "op_enter": ("确定", "Enter"),
    "op_clear": ("清除", "Clear"),
    "op_back": ("返回", "Back"),
    "op_hello": ("你好, {name}", "Hello, {name}"),
    "op_logout": ("退出登录", "Log out"),
    "tile_restock": ("补货", "Restock"),
    "tile_planogram": ("货道", "Planogram"),
    "tile_calibrate": ("校准", "Calibrate"),
    "tile_alarms": ("告警", "Alarms"),
    "tile_sales": ("销售", "Sales"),
    "tile_sync": ("同步", "Sync"),
    "tile_settings": ("设置", "Settings"),
    "tile_exit": ("退出", "Exit kiosk"),
    "alarm_count": ("{n} 条未处理", "{n} open"),
    "restock_pick": ("选择要补货的门", "Pick a door to restock"),
    "door_n": ("{door} 号门", "Door {door}"),
    "restock_title": ("{door} 号门 补货", "Restock door {door}"),
    "expected": ("应有", "Expected"),
    "weighed": ("称重", "By weight"),
    "expires": ("保质期至", "Expires"),
    "weight_mismatch": ("重量对不上整数件, 请检查", "Weight fits no whole count: check"),
    "confirm_lane": ("确认", "OK"),
    "lane_confirmed": ("已确认", "Confirmed"),
    "confirm_all": ("全部确认并关门", "Confirm all"),
    "planogram_title": ("货道设置", "Planogram"),
    "planogram_pick": ("点一个货道, 再选商品", "Tap a lane, then pick its product"),
    "cannot_tell": ("无法按重量区分: {names}", "Cannot tell apart by weight: {names}"),
    "add_lane": ("+ 货道", "+ Lane"),
    "empty_lane": ("空", "Empty"),
    "calibrate_title": ("校准 {shelf}", "Calibrate {shelf}"),
    "calibrate_pick": ("选择要校准的层板", "Pick a shelf to calibrate"),
    "cal_step_empty": ("1. 清空层板, 等读数稳定", "1. Empty the shelf; wait for a steady reading"),
    "cal_zero": ("置零", "Zero"),
    "cal_step_known": (
        "2. 放上已知重量的砝码, 输入克数",
        "2. Place a known weight; enter its grams",
    ),
    "cal_apply": ("校准", "Calibrate"),
    "cal_done": ("3. 完成", "3. Done"),
    "cal_error": (
        "误差: 校准前 {before} g, 校准后 {after} g",
        "Error: before {before} g, after {after} g",
    ),
    "stable": ("稳定", "steady"),
    "unstable": ("波动中", "settling"),
    "no_reading": ("无读数", "no reading"),
    "alarms_title": ("告警", "Alarms"),
    "ack": ("确认处理", "Acknowledge"),
    "acked": ("已处理", "Acknowledged"),
    "no_alarms": ("没有告警", "No alarms"),
    "sales_title": ("今日销售", "Sales today"),
    "sales_today": ("{n} 笔, 共 {total}", "{n} sales, {total}"),
    "review_list": ("待复核", "To review"),
    "no_review": ("没有待复核的订单", "Nothing to review"),
    "refund": ("退款", "Refund"),
    "refund_sure": ("确定退款?", "Refund, sure?"),
    "refund_all": ("全部退款 {amount}", "Refund all {amount}"),
    "refund_one": ("退 1 件 {amount}", "Refund 1: {amount}"),
    "refunded": ("已退 {amount}", "{amount} refunded"),
    "more_below": ("▼ 下面还有, 请向上滑动", "▼ More below: swipe up"),
    "sync_title": ("同步状态", "Sync"),
    "backlog": ("待上传", "Waiting to send"),
    "dead": ("发送失败", "Failed to send"),
    "last_contact": ("最近联系", "Last contact"),
    "catalog_version": ("商品目录版本", "Catalogue version"),
    "never": ("从未", "never"),
    "settings_title": ("设置", "Settings"),
    "cabinet_id": ("柜号", "Cabinet"),
    "language": ("语言", "Language"),
    "orientation": ("屏幕方向", "Orientation"),
    "portrait": ("竖屏", "portrait"),
    "landscape": ("横屏", "landscape"),
    "exit_sure": ("再点一次退出售货程序", "Tap again to leave the kiosk app"),
    "open_for_service": ("开门维护", "Open for service"),
}

# Reason code -> (title, why, what to do). Severity: refusals are red.
REASONS: dict[str, tuple[tuple[str, str], tuple[str, str], tuple[str, str]]] = {
    "card_unknown": (
        ("无法识别这张卡", "Card not recognised"),
        ("这张卡没有登记", "This card is not registered"),
        ("请联系您单位的管理员, 或出示付款码", "See your administrator, or show a payment code"),
    ),
    "card_blocked": (
        ("这张卡已停用", "Card blocked"),
        ("这张卡已被停用", "This card has been blocked"),
        ("请联系您单位的管理员", "Please see your administrator"),
    ),
    "over_offline_limit": (
        ("超出今日离线额度", "Over today's offline limit"),
        ("网络断开时, 工作卡每天只能消费一定金额", "Without network a card has a daily limit"),
        ("请改用付款码", "Please try a payment code"),
    ),
    "network_down": (
        ("网络不通", "Network down"),
        ("付款码和扫码开门需要网络", "Payment codes and phone scans need the network"),
        ("刷工作卡仍可购买", "Card payment still works"),
    ),
    "payment_declined": (
        ("付款未成功", "Payment declined"),
        ("付款平台拒绝了这次付款", "The payment platform declined"),
        ("请换一个付款码, 或刷工作卡", "Try another code, or tap your staff card"),
    ),
    "payment_unavailable": (
        ("暂不支持付款码", "Payment codes unavailable"),
        ("本柜暂未开通付款码", "This cabinet takes no payment codes yet"),
        ("请刷工作卡", "Please tap your staff card"),
    ),
    "unknown_code": (
        ("无法识别这个码", "Code not recognised"),
        ("这不是工作卡或付款码", "This is not a staff card or payment code"),
        ("请出示付款码, 或刷工作卡", "Show a payment code, or tap your staff card"),
    ),
    "busy": (
        ("请稍候", "One moment"),
        ("另一位顾客正在购买", "Someone else is shopping"),
        ("等门关好后再试", "Try again once the door is shut"),
    ),
    "door_not_pulled": (
        ("门没有打开", "Door not opened"),
        ("开锁后没有拉开门, 本次不收费", "The door was not pulled; nothing was charged"),
        ("需要时请重新开门", "Start again when you are ready"),
    ),
    "storage_full": (
        ("暂停服务", "Out of service"),
        ("存储空间不足", "Storage is full"),
        ("请联系工作人员", "Please call staff"),
    ),
    "lock_offline": (
        ("暂停服务", "Out of service"),
        ("门锁无响应", "A lock does not answer"),
        ("请联系工作人员", "Please call staff"),
    ),
    "lock_fault": (
        ("暂停服务", "Out of service"),
        ("门锁故障", "A lock is faulty"),
        ("请联系工作人员", "Please call staff"),
    ),
    "scale_fault": (
        ("暂停服务", "Out of service"),
        ("称重故障", "A scale is faulty"),
        ("请联系工作人员", "Please call staff"),
    ),
    "door_open": (
        ("暂停服务", "Out of service"),
        ("有一扇门没关好", "A door is not shut"),
        ("请关好所有柜门, 或联系工作人员", "Please shut every door, or call staff"),
    ),
    "starting": (
        ("正在启动", "Starting"),
        ("售货柜正在自检", "The cabinet is checking itself"),
        ("请稍候", "One moment please"),
    ),
    "bad_pin": (
        ("密码不对", "Wrong PIN"),
        ("密码不对", "That PIN is not right"),
        ("请重新输入", "Please try again"),
    ),
    "locked_out": (
        ("已锁定", "Locked"),
        ("输错次数太多", "Too many wrong PINs"),
        ("请稍后再试", "Please try again later"),
    ),
    "unknown_operator": (
        ("无此运维人员", "Unknown operator"),
        ("没有找到这张卡或密码", "No operator has that card or PIN"),
        ("请联系管理员", "Please see your administrator"),
    ),
    "pin_required": (
        ("请输入密码", "PIN needed"),
        ("刷卡后还需要密码", "The card needs a PIN too"),
        ("请输入密码", "Please enter your PIN"),
    ),
}
GENERIC_REASON = (
    ("无法完成", "Could not do that"),
    ("出了点问题", "Something went wrong"),
    ("请联系工作人员", "Please call staff"),
)

ALARM_KINDS: dict[str, tuple[str, str]] = {
    "door_forced": ("{device} 门被强行打开", "Door {device} forced open"),
    "door_left_open": ("{device} 门开得太久", "Door {device} left open"),
    "scale_fault": ("{device} 称重故障", "Scale {device} faulty"),
    "lock_fault": ("{device} 门锁故障", "Lock {device} faulty"),
    "lock_offline": ("{device} 门锁无响应", "Lock {device} not answering"),
    "foreign_object": ("{device} 有异物", "Something foreign on {device}"),
    "low_stock": ("{device} 库存不足", "Low stock on {device}"),
    "expiring": ("{device} 商品即将过期", "Goods expiring on {device}"),
    "expired": ("{device} 商品已过期", "Goods expired on {device}"),
    "storage_low": ("存储空间不足", "Storage low"),
    "scanner_fault": ("扫码器故障", "Scanner faulty"),
}


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[0] if lang == "zh" else pair[1]


def t(key: str, lang: str, **fields: object) -> str:
    """The words for ``key``; a missing key shows itself (visible in screenshots, never a crash)."""
    pair = TEXT.get(key)
    if pair is None:
        return key
    return _pick(pair, lang).format(**fields) if fields else _pick(pair, lang)


def reason(code: str, lang: str) -> tuple[str, str, str]:
    """(title, why, what to do) for a reason code."""
    title, why, todo = REASONS.get(code, GENERIC_REASON)
    return _pick(title, lang), _pick(why, lang), _pick(todo, lang)


def alarm_text(kind: str, device: str | None, lang: str) -> str:
    pair = ALARM_KINDS.get(kind)
    dev = device or ""
    if pair is None:
        return f"{kind} {dev}".strip()
    return _pick(pair, lang).format(device=dev).strip()
