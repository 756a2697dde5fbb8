"""What an alarm message says, in each hook format (pure: no database, no network).

- ``json``: ``{"id", "cabinet", "name", "location", "route", "late", "alarms": [{"id", "kind",
  "device", "at", "detail"}]}``. ``id`` is the message's, the same on every retry (a receiver
  that got it twice can tell); each alarm's ``id`` is its record id; ``at`` is as the cabinet
  sent it.
- ``wecom`` (WeCom group robot): ``{"msgtype": "markdown", "markdown": {"content"}}``;
  ``dingtalk`` (DingTalk custom robot): ``{"msgtype": "markdown", "markdown": {"title",
  "text"}}``. Chinese first, English after: the people reading them are Chinese operators.
  Every text starts with 告警, so a DingTalk robot secured by the keyword 告警 takes it.
  Times are shown in the centre's time zone (Asia/Shanghai unless told).
- A late message (alarms raised long before the centre got them: a cabinet that was offline)
  says so at the top, with when they happened.
- Robots refuse long texts (WeCom: 4,096 bytes of markdown), so a text lists as many alarms as
  fit in ``TEXT_BUDGET`` bytes and then says how many more there are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

FORMATS = ("json", "wecom", "dingtalk")
TEXT_BUDGET = 3800  # bytes of UTF-8: under WeCom's 4,096 with room for the "and N more" line
DETAIL_MAX = 80  # characters of an alarm's detail in a text line

# The cabinets' alarm kinds (kiosk/controller, sync/agent: both spellings) in Chinese.
KINDS_ZH = {
    "door_forced": "柜门被强行打开",
    "door_left_open": "柜门未关",
    "door_open_at_start": "启动时柜门开着",
    "lock_fault": "门锁故障",
    "scanner_fault": "扫码器故障",
    "scale_fault": "称重故障",
    "foreign_object": "柜内有异物",
    "misplaced_item": "商品放错位置",
    "tamper": "柜体被撬动",
    "storage_low": "存储空间不足",
    "low_stock": "库存不足",
    "expiring": "商品临期",
    "expired": "商品过期",
    "inbound_rejected": "拒收下发消息",
    "clock_skew": "时钟偏差",
    "capture_refused": "扣款被拒",
    "dead_letter": "记录无法上传",
    "test": "测试消息",
}


@dataclass(frozen=True)
class Alarm:
    id: str  # the record's id
    kind: str
    device: str | None
    at: str  # as the cabinet sent it
    at_utc: datetime | None  # parsed (None when the cabinet sent something else)
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cabinet:
    id: str
    name: str = ""
    location: str = ""
    route: str | None = None


@dataclass(frozen=True)
class Message:
    id: str
    cabinet: Cabinet
    late: bool
    alarms: tuple[Alarm, ...]
    test: bool = False  # `kiosk central hook test`: not a real alarm


def kind_zh(kind: str) -> str:
    return KINDS_ZH.get(kind.strip().lower().replace(" ", "_").replace("-", "_"), "告警")


def render(message: Message, fmt: str, timezone: str = "Asia/Shanghai") -> dict[str, Any]:
    """The request body for a hook of format ``fmt``."""
    if fmt == "json":
        return as_json(message)
    text = markdown(message, timezone)
    if fmt == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text}}
    if fmt == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title(message), "text": text}}
    raise ValueError(f"format is one of {', '.join(FORMATS)}")


def as_json(m: Message) -> dict[str, Any]:
    c = m.cabinet
    body: dict[str, Any] = {
        "id": m.id,
        "cabinet": c.id,
        "name": c.name,
        "location": c.location,
        "route": c.route,
        "late": m.late,
        "alarms": [
            {"id": a.id, "kind": a.kind, "device": a.device, "at": a.at, "detail": dict(a.detail)}
            for a in m.alarms
        ],
    }
    if m.test:
        body["test"] = True
    return body


def title(m: Message) -> str:
    c = m.cabinet
    return f"告警 Alarm: {c.name or c.id} ({len(m.alarms)})"


def _clean(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters (a cabinet's text cannot break the layout)."""
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _when(a: Alarm, zone: ZoneInfo, with_year: bool) -> str:
    if a.at_utc is None:
        return _clean(a.at, 30)
    return a.at_utc.astimezone(zone).strftime(
        "%Y-%m-%d %H:%M:%S" if with_year else "%m-%d %H:%M:%S"
    )


def _moment(d: datetime, zone: ZoneInfo) -> str:
    """``2026-11-26 10:00 (UTC+08:00)``: the offset, not an abbreviation (CST is ambiguous)."""
    local = d.astimezone(zone)
    off = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M") + f" (UTC{off[:3]}:{off[3:]})"


def _line(a: Alarm, zone: ZoneInfo, with_year: bool) -> str:
    words = [_when(a, zone, with_year), kind_zh(a.kind), _clean(a.kind.replace("_", " "), 40)]
    if a.device:
        words.append(f"· {_clean(a.device, 40)}")
    detail = ", ".join(f"{k}={v}" for k, v in a.detail.items() if k != "device")
    if detail:
        words.append(f"({_clean(detail, DETAIL_MAX)})")
    return "- " + " ".join(words)


def markdown(m: Message, timezone: str = "Asia/Shanghai") -> str:
    """The robots' markdown: the cabinet, then one line per alarm, oldest first."""
    zone = ZoneInfo(timezone)
    c = m.cabinet
    n = len(m.alarms)
    head = [f"**告警 Alarm：{_clean(c.name or c.id, 60)}**"]
    if m.test:
        head[0] = "**告警测试 Alarm hook test**"
    head.append(f"> 柜号 Cabinet：{_clean(c.id, 60)}")
    if c.location:
        head.append(f"> 位置 Location：{_clean(c.location, 80)}")
    if c.route:
        head.append(f"> 线路 Route：{_clean(c.route, 60)}")
    head.append(f"> 共 {n} 条 / {n} alarm{'s' if n != 1 else ''}")
    if m.late:
        times = [a.at_utc for a in m.alarms if a.at_utc is not None]
        since = _moment(min(times), zone) if times else "?"
        head.append(
            f"> **迟到的告警**：发生于 {since} 起，柜子离线后中心刚收到。"
            f" Late: raised from {since}, received only now (the cabinet was offline)."
        )
    text = "\n".join(head) + "\n\n"
    budget = TEXT_BUDGET - len(text.encode())
    lines: list[str] = []
    for a in m.alarms:
        line = _line(a, zone, with_year=m.late)
        cost = len(line.encode()) + 1
        if cost > budget:
            break
        lines.append(line)
        budget -= cost
    more = n - len(lines)
    if more:
        lines.append(f"- …另有 {more} 条 / and {more} more")
    return text + "\n".join(lines)


def dumps(body: dict[str, Any]) -> bytes:
    """The request body's bytes (UTF-8, Chinese as is)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
