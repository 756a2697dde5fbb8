"""Scan-to-open: ``/s/{cabinet}/{nonce}``, the page a customer's phone opens from the cabinet's
on-screen code (integration.md, "Commands": ``session_authorized``).

Who the customer is, and how much the platform lets them spend, is the platform's business: a
``PhoneLogin`` answers that. Once logged in, the centre queues a signed ``session_authorized
{session: nonce, account, limit_fen}`` (published on MQTT, served on ``/commands``). A nonce is
used once here (409 after); whether the cabinet issued it only the cabinet knows, and it
refuses one it did not (``code_expired``). Browsers (``Accept: text/html``) get pages, other
clients JSON.

- ``NoPhoneLogin``: the production stub. A real deployment plugs the platform's login (WeChat,
  Alipay, the operator's app) in here; until then the page says scan-to-open is not available
  here (503) and nothing is queued.
- ``TestLogin``: ``--simulate``; one button logs in the demo account (the old simulator's page).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from central.store import Store
from kiosk.contract import ContractError, loads

DEMO_ACCOUNT = "5ca17e0d0e5c0a17e0d0e5c0a17e0d01"  # the test login's platform account
LIMIT_FEN = 20_000  # what the test login lets one scan-to-open session spend (200 yuan)
MAX_LIMIT_FEN = 500_000  # the scripted payment provider's limit (central.payments)
TTL_S = 120.0  # the command is worthless after the customer has walked away
MAX_BODY_BYTES = 4096  # a login form or JSON: a few dozen bytes
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # nonce and account: URL-safe, within the args
HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Page:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Login:
    account: str
    limit_fen: int


class PhoneLogin(Protocol):
    def form(self, cabinet: str, nonce: str) -> str | None:
        """The login step's HTML (posting to this same URL), or None: no login here."""
        ...

    def login(self, body: bytes, headers: Mapping[str, str]) -> Login | None:
        """Who the POST logged in; None: no login here; ``ValueError``: a bad login."""
        ...


class NoPhoneLogin:
    """The production stub: plug the platform's login in here (see the module's text)."""

    def form(self, cabinet: str, nonce: str) -> str | None:
        return None

    def login(self, body: bytes, headers: Mapping[str, str]) -> Login | None:
        return None


class TestLogin:
    """``--simulate``: one button logs in ``DEMO_ACCOUNT`` with ``LIMIT_FEN``; a form or JSON
    body may name another ``account`` and ``limit_fen``."""

    __test__ = False  # not a pytest class, whatever its name

    def form(self, cabinet: str, nonce: str) -> str | None:
        return (
            f'<form method="post"><input type="hidden" name="account" value="{DEMO_ACCOUNT}">'
            '<button type="submit">确认开门<br><small>Open the door</small></button></form>'
        )

    def login(self, body: bytes, headers: Mapping[str, str]) -> Login | None:
        return parse_login(body, headers.get("content-type", ""))


def parse_login(body: bytes, content_type: str) -> Login:
    """The customer's ``account`` and ``limit_fen`` from a form or JSON; defaults when absent."""
    fields: Any = {}
    if body.strip():
        if content_type.startswith("application/json"):
            try:
                fields = loads(body, max_bytes=MAX_BODY_BYTES)
            except ContractError as e:
                raise ValueError(f"body: {e}") from None
        else:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("the form is not UTF-8") from None
            fields = {k: v[-1] for k, v in parse_qs(text, max_num_fields=10).items()}
    if not isinstance(fields, dict):
        raise ValueError("the login is a JSON object")
    account = fields.get("account") or DEMO_ACCOUNT
    if not isinstance(account, str) or not _TOKEN.fullmatch(account):
        raise ValueError("account: 1..64 of A-Z a-z 0-9 _ -")
    limit = fields.get("limit_fen", LIMIT_FEN)
    if isinstance(limit, str) and limit.isascii() and limit.isdigit() and len(limit) <= 9:
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT_FEN:
        raise ValueError(f"limit_fen: 1..{MAX_LIMIT_FEN}")
    return Login(account, limit)


def serve(
    store: Store,
    login: PhoneLogin,
    method: str,
    cabinet: str,
    nonce: str,
    body: bytes,
    headers: Mapping[str, str],
) -> Page:
    """The answer to ``GET`` or ``POST /s/{cabinet}/{nonce}`` (blocking: run it in a thread)."""
    wants_html = "text/html" in headers.get("accept", "")
    form = login.form(cabinet, nonce)
    if form is None:
        return _error(503, "scan-to-open is not available here", cabinet, wants_html)
    cab = store.cabinet(cabinet)
    if cab is None:
        return _error(404, "unknown cabinet", cabinet, wants_html)
    if not _TOKEN.fullmatch(nonce):
        return _error(404, "not a scan-to-open code", nonce[:80], wants_html)
    where = " ".join(x for x in (cab.get("name"), cab.get("location")) if x) or cabinet
    if method == "GET":
        used = store.scan_used(cabinet, nonce)
        return Page(200, HTML, _login_page(cabinet, where, form, used))
    try:
        who = login.login(body, headers)
    except ValueError as e:
        return _error(400, "bad login", str(e), wants_html)
    if who is None:
        return _error(503, "scan-to-open is not available here", cabinet, wants_html)
    message = store.scan_to_open(cabinet, nonce, who.account, who.limit_fen, TTL_S)
    if message is None:
        return _error(409, "code already used", nonce, wants_html)
    if wants_html:
        return Page(200, HTML, _opening_page(where))
    answer = {
        "ok": True,
        "cabinet": cabinet,
        "session": nonce,
        "cmd_id": message["cmd_id"],
        "detail": "柜门即将打开 the door will open",
    }
    return Page(200, JSON, _dumps(answer))


def _dumps(m: dict[str, Any]) -> bytes:
    return json.dumps(m, ensure_ascii=False).encode("utf-8")


def _error(status: int, error: str, detail: str, wants_html: bool) -> Page:
    if wants_html:
        text = {
            409: "此二维码已使用，请扫描屏幕上的新码",
            404: "找不到此柜或二维码",
            503: "此处暂不支持扫码开门",
        }.get(status, "请求有误")
        return Page(status, HTML, _page(text, html.escape(f"{error}: {detail}"), ""))
    return Page(status, JSON, _dumps({"error": error, "detail": detail}))


def _login_page(cabinet: str, where: str, form: str, used: bool) -> bytes:
    if used:
        return _page(
            "此二维码已使用，请扫描屏幕上的新码", "This code was used: scan the new one.", ""
        )
    return _page(
        f"扫码开门：{html.escape(where)}（{html.escape(cabinet)}）",
        f"Scan to open: {html.escape(where)} ({html.escape(cabinet)}). Take what you want and "
        "close the door; you pay for what you took.",
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
