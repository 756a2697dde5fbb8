"""The fleet API: ``/api/v1/fleet/...``, for people (the console, Step 10) and their scripts.

Mounted into the centre's app with ``create_app(..., extra_routes=fleet_routes(...))``.

Every request, in this order:

1. **Who**: ``Authorization: Bearer <token>`` (``kiosk central token add``) or the session
   cookie from ``POST /login``. Neither, or one that is unknown, revoked or expired: ``401``,
   audited (``-`` as the actor, the reason in the detail).
2. **Cross-site**: a cookie-authenticated request that changes something must not come from
   another site: its ``Origin``, when sent, must be this server's (the cookie is also
   ``SameSite=Strict``, and a body must be ``application/json``, which a plain form cannot send).
3. **May they**: the route's action against ``central.auth.PERMISSIONS``, with the cabinet in the
   path (or the cabinet of the alarm, sale or command named) against the principal's scope:
   ``403``, audited. Lists show only the cabinets in scope.
4. **The body**: a JSON object (strict, ``kiosk.contract.loads``), at most ``body_limit_bytes``.
5. **The action**. Everything that changes something is audited once it is done (``ok``) or
   refused (``refused``, with the error); so are reads of the audit log. Reads of figures are not
   (a console refreshing would fill the log with nothing).

Errors are JSON ``{"error", "detail"}``. Work that touches the database runs in worker threads.
Routes are listed in ``ENDPOINTS`` (method, path, action), which the tests walk for every role.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from central import alarms as alarm_view
from central import fleet_actions as act
from central import fleet_view as view
from central.auth import SESSION_COOKIE, Auth, AuthError, Principal, check_name
from central.fleet_actions import Publish
from central.http_app import HttpError, json_response, read_body
from central.store import Store
from kiosk import clock as wall
from kiosk import contract
from kiosk.contract import ContractError

log = logging.getLogger(__name__)

API = "/api/v1/fleet"
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class FleetSettings:
    timezone: str = "Asia/Shanghai"  # "today" for the restock list (the cabinets' own zone)
    # A catalogue may list 10,000 products (kiosk.contract): well under this.
    body_limit_bytes: int = 4 * 1024 * 1024
    secure_cookie: bool | None = None  # None: Secure when the request came over https


@dataclass
class Ctx:
    """One admitted request: who, from where, what they sent; the handler fills in what the
    audit line says (``target``, ``detail``)."""

    request: Request
    principal: Principal
    address: str
    body: dict[str, Any]
    action: str  # the permission the route needs
    says: str  # the audit line's action
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> str:
        return self.request.path_params[name]


Handler = Callable[[Ctx], tuple[int, Any]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # under API
    action: str
    handler_name: str
    audited: bool  # audited when it succeeds too (changes something, or reads the audit log)
    says: str = ""  # the audit line's action when not the permission's (as the CLI writes it)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/cabinets", "cabinets.read", "list_cabinets", False),
    Endpoint("GET", "/cabinets/{cabinet}", "cabinets.read", "get_cabinet", False),
    Endpoint("GET", "/cabinets/{cabinet}/stock", "stock.read", "get_stock", False),
    Endpoint("GET", "/cabinets/{cabinet}/commands", "commands.read", "list_commands", False),
    Endpoint("POST", "/cabinets/{cabinet}/commands", "command.send", "send_command", True),
    Endpoint("POST", "/cabinets/{cabinet}/open-door", "door.open", "open_door", True),
    Endpoint("POST", "/cabinets/{cabinet}/block-card", "card.block", "block_card", True),
    Endpoint("POST", "/cabinets/{cabinet}/unblock-card", "card.unblock", "unblock_card", True),
    Endpoint("GET", "/commands/{cmd_id}", "commands.read", "get_command", False),
    Endpoint("GET", "/alarms", "alarms.read", "list_alarms", False),
    Endpoint("POST", "/alarms/{alarm}/ack", "alarm.ack", "ack_alarm", True),
    Endpoint("GET", "/routes/{route}/restock", "stock.read", "restock", False),
    Endpoint("GET", "/sales", "sales.read", "list_sales", False),
    Endpoint("GET", "/sales/review", "sales.read", "review_queue", False),
    Endpoint("GET", "/sales/{sale}", "sales.read", "get_sale", False),
    Endpoint("POST", "/sales/{sale}/refund", "sale.refund", "refund", True),
    Endpoint("POST", "/sales/{sale}/review", "sale.review", "review_sale", True),
    Endpoint("GET", "/versions/{kind}", "versions.read", "get_versions", False),
    Endpoint("POST", "/catalog", "catalog.publish", "publish_catalog", True),
    Endpoint("POST", "/prices", "prices.publish", "publish_prices", True),
    Endpoint("POST", "/config", "config.push", "push_config", True),
    Endpoint("GET", "/users", "users.manage", "list_users", False),
    Endpoint("POST", "/users", "users.manage", "add_user", True, "user.add"),
    Endpoint("POST", "/users/{name}/lock", "users.manage", "lock_user", True, "user.lock"),
    Endpoint("POST", "/users/{name}/unlock", "users.manage", "unlock_user", True, "user.unlock"),
    Endpoint("GET", "/tokens", "tokens.manage", "list_tokens", False),
    Endpoint("POST", "/tokens", "tokens.manage", "add_token", True, "token.add"),
    Endpoint(
        "POST", "/tokens/{name}/revoke", "tokens.manage", "revoke_token", True, "token.revoke"
    ),
    Endpoint("GET", "/audit", "audit.read", "read_audit", True),
    Endpoint("GET", "/staff", "staff.read", "list_staff", False),
    Endpoint("POST", "/staff/{card}/block", "staff.manage", "block_staff", True, "staff.block"),
    Endpoint(
        "POST", "/staff/{card}/unblock", "staff.manage", "unblock_staff", True, "staff.unblock"
    ),
)


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


def _query_int(ctx: Ctx, name: str, default: int, lo: int, hi: int) -> int:
    v = ctx.request.query_params.get(name)
    if v is None:
        return default
    if not (v.isascii() and v.isdigit() and len(v) <= 9) or not lo <= int(v) <= hi:
        raise AuthError(400, "bad query", f"{name} must be an integer {lo}..{hi}")
    return int(v)


def _query_time(ctx: Ctx, name: str) -> datetime | None:
    v = ctx.request.query_params.get(name)
    if v is None:
        return None
    try:
        return wall.parse(v)
    except ValueError:
        raise AuthError(400, "bad query", f"{name} must be an RFC 3339 time") from None


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    v = body.get(key) or []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise AuthError(400, "bad request", f"{key}: a list of text")
    return v


class FleetApi:
    def __init__(
        self,
        store: Store,
        auth: Auth,
        publish: Publish | None,
        settings: FleetSettings,
    ) -> None:
        self.store = store
        self.auth = auth
        self.publish = publish
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)

    # -- admission ------------------------------------------------------------------------------
    def _authenticate(self, request: Request, action: str, address: str) -> Principal:
        header = request.headers.get("authorization")
        cookie = request.cookies.get(SESSION_COOKIE)
        p: Principal | None = None
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                why = "malformed Authorization"
            else:
                p = self.auth.token_principal(token.strip())
                why = "unknown or revoked token"
        elif cookie is not None:
            p = self.auth.session_principal(cookie)
            why = "unknown or expired session"
        else:
            why = "no credentials"
        if p is None:
            path = request.url.path[:200]
            self.auth.audit(
                None, action, outcome="denied", address=address, detail={"why": why, "path": path}
            )
            raise AuthError(401, "unauthenticated", why)
        if cookie is not None and header is None and request.method != "GET":
            origin = request.headers.get("origin")
            own = f"{request.url.scheme}://{request.url.netloc}"
            if origin is not None and origin != own:
                self.auth.audit(
                    p,
                    action,
                    outcome="denied",
                    address=address,
                    detail={"why": "cross-site", "origin": origin[:200]},
                )
                raise AuthError(403, "cross-site request", origin[:200])
        return p

    async def _json_body(self, request: Request) -> dict[str, Any]:
        try:
            raw = await read_body(request, self.settings.body_limit_bytes)
        except HttpError as e:
            raise AuthError(e.status, e.error, e.detail) from None
        if not raw.strip():
            return {}
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != JSON_TYPE:
            raise AuthError(415, "unsupported media type", "send application/json")
        try:
            body = contract.loads(raw, max_bytes=self.settings.body_limit_bytes)
        except ContractError as e:
            raise AuthError(400, "bad JSON", str(e)) from None
        if not isinstance(body, dict):
            raise AuthError(400, "bad JSON", "the body is a JSON object")
        return body

    def endpoint(self, ep: Endpoint) -> Callable[[Request], Any]:
        handler: Handler = getattr(self, ep.handler_name)

        async def serve(request: Request) -> Response:
            address = _address(request)
            ctx: Ctx | None = None
            try:
                p = await run_in_threadpool(self._authenticate, request, ep.action, address)
                params = request.path_params
                cabinet = params.get("cabinet")
                target = cabinet or next(iter(params.values()), None)  # what the path names
                await run_in_threadpool(
                    self.auth.authorize,
                    p,
                    ep.action,
                    cabinet=cabinet,
                    address=address,
                    target=target,
                )
                ctx = Ctx(request, p, address, {}, ep.action, ep.says or ep.action, target)
                if request.method == "POST":
                    ctx.body = await self._json_body(request)
                status, value = await run_in_threadpool(handler, ctx)
            except AuthError as e:
                if ctx is not None and ep.audited and e.status != 403:
                    await run_in_threadpool(self._audit, ctx, "refused", {"error": e.error})
                return json_response(e.status, e.json())
            except Exception:
                log.exception("%s %s", request.method, request.url.path)
                if ctx is not None and ep.audited:
                    await run_in_threadpool(self._audit, ctx, "failed", {})
                return json_response(500, {"error": "internal error", "detail": None})
            if ep.audited:
                await run_in_threadpool(self._audit, ctx, "ok", {})
            return json_response(status, value)

        return serve

    def _audit(self, ctx: Ctx, outcome: str, extra: dict[str, Any]) -> None:
        self.auth.audit(
            ctx.principal,
            ctx.says,
            target=ctx.target,
            outcome=outcome,
            address=ctx.address,
            detail={**ctx.detail, **extra},
        )

    def _require(self, ctx: Ctx, cabinet: str, target: str | None = None) -> None:
        """The route's action on ``cabinet`` (the cabinet of the object the path names)."""
        ctx.detail.setdefault("cabinet", cabinet)
        self.auth.authorize(
            ctx.principal, ctx.action, cabinet=cabinet, address=ctx.address, target=target
        )

    def _cabinet(self, ctx: Ctx, cabinet: str) -> view.CabinetRow:
        for c in view.cabinet_rows(self.store):
            if c.id == cabinet:
                return c
        raise AuthError(404, "unknown cabinet", cabinet[:80])

    def _visible(self, ctx: Ctx) -> list[view.CabinetRow]:
        """The cabinets the principal may see, narrowed by ``?cabinet=`` when given."""
        rows = view.visible(ctx.principal, view.cabinet_rows(self.store))
        want = ctx.request.query_params.get("cabinet")
        if want is not None:
            rows = [r for r in rows if r.id == want]
            if not rows:
                raise AuthError(404, "unknown cabinet", want[:80])
        return rows

    def _targets(self, ctx: Ctx) -> list[str]:
        """Cabinets a publish goes to: ``cabinets``, else those on ``route``, else every one in
        service."""
        rows = [r for r in view.cabinet_rows(self.store) if not r.retired_at]
        names = _str_list(ctx.body, "cabinets")
        route = ctx.body.get("route")
        if names and route is not None:
            raise AuthError(400, "bad request", "give cabinets or route, not both")
        if names:
            known = {r.id for r in rows}
            unknown = [n for n in names if n not in known]
            if unknown:
                raise AuthError(404, "unknown cabinet", ", ".join(unknown)[:200])
            out = list(dict.fromkeys(names))
        elif route is not None:
            out = [r.id for r in rows if r.route == route]
        else:
            out = [r.id for r in rows]
        if not out:
            raise AuthError(404, "no cabinets", "nothing to publish to")
        if ctx.principal.scoped:  # publishing is an admin's (never scoped): kept for safety
            for cab in out:
                self._require(ctx, cab)
        return out

    # -- session --------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        address = _address(request)
        try:
            body = await self._json_body(request)
            got = await run_in_threadpool(
                self.auth.login, body.get("name"), body.get("password"), address
            )
        except AuthError as e:
            return json_response(e.status, e.json())
        answer = {**got.principal.to_json(), "expires_at": wall.iso(got.expires_at)}
        resp = json_response(200, answer)
        secure = self.settings.secure_cookie
        resp.set_cookie(
            SESSION_COOKIE,
            got.session_id,
            max_age=int(self.auth.settings.session_ttl_s),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https" if secure is None else secure,
        )
        return resp

    async def logout(self, request: Request) -> Response:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            await run_in_threadpool(self.auth.logout, sid, _address(request))
        resp = Response(status_code=204)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    async def me(self, request: Request) -> Response:
        try:
            p = await run_in_threadpool(self._authenticate, request, "me", _address(request))
        except AuthError as e:
            return json_response(e.status, e.json())
        return json_response(200, p.to_json())

    # -- cabinets -------------------------------------------------------------------------------
    def list_cabinets(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, view.overview(self.store, self._visible(ctx))

    def get_cabinet(self, ctx: Ctx) -> tuple[int, Any]:
        [one] = view.overview(self.store, [self._cabinet(ctx, ctx.param("cabinet"))])
        return 200, one

    def get_stock(self, ctx: Ctx) -> tuple[int, Any]:
        cab = self._cabinet(ctx, ctx.param("cabinet"))
        return 200, {"cabinet": cab.id, "lanes": view.stock(self.store, cab.id)}

    def list_commands(self, ctx: Ctx) -> tuple[int, Any]:
        cab = self._cabinet(ctx, ctx.param("cabinet"))
        limit = _query_int(ctx, "limit", 50, 1, 1000)
        return 200, view.commands(self.store, cab.id, limit)

    def get_command(self, ctx: Ctx) -> tuple[int, Any]:
        cmd_id = ctx.param("cmd_id")
        cab = view.command_cabinet(self.store, cmd_id)
        if cab is None:
            raise AuthError(404, "unknown command", cmd_id[:80])
        self._require(ctx, cab, cmd_id)
        [one] = view.commands(self.store, cab, 1, cmd_id)
        return 200, one

    def _command(
        self, ctx: Ctx, cmd: Any, args: Any, ttl: Any = act.TTL_DEFAULT_S, cabinet: str = ""
    ) -> Any:
        cabinet = cabinet or ctx.param("cabinet")
        ctx.detail.update(cmd=cmd, args=args)
        message = act.queue_command(
            self.store, cabinet, cmd, args, by=ctx.principal.name, at=self.auth.clock(), ttl_s=ttl
        )
        ctx.detail["cmd_id"] = message["cmd_id"]
        [one] = view.commands(self.store, cabinet, 1, message["cmd_id"])
        return 202, one

    def send_command(self, ctx: Ctx) -> tuple[int, Any]:
        b = ctx.body
        return self._command(ctx, b.get("cmd"), b.get("args", {}), b.get("ttl_s", 600))

    def open_door(self, ctx: Ctx) -> tuple[int, Any]:
        args = {"door": ctx.body.get("door"), "reason": ctx.body.get("reason")}
        return self._command(ctx, "open_door", args)

    def _card_command(self, ctx: Ctx, cmd: str) -> tuple[int, Any]:
        """``{"account"}`` as the contract names a card, or ``{"card"}``: a staff card's id."""
        account = ctx.body.get("account")
        if ctx.body.get("card") is not None:
            ctx.detail["card"] = ctx.body["card"]
            account = act.card_account(
                self.store, ctx.param("cabinet"), ctx.body["card"], self.auth.clock()
            )
        return self._command(ctx, cmd, {"account": account})

    def block_card(self, ctx: Ctx) -> tuple[int, Any]:
        return self._card_command(ctx, "block_card")

    def unblock_card(self, ctx: Ctx) -> tuple[int, Any]:
        return self._card_command(ctx, "unblock_card")

    # -- alarms ---------------------------------------------------------------------------------
    def list_alarms(self, ctx: Ctx) -> tuple[int, Any]:
        state = ctx.request.query_params.get("state", "open")
        limit = _query_int(ctx, "limit", 200, 1, 5000)
        ids = [c.id for c in self._visible(ctx)]
        return 200, alarm_view.alarms(self.store, ids, state, limit)

    def ack_alarm(self, ctx: Ctx) -> tuple[int, Any]:
        alarm = ctx.param("alarm")
        ctx.target = alarm
        self._require(ctx, alarm_view.cabinet_of(self.store, alarm), alarm)
        ctx.detail["note"] = ctx.body.get("note")
        return 200, alarm_view.acknowledge(
            self.store, alarm, ctx.body.get("note"), ctx.principal.name, self.auth.clock()
        )

    # -- stock ----------------------------------------------------------------------------------
    def restock(self, ctx: Ctx) -> tuple[int, Any]:
        route = ctx.param("route")
        within = _query_int(ctx, "within_days", 2, 0, 3650)
        low = _query_int(ctx, "low", 1, 0, 100000)
        rows = view.visible(ctx.principal, view.cabinet_rows(self.store))
        today = self.auth.clock().astimezone(self.zone).date()
        if not any(r.route == route for r in view.cabinet_rows(self.store)):
            raise AuthError(404, "unknown route", route[:80])
        return 200, view.restock_list(self.store, route, rows, today, within_days=within, low=low)

    # -- sales ----------------------------------------------------------------------------------
    def _sales(self, ctx: Ctx, review_queue: bool) -> tuple[int, Any]:
        ids = [c.id for c in self._visible(ctx)]
        return 200, view.sales(
            self.store,
            ids,
            review_queue=review_queue,
            since=_query_time(ctx, "since"),
            until=_query_time(ctx, "until"),
            limit=_query_int(ctx, "limit", 100, 1, 1000),
        )

    def list_sales(self, ctx: Ctx) -> tuple[int, Any]:
        return self._sales(ctx, False)

    def review_queue(self, ctx: Ctx) -> tuple[int, Any]:
        return self._sales(ctx, True)

    def _sale(self, ctx: Ctx) -> tuple[str, str, str | None, int]:
        sale = ctx.param("sale")
        ctx.target = sale
        got = view.sale_cabinet(self.store, sale)
        if got is None:
            raise AuthError(404, "unknown sale", sale[:80])
        cabinet, sale_no, total = got
        self._require(ctx, cabinet, sale)
        return sale, cabinet, sale_no, total

    def get_sale(self, ctx: Ctx) -> tuple[int, Any]:
        sale, cabinet, _, _ = self._sale(ctx)
        [one] = view.sales(self.store, [cabinet], sale_ids=[sale], limit=1)
        return 200, one

    def refund(self, ctx: Ctx) -> tuple[int, Any]:
        sale, cabinet, sale_no, total = self._sale(ctx)
        if sale_no is None:
            raise AuthError(409, "sale has no id its cabinet knows", sale)
        b = ctx.body
        args: dict[str, Any] = {"sale": sale_no, "reason": b.get("reason")}
        for key in ("items", "amount_fen"):
            if b.get(key) is not None:
                args[key] = b[key]
        amount = args.get("amount_fen")
        if isinstance(amount, int) and amount > total:
            raise AuthError(400, "refund over the sale", {"total_fen": total})
        return self._command(ctx, "refund", args, cabinet=cabinet)

    def review_sale(self, ctx: Ctx) -> tuple[int, Any]:
        sale, cabinet, _, _ = self._sale(ctx)
        note = alarm_view.check_note(ctx.body.get("note"))
        ctx.detail["note"] = note
        act.review_sale(
            self.store, sale, cabinet, note, by=ctx.principal.name, at=self.auth.clock()
        )
        [one] = view.sales(self.store, [cabinet], sale_ids=[sale], limit=1)
        return 200, one

    # -- versions, publishing -------------------------------------------------------------------
    def get_versions(self, ctx: Ctx) -> tuple[int, Any]:
        kind = ctx.param("kind")
        if kind not in view.DOWN_KINDS:
            raise AuthError(404, "unknown kind", f"one of {', '.join(view.DOWN_KINDS)}")
        return 200, view.versions(self.store, kind, [c.id for c in self._visible(ctx)])

    def _published(self, ctx: Ctx, versions: dict[str, int]) -> tuple[int, Any]:
        ctx.detail["versions"] = versions
        return 200, {"versions": versions}

    def publish_catalog(self, ctx: Ctx) -> tuple[int, Any]:
        targets = self._targets(ctx)
        catalog = ctx.body.get("catalog")
        ctx.detail["version"] = catalog.get("version") if isinstance(catalog, dict) else None
        got = act.publish_downlinks(
            self.store,
            self.publish,
            "catalog",
            dict.fromkeys(targets, catalog),
            by=ctx.principal.name,
            at=self.auth.clock(),
        )
        return self._published(ctx, got)

    def publish_prices(self, ctx: Ctx) -> tuple[int, Any]:
        targets = self._targets(ctx)
        ctx.detail["prices"] = ctx.body.get("prices")
        got = act.publish_prices(
            self.store,
            self.publish,
            targets,
            ctx.body.get("prices"),
            by=ctx.principal.name,
            at=self.auth.clock(),
        )
        return self._published(ctx, got)

    def push_config(self, ctx: Ctx) -> tuple[int, Any]:
        targets = self._targets(ctx)
        config = ctx.body.get("config")
        ctx.detail["config"] = config
        got = act.publish_downlinks(
            self.store,
            self.publish,
            "config",
            dict.fromkeys(targets, config),
            by=ctx.principal.name,
            at=self.auth.clock(),
        )
        return self._published(ctx, got)

    # -- users, tokens, audit -------------------------------------------------------------------
    def list_users(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, self.auth.users()

    def add_user(self, ctx: Ctx) -> tuple[int, Any]:
        b = ctx.body
        ctx.target = b.get("name") if isinstance(b.get("name"), str) else None
        user = self.auth.add_user(
            check_name(b.get("name")),
            b.get("role"),
            b.get("password"),
            cabinets=_str_list(b, "cabinets"),
            routes=_str_list(b, "routes"),
        )
        ctx.detail.update({k: v for k, v in user.items() if k != "name"})
        return 201, user

    def _lock(self, ctx: Ctx, disabled: bool) -> tuple[int, Any]:
        name = ctx.param("name")
        ctx.target = name
        self.auth.set_disabled(name, disabled)
        return 200, {"name": name, "disabled": disabled}

    def lock_user(self, ctx: Ctx) -> tuple[int, Any]:
        return self._lock(ctx, True)

    def unlock_user(self, ctx: Ctx) -> tuple[int, Any]:
        return self._lock(ctx, False)

    def list_tokens(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, self.auth.tokens()

    def add_token(self, ctx: Ctx) -> tuple[int, Any]:
        b = ctx.body
        ctx.target = b.get("name") if isinstance(b.get("name"), str) else None
        ctx.detail.update(role=b.get("role"))
        token = self.auth.add_token(
            b.get("name"),
            b.get("role"),
            cabinets=_str_list(b, "cabinets"),
            routes=_str_list(b, "routes"),
            by=ctx.principal,
        )
        return 201, {"name": b.get("name"), "role": b.get("role"), "token": token}

    def revoke_token(self, ctx: Ctx) -> tuple[int, Any]:
        name = ctx.param("name")
        ctx.target = name
        self.auth.revoke_token(name)
        return 200, {"name": name, "revoked": True}

    def read_audit(self, ctx: Ctx) -> tuple[int, Any]:
        q = ctx.request.query_params
        before = _query_int(ctx, "before", 0, 0, 2**62)
        return 200, self.auth.audit_entries(
            actor=q.get("actor"),
            action=q.get("action"),
            target=q.get("target"),
            limit=_query_int(ctx, "limit", 100, 1, 1000),
            before_id=before or None,
        )

    # -- staff cards ----------------------------------------------------------------------------
    def list_staff(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, act.staff_cards(self.store)

    def _staff(self, ctx: Ctx, status: str) -> tuple[int, Any]:
        got = act.set_staff_status(
            self.store, ctx.param("card"), status, by=ctx.principal.name, at=self.auth.clock()
        )
        ctx.target = got["card"]
        ctx.detail.update(status=status, cabinets=got["told"])
        return 200, got

    def block_staff(self, ctx: Ctx) -> tuple[int, Any]:
        return self._staff(ctx, "blocked")

    def unblock_staff(self, ctx: Ctx) -> tuple[int, Any]:
        return self._staff(ctx, "active")


def fleet_routes(
    store: Store,
    auth: Auth,
    publish: Publish | None = None,
    settings: FleetSettings | None = None,
) -> Sequence[BaseRoute]:
    """The fleet API's routes, for ``create_app(..., extra_routes=...)``. ``publish(cabinet,
    kind, message)`` sends a signed downlink on its way (the service's ``Publisher.publish_down``;
    None: kept for HTTP polling only)."""
    api = FleetApi(store, auth, publish, settings or FleetSettings())
    routes: list[BaseRoute] = [
        Route(f"{API}/login", api.login, methods=["POST"]),
        Route(f"{API}/logout", api.logout, methods=["POST"]),
        Route(f"{API}/me", api.me, methods=["GET"]),
    ]
    routes += [Route(f"{API}{ep.path}", api.endpoint(ep), methods=[ep.method]) for ep in ENDPOINTS]
    return routes
