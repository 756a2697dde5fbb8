"""Scan-to-open at the simulated centre: ``/s/{cabinet}/{nonce}``, what the customer's phone opens.

``GET`` is the (simulated) phone login: a small page naming the cabinet with one button.
``POST`` (a form, JSON, or nothing) stands for a logged-in customer: the centre queues a signed
``session_authorized {session: nonce, account, limit_fen}`` the same way ``kiosk central send``
does (published on MQTT, served on ``/commands``). A nonce is used once here too (409 after);
whether the cabinet issued it only the cabinet knows, and it refuses one it did not
(``code_expired``). Browsers (``Accept: text/html``) get pages, other clients JSON.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from simulators.central_store import CentralStore

DEMO_ACCOUNT = "5ca17e0d0e5c0a17e0d0e5c0a17e0d01"  # the simulated phone's platform account
LIMIT_FEN = 20_000  # what the platform lets one scan-to-open session spend (200 yuan)
MAX_LIMIT_FEN = 500_000  # the simulator's payment limit (central_store.authorize)
TTL_S = 120.0  # the command is worthless after the customer has walked away
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # nonce and account: URL-safe, within the args


@dataclass(frozen=True)
class Page:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Login:
    account: str
    limit_fen: int


def serve(
    store: CentralStore,
    method: str,
    cabinet: str,
    nonce: str,
    body: bytes,
    content_type: str,
    wants_html: bool,
) -> Page:
    cab = store.cabinet(cabinet)
    if cab is None:
        return _error(404, "unknown cabinet", cabinet, wants_html)
    if not _TOKEN.fullmatch(nonce):
        return _error(404, "not a scan-to-open code", nonce, wants_html)
    where = " ".join(x for x in (cab["name"], cab["location"]) if x) or cabinet
    if method == "GET":
        used = store.scan_used(cabinet, nonce)
        return Page(200, "text/html; charset=utf-8", _login_page(cabinet, where, used))
    try:
        login = parse_login(body, content_type)
    except ValueError as e:
        return _error(400, "bad login", str(e), wants_html)
    message = store.scan_to_open(cabinet, nonce, login.account, login.limit_fen, TTL_S)
    if message is None:
        return _error(409, "code already used", nonce, wants_html)
    if wants_html:
        return Page(200, "text/html; charset=utf-8", _opening_page(where))
    answer = {
        "ok": True,
        "cabinet": cabinet,
        "session": nonce,
        "cmd_id": message["cmd_id"],
        "detail": "柜门即将打开 the door will open",
    }
    return Page(200, "application/json; charset=utf-8", _dumps(answer))


def parse_login(body: bytes, content_type: str) -> Login:
    """The customer's ``account`` and ``limit_fen`` from a form or JSON; defaults when absent."""
    fields: Any = {}
    if body.strip():
        if content_type.startswith("application/json"):
            try:
                fields = json.loads(body)
            except ValueError:
                raise ValueError("body is not JSON") from None
        else:
            fields = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if not isinstance(fields, dict):
        raise ValueError("the login is a JSON object")
    account = fields.get("account") or DEMO_ACCOUNT
    if not isinstance(account, str) or not _TOKEN.fullmatch(account):
        raise ValueError(f"account {account!r}")
    limit = fields.get("limit_fen", LIMIT_FEN)
    if isinstance(limit, str) and limit.isdigit():
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT_FEN:
        raise ValueError(f"limit_fen {limit!r}")
    return Login(account, limit)


def _dumps(m: dict) -> bytes:
    return json.dumps(m, ensure_ascii=False).encode("utf-8")


def _error(status: int, error: str, detail: str, wants_html: bool) -> Page:
    if wants_html:
        text = {409: "此二维码已使用，请扫描屏幕上的新码", 404: "找不到此柜或二维码"}.get(
            status, "请求有误"
        )
        page = _page(text, html.escape(f"{error}: {detail}"), "")
        return Page(status, "text/html; charset=utf-8", page)
    return Page(
        status, "application/json; charset=utf-8", _dumps({"error": error, "detail": detail})
    )


def _login_page(cabinet: str, where: str, used: bool) -> bytes:
    if used:
        return _page(
            "此二维码已使用，请扫描屏幕上的新码", "This code was used: scan the new one.", ""
        )
    form = (
        f'<form method="post"><input type="hidden" name="account" value="{DEMO_ACCOUNT}">'
        '<button type="submit">确认开门<br><small>Open the door</small></button></form>'
    )
    return _page(
        f"扫码开门：{html.escape(where)}（{html.escape(cabinet)}）",
        f"Scan to open: {html.escape(where)} ({html.escape(cabinet)}). Take what you want and "
        "close the door; you pay for what you took (up to 200 yuan).",
        form,
    )


def _opening_page(where: str) -> bytes:
    return _page(
        f"柜门即将打开：{html.escape(where)}。取货后请关好柜门，按所取商品扣款。",
        "The door will open in a moment. Close it when you are done; you pay for what you took.",
        "",
    )


def _page(zh: str, en: str, form: str) -> bytes:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>扫码开门 Scan to open</title><style>"
        "body{font-family:sans-serif;margin:1.5em;font-size:1.1em}"
        "button{width:100%;padding:1em;font-size:1.3em;background:#c8102e;color:#fff;border:0;"
        "border-radius:.4em}p.en{color:#555}</style></head><body>"
        f'<p>{zh}</p>{form}<p class="en" lang="en">{en}</p></body></html>'
    ).encode()
