"""The centre's HTTP side (docs/integration.md, "HTTP"): a Starlette app served by uvicorn.

- ``/api/v1/cabinets/{cabinet}/...``: the cabinets' API. Every request is checked in this
  order, all before a body larger than the limit is read: a known cabinet (404), its rate
  limit (429 + ``Retry-After``; a token is spent only once the signature proves the request
  is the cabinet's), ``X-Cabinet`` naming it and the request signed (401),
  ``X-Timestamp`` within ``skew_s`` of the centre's clock (401 ``clock skew``, with the
  centre's time), ``Content-Length`` within the limit (413, nothing read), the body read with
  the limit enforced as it streams in (chunked bodies too), then the signature over it (401).
  Every answer to a request that passed those checks is signed for the cabinet (``X-Timestamp``
  and ``X-Signature`` over the exact answer bytes, ``kiosk.signing.signed_properties``).
- ``/s/{cabinet}/{nonce}``: the scan-to-open page for the customer's phone (``central.phone``).
- ``GET /healthz`` (the database answers) and ``GET /metrics`` (Prometheus).
- ``/admin/faults`` (GET, POST): only in a simulated centre; without ``simulate`` there is no
  ``/admin`` at all.

Errors are JSON ``{"error", "detail"}`` (404, 405 and 500 too), except what uvicorn refuses
before the app sees a request: a request it cannot parse (``Content-Length: abc``, two
different lengths) gets its plain-text ``400 Invalid HTTP request received.``

The database and the payment provider are called in worker threads (``run_in_threadpool``):
the event loop only parses, checks and signs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central import payments as pay
from central import phone as phone_page
from central.faults import Faults, parse_faults
from central.metrics import Metrics
from central.payments import PaymentProvider
from central.phone import PhoneLogin
from central.ratelimit import Decision, RateLimiter
from central.store import Store
from kiosk import contract, signing, wire
from kiosk.contract import ContractError, decode_batch, loads

log = logging.getLogger(__name__)

API = "/api/v1/cabinets/{cabinet}"
JSON_TYPE = "application/json"
MAX_AFTER = 2**53  # versions are 1..2^53 (kiosk.contract's ranges)
ADMIN_BODY_BYTES = 65_536
_ID_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))  # printable ASCII, no space


@dataclass(frozen=True)
class HttpSettings:
    # The largest batch a cabinet may be configured to send (``batch_max_bytes`` is at most
    # 1 MB, 256 kB by default) and the largest single record: a refused batch (413) would
    # stay on the cabinet for ever.
    body_limit_bytes: int = contract.MAX_BATCH_BYTES
    rate_per_s: float = 20.0  # per cabinet, after a burst of ``burst`` requests
    burst: int = 60
    skew_s: int = wire.HTTP_SKEW_S  # X-Timestamp further than this either way: 401 clock skew

    def __post_init__(self) -> None:
        if self.body_limit_bytes < 1024 or self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("HttpSettings: body_limit_bytes >= 1024, rate_per_s > 0, burst >= 1")


class HttpError(Exception):
    """An answer ``{"error", "detail"}``; ``error`` is one of a few fixed texts (the metric's
    reason label), ``detail`` says more."""

    def __init__(
        self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
    ):
        super().__init__(f"{status} {error}")
        self.status, self.error, self.detail = status, error, detail
        self.headers = headers or {}

    def json(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail}


@dataclass(frozen=True)
class Call:
    """A cabinet's request that passed every check: who, what it sent, when it arrived."""

    cabinet: str
    key: bytes = field(repr=False)
    body: bytes
    request: Request
    started: float  # time.monotonic() at arrival


class _Hangup(Response):
    """No answer: the status line goes out and the connection is closed before the body.

    ASGI has no way to close a connection without starting an answer, so this starts one
    (503, promising a body) and returns; uvicorn then closes the connection ("ASGI callable
    returned without completing response"). The client sees an incomplete answer, as when a
    centre dies mid-answer, and retries: for ``drop_acks`` that is the point."""

    def __init__(self) -> None:
        super().__init__(status_code=503)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"2")]}
        )


Answer = tuple[int, Any] | _Hangup  # (status, JSON value; None for 204) or no answer at all
Handler = Callable[[Call], Awaitable[Answer]]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(status: int, value: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_dumps(value), status, headers, JSON_TYPE)


class CloseUnreadBodies:
    """ASGI middleware: an answer sent before the request's body was read whole (a refusal,
    a 404, a page that reads no body) closes the connection (``Connection: close``); else
    uvicorn would go on reading, and discarding, whatever the client still sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        unread = headers.get(b"content-length", b"0") not in (b"", b"0") or (
            b"transfer-encoding" in headers
        )

        async def receiving() -> Message:
            nonlocal unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = False
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and unread:
                message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        await self.app(scope, receiving, sending)


_CLOSE = (b"connection", b"close")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be larger than ``limit``: from
    ``Content-Length`` before a byte is read, else (chunked) while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit() and len(declared) <= 18):
            raise HttpError(400, "bad Content-Length", "a non-negative integer")
        if int(declared) > limit:
            raise HttpError(413, "body too large", {"limit_bytes": limit})
    chunks: list[bytes] = []
    n = 0
    async with aclosing(request.stream()) as stream:
        async for chunk in stream:
            n += len(chunk)
            if n > limit:
                raise HttpError(413, "body too large", {"limit_bytes": limit})
            chunks.append(chunk)
    return b"".join(chunks)


def _query_int(request: Request, name: str, high: int) -> int:
    values = request.query_params.getlist(name)
    if not values:
        return 0
    v = values[-1]
    if len(values) > 1 or not (v.isascii() and v.isdigit() and len(v) <= 16) or int(v) > high:
        raise HttpError(400, "bad query", f"{name} must be an integer 0..{high}")
    return int(v)


def _is_id(v: str) -> bool:
    return 0 < len(v) <= 64 and all(c in _ID_CHARS for c in v)


class _App:
    """The handlers, over what ``create_app`` was given."""

    def __init__(
        self,
        store: Store,
        settings: HttpSettings,
        simulate: bool,
        payments: PaymentProvider,
        phone: PhoneLogin,
        faults: Faults | None,
        metrics: Metrics,
        on_stored: Callable[[], None] | None,
    ) -> None:
        self.store = store
        self.settings = settings
        # Faults apply only in a simulated centre, whatever the caller passes.
        self.faults = (faults or Faults()) if simulate else None
        self.payments = payments
        self.phone = phone
        self.metrics = metrics
        self.on_stored = on_stored
        self.limiter = RateLimiter(settings.rate_per_s, settings.burst)

    # -- the cabinets' API ---------------------------------------------------------------------
    def cabinet_route(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            started = time.monotonic()
            try:
                call = await self._admit(request, started)
            except HttpError as e:
                self.metrics.rejects.labels("http", e.error).inc()
                return json_response(e.status, e.json(), e.headers)
            except ClientDisconnect:
                return Response(status_code=400)  # nobody is listening
            try:
                answer = await handler(call)
            except HttpError as e:
                self.metrics.rejects.labels("http", e.error).inc()
                answer = (e.status, e.json())
            except Exception:
                log.exception("%s %s from %s", request.method, request.url.path, call.cabinet)
                answer = (500, {"error": "internal error", "detail": None})
            if isinstance(answer, _Hangup):
                return answer
            return self._signed(call.key, *answer)

        return endpoint

    async def _admit(self, request: Request, started: float) -> Call:
        cabinet = request.path_params["cabinet"]
        if self.faults is not None:
            if self.faults.take("http_500"):
                raise HttpError(500, "simulated server trouble")
            if self.faults.take("http_429"):
                raise HttpError(429, "too many requests", "simulated", {"Retry-After": "1"})
            stall = self.faults.current.stall_s
            if stall:
                await asyncio.sleep(stall)
        # The cabinet's live key, and during a key rotation's grace period the one before.
        keys = await run_in_threadpool(self._keys, cabinet)
        if not keys:  # a stranger, or a retired cabinet
            raise HttpError(404, "unknown cabinet", cabinet[:80])
        # Looked at before the body is read, spent only once the request proves to be the
        # cabinet's: a stranger naming a cabinet cannot use up its allowance.
        self._within_rate(self.limiter.check(cabinet))
        h = request.headers
        if h.get("x-cabinet") != cabinet:
            raise HttpError(401, "X-Cabinet does not name this cabinet", cabinet)
        ts, sig = h.get("x-timestamp"), h.get("x-signature")
        if ts is None or sig is None:
            raise HttpError(401, "unsigned", "X-Timestamp and X-Signature are required")
        if not (ts.isascii() and ts.isdigit() and len(ts) <= 12):
            raise HttpError(401, "bad timestamp", "X-Timestamp is Unix seconds, an integer")
        now = time.time()
        if abs(now - int(ts)) > self.settings.skew_s:
            raise HttpError(401, "clock skew", {"centre_time": int(now)})
        body = await read_body(request, self.settings.body_limit_bytes)
        # The answer is signed with the key this request was signed with.
        key, why = keys[0], signing.check_signed(keys[0], ts, sig, body)
        for other in keys[1:] if why is not None else ():
            if signing.check_signed(other, ts, sig, body) is None:
                key, why = other, None
                break
        if why is not None:
            raise HttpError(401, why)
        self._within_rate(self.limiter.take(cabinet))
        return Call(cabinet, key, body, request, started)

    @staticmethod
    def _within_rate(decision: Decision) -> None:
        if not decision.allowed:
            raise HttpError(
                429,
                "too many requests",
                {"retry_after_s": decision.retry_after_s},
                {"Retry-After": str(decision.retry_after_s)},
            )

    def _keys(self, cabinet: str) -> tuple[bytes, ...]:
        return self.store.verify_keys(cabinet)

    def _signed(self, key: bytes, status: int, value: Any) -> Response:
        body = b"" if value is None else _dumps(value)
        props = signing.signed_properties(key, body, time.time())
        headers = {
            "X-Timestamp": props[signing.TIMESTAMP_PROPERTY],
            "X-Signature": props[signing.SIGNATURE_PROPERTY],
        }
        return Response(body, status, headers, None if value is None else JSON_TYPE)

    async def post_batches(self, call: Call) -> Answer:
        key = call.request.headers.get("idempotency-key")
        if key is None or not _is_id(key):
            raise HttpError(400, "Idempotency-Key required", "the batch id")
        answer = await run_in_threadpool(self._store_batch, call, key)
        if self.faults is not None and self.faults.take("drop_acks"):
            return _Hangup()
        self.metrics.batches.labels("http").inc()
        self.metrics.ack_latency.labels("http").observe(time.monotonic() - call.started)
        return answer

    def _store_batch(self, call: Call, idempotency_key: str) -> tuple[int, Any]:
        try:
            batch = decode_batch(call.body, max_bytes=self.settings.body_limit_bytes)
        except ContractError as e:
            raise HttpError(400, "malformed batch", str(e)) from None
        if batch.batch != idempotency_key:
            raise HttpError(400, "Idempotency-Key is not the batch id", batch.batch)
        digest = hashlib.sha256(call.body).hexdigest()
        [answer] = self.store.store_batches([(call.cabinet, batch, digest)])
        if answer.conflict:
            raise HttpError(422, "batch id reused with another body", {"batch": batch.batch})
        m = self.metrics
        fresh = answer.fresh  # stored for the first time by this request (a replay: 0)
        m.records_stored.labels("http").inc(fresh)
        m.duplicates.labels("http").inc(len(answer.stored) - fresh)
        if answer.rejected:
            m.rejects.labels("http", "bad record").inc(len(answer.rejected))
        if self.on_stored is not None and fresh:
            self.on_stored()
        return 200, answer.to_json()

    def downlink(self, kind: str) -> Handler:
        async def get(call: Call) -> Answer:
            after = _query_int(call.request, "after", MAX_AFTER)

            def work() -> dict[str, Any] | None:
                self.store.touch(call.cabinet)
                return self.store.latest_downlink(call.cabinet, kind, after)

            message = await run_in_threadpool(work)
            return (200, message) if message is not None else (204, None)

        return get

    async def get_commands(self, call: Call) -> Answer:
        after = call.request.query_params.get("after")
        if after is not None and not _is_id(after):
            raise HttpError(400, "bad query", "after is a cmd_id")

        def work() -> list[dict[str, Any]]:
            self.store.touch(call.cabinet)
            return self.store.commands_after(call.cabinet, after)

        return 200, await run_in_threadpool(work)

    async def authorize(self, call: Call) -> Answer:
        try:
            req = pay.parse_authorize(call.body)
        except ContractError as e:
            raise HttpError(400, "bad request", str(e)) from None
        try:
            answer = await run_in_threadpool(
                pay.authorize, self.store, self.payments, call.cabinet, req
            )
        except pay.ProviderUnavailable as e:
            raise HttpError(503, "payment provider unavailable", str(e)) from None
        return 200, answer

    async def capture(self, call: Call) -> Answer:
        try:
            req = pay.parse_capture(call.body)
        except ContractError as e:
            raise HttpError(400, "bad request", str(e)) from None
        return await run_in_threadpool(pay.capture, self.store, call.cabinet, req)

    # -- the rest ----------------------------------------------------------------------------
    async def phone_page(self, request: Request) -> Response:
        try:
            body = await read_body(request, phone_page.MAX_BODY_BYTES)
        except HttpError as e:
            return json_response(e.status, e.json())
        page = await run_in_threadpool(
            phone_page.serve,
            self.store,
            self.phone,
            request.method,
            request.path_params["cabinet"],
            request.path_params["nonce"],
            body,
            request.headers,
        )
        return Response(page.body, page.status, media_type=page.content_type)

    async def healthz(self, request: Request) -> Response:
        try:
            ok = await run_in_threadpool(self.store.healthy)
        except Exception:
            log.exception("healthz")
            ok = False
        if ok:
            return json_response(200, {"ok": True, "db": True})
        return json_response(
            503, {"ok": False, "db": False, "error": "database unavailable", "detail": None}
        )

    async def metrics_page(self, request: Request) -> Response:
        # In a thread: the connected-cabinets gauge reads the database.
        data = await run_in_threadpool(self.metrics.render)
        return Response(data, 200, {"Content-Type": self.metrics.content_type})

    async def admin_faults(self, request: Request) -> Response:
        assert self.faults is not None  # the route exists only in a simulated centre
        if request.method == "POST":
            try:
                body = await read_body(request, ADMIN_BODY_BYTES)
                self.faults.set(parse_faults(loads(body)))
            except HttpError as e:
                return json_response(e.status, e.json())
            except ValueError as e:  # ContractError is one
                return json_response(400, {"error": "bad faults", "detail": str(e)})
        return json_response(200, self.faults.current.to_json())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return json_response(exc.status_code, {"error": error, "detail": request.url.path}, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette logs nothing itself here; uvicorn logs the exception it re-raises.
    return json_response(500, {"error": "internal error", "detail": None})


def create_app(
    store: Store,
    settings: HttpSettings,
    *,
    simulate: bool,
    payments: PaymentProvider,
    phone: PhoneLogin,
    faults: Faults | None,
    metrics: Metrics,
    on_stored: Callable[[], None] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The centre's HTTP app. ``on_stored()`` is called (in a worker thread) after a batch
    stored new records. ``faults`` act only when ``simulate`` (a new ``Faults`` if None).
    ``extra_routes`` are appended (the fleet API: ``central.fleet_api.fleet_routes``)."""
    a = _App(store, settings, simulate, payments, phone, faults, metrics, on_stored)
    routes: list[BaseRoute] = [
        Route(f"{API}/batches", a.cabinet_route(a.post_batches), methods=["POST"]),
        *(
            Route(f"{API}/{kind}", a.cabinet_route(a.downlink(kind)), methods=["GET"])
            for kind in wire.DOWN_KINDS
        ),
        Route(f"{API}/commands", a.cabinet_route(a.get_commands), methods=["GET"]),
        Route(f"{API}/payments/authorize", a.cabinet_route(a.authorize), methods=["POST"]),
        Route(f"{API}/payments/capture", a.cabinet_route(a.capture), methods=["POST"]),
        Route("/s/{cabinet}/{nonce}", a.phone_page, methods=["GET", "POST"]),
        Route("/healthz", a.healthz, methods=["GET"]),
        Route("/metrics", a.metrics_page, methods=["GET"]),
    ]
    if simulate:
        routes.append(Route("/admin/faults", a.admin_faults, methods=["GET", "POST"]))
    routes += extra_routes
    return Starlette(
        routes=routes,
        middleware=[Middleware(CloseUnreadBodies)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
