"""The central platform, simulated: the whole sync contract (sync.md) for tests and the demo.

- HTTP (``ThreadingHTTPServer``): ``/api/v1/cabinets/{id}/...`` with request signatures
  checked; ``/admin/...`` unsigned, for tests and operators (faults, catalogue, config,
  accounts, commands, stats); ``/s/{cabinet}/{nonce}`` the scan-to-open page a customer's
  phone opens (``central_phone``).
- MQTT (paho, a real broker): batches on ``+/up`` are stored and acknowledged on ``ack``;
  catalogue, configuration and accounts are published retained and signed; commands queued
  in the database (also by ``kiosk central send`` from another process) are published.
- Faults, set with ``POST /admin/faults``: ``drop_acks`` (N batches stored but not answered,
  -1 for all), ``http_500`` (N requests answered 500), ``stall_s`` (answers delayed),
  ``disconnect`` (the MQTT side leaves the broker for N seconds), ``duplicates`` (everything
  sent down is sent twice). ``POST /admin/faults`` with ``{}`` clears them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import paho.mqtt.client as mqtt

from kiosk import signing, wire
from simulators import central_phone
from simulators.central_store import CentralStore


@dataclass(frozen=True)
class Faults:
    drop_acks: int = 0
    http_500: int = 0
    stall_s: float = 0.0
    disconnect: float = 0.0
    duplicates: bool = False


FAULT_TYPES = {
    "drop_acks": int,
    "http_500": int,
    "stall_s": (int, float),
    "disconnect": (int, float),
    "duplicates": bool,
}


@dataclass
class _FaultState:
    faults: Faults = field(default_factory=Faults)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, name: str) -> bool:
        """Consume one use of a counted fault (-1: forever)."""
        with self.lock:
            n = getattr(self.faults, name)
            if n == 0:
                return False
            if n > 0:
                self.faults = replace(self.faults, **{name: n - 1})
            return True


def parse_faults(data: Any) -> Faults:
    if not isinstance(data, dict):
        raise ValueError("faults are a JSON object")
    for k, v in data.items():
        if k not in FAULT_TYPES:
            raise ValueError(f"unknown fault {k!r}")
        if isinstance(v, bool) != (FAULT_TYPES[k] is bool) or not isinstance(v, FAULT_TYPES[k]):
            raise ValueError(f"{k}: bad value {v!r}")
    return Faults(**data)


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise ValueError(f"{url!r} is not mqtt://host:port or mqtts://host:port")
    tls = u.scheme == "mqtts"
    return u.hostname, u.port or (8883 if tls else 1883), tls


class CentralServer:
    """The simulator, started with ``start()`` and stopped with ``stop()``."""

    def __init__(
        self,
        db: str | Path,
        cabinets: dict[str, bytes],
        http: tuple[str, int] = ("127.0.0.1", 0),
        mqtt_url: str | None = None,
        ca_file: str | None = None,
    ):
        self.store = CentralStore(db)
        for cab, key in cabinets.items():
            self.store.add_cabinet(cab, key)
        self.keys = self.store.keys()
        self.faults = _FaultState()
        self.mqtt_url = mqtt_url
        self.ca_file = ca_file
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(http, _handler(self))
        self._httpd.daemon_threads = True
        self._client: mqtt.Client | None = None
        self._threads: list[threading.Thread] = []
        self._mqtt_connected = threading.Event()

    @property
    def http_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CentralServer:
        t = threading.Thread(target=self._httpd.serve_forever, name="central-http", daemon=True)
        t.start()
        self._threads.append(t)
        if self.mqtt_url:
            self._start_mqtt()
            t = threading.Thread(target=self._command_pump, name="central-cmds", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._client:
            self._client.disconnect()
            self._client.loop_stop()
        for t in self._threads:
            t.join(timeout=5)
        self.store.close()

    def __enter__(self) -> CentralServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_mqtt(self, timeout: float = 10) -> bool:
        return self._mqtt_connected.wait(timeout)

    # -- MQTT ------------------------------------------------------------------------------
    def _start_mqtt(self) -> None:
        host, port, tls = parse_mqtt_url(self.mqtt_url or "")
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="kiosk-central-sim",
            clean_session=False,  # the broker keeps batches sent while we are away
        )
        if tls:
            c.tls_set(ca_certs=self.ca_file)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(0.1, 2)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self._mqtt_connected.clear()
        c.on_message = self._on_message
        c.connect_async(host, port, keepalive=30)
        c.loop_start()
        self._client = c

    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            return
        client.subscribe([(wire.topic("+", "up"), 1), (wire.topic("+", "status"), 1)])
        self._mqtt_connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        cab = wire.cabinet_of(msg.topic)
        if cab not in self.keys:
            return  # not a cabinet of ours: MQTT carries no signature, so ignore it
        if msg.topic.endswith("/status"):
            self.store.touch(cab)
            return
        try:
            batch = json.loads(msg.payload)
            answer = self.store.store_batch(cab, batch, msg.payload)
        except (ValueError, TypeError, AttributeError):
            return  # a malformed batch has no id to answer
        if self.faults.take("drop_acks"):
            return
        stall = self.faults.faults.stall_s
        if stall:
            threading.Timer(stall, self._publish_ack, (cab, answer)).start()
        else:
            self._publish_ack(cab, answer)

    def _publish_ack(self, cab: str, answer: dict) -> None:
        if self._client is None:
            return
        payload = json.dumps(answer)
        for _ in range(2 if self.faults.faults.duplicates else 1):
            self._client.publish(wire.topic(cab, "ack"), payload, qos=1)

    def publish_down(self, cabinet: str, kind: str, message: dict) -> None:
        if self._client is None:
            return
        leaf = "down/cmd" if kind == "cmd" else f"down/{kind}"
        payload = json.dumps(message, ensure_ascii=False)
        for _ in range(2 if self.faults.faults.duplicates else 1):
            self._client.publish(wire.topic(cabinet, leaf), payload, qos=1, retain=kind != "cmd")

    def _command_pump(self) -> None:
        """Publish commands queued in the database, also by other processes."""
        while not self._stop.wait(0.1):
            if not self._mqtt_connected.is_set():
                continue
            for seq, cab, message in self.store.unpublished_commands():
                self.publish_down(cab, "cmd", message)
                self.store.mark_published(seq)

    def disconnect_for(self, seconds: float) -> None:
        c = self._client
        if c is None:
            return
        c.loop_stop()
        c.disconnect()
        self._mqtt_connected.clear()

        def back() -> None:
            if not self._stop.wait(seconds):
                c.reconnect()
                c.loop_start()

        threading.Thread(target=back, daemon=True).start()

    # -- operations used by /admin and by tests ---------------------------------------------
    def push(self, cabinet: str, kind: str, payload: dict, version: int | None = None) -> dict:
        if kind == "catalog" and version is None:
            version = int(payload.get("version", 0)) or None
        message = self.store.put_downlink(cabinet, kind, payload, version)
        self.publish_down(cabinet, kind, message)
        return message

    def set_faults(self, faults: Faults) -> None:
        with self.faults.lock:
            self.faults.faults = faults
        if faults.disconnect:
            self.disconnect_for(faults.disconnect)


# -- HTTP ------------------------------------------------------------------------------------
class _HttpError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None):
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


def _handler(central: CentralServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            if parts[:1] == ["s"] and len(parts) == 3 and method in ("GET", "POST"):
                page = central_phone.serve(
                    central.store,
                    method,
                    parts[1],
                    parts[2],
                    body,
                    self.headers.get("Content-Type", ""),
                    "text/html" in self.headers.get("Accept", ""),
                )
                self._send_bytes(page.status, page.content_type, page.body)
                return
            try:
                if parts[:1] == ["admin"]:
                    status, answer = _admin(central, method, parts[1:], body)
                elif parts[:3] == ["api", "v1", "cabinets"] and len(parts) >= 5:
                    if central.faults.take("http_500"):
                        raise _HttpError(500, "simulated server trouble")
                    stall = central.faults.faults.stall_s
                    if stall:
                        time.sleep(stall)
                    cab = parts[3]
                    self._check_signature(cab, body)
                    status, answer = _api(central, method, cab, parts[4:], query, body)
                    if status is None:  # an ack dropped: close without answering
                        self.close_connection = True
                        return
                else:
                    raise _HttpError(404, "no such path", url.path)
            except _HttpError as e:
                status, answer = e.status, {"error": e.error, "detail": e.detail}
            except (ValueError, KeyError, TypeError) as e:
                status, answer = 400, {"error": "bad request", "detail": str(e)}
            self._send(status, answer)

        def _check_signature(self, cab: str, body: bytes) -> None:
            key = central.keys.get(cab)
            if key is None:
                raise _HttpError(404, "unknown cabinet", cab)
            if self.headers.get("X-Cabinet") != cab:
                raise _HttpError(401, "X-Cabinet does not name this cabinet")
            try:
                ts = int(self.headers.get("X-Timestamp", ""))
            except ValueError:
                raise _HttpError(401, "X-Timestamp is not Unix seconds") from None
            if abs(time.time() - ts) > wire.HTTP_SKEW_S:
                raise _HttpError(401, "X-Timestamp too far from the centre's clock", ts)
            if not signing.verify_request(key, ts, body, self.headers.get("X-Signature", "")):
                raise _HttpError(401, "bad signature")

        def _send(self, status: int, answer: Any) -> None:
            data = b"" if answer is None else json.dumps(answer, ensure_ascii=False).encode()
            self._send_bytes(status, "application/json; charset=utf-8", data)

        def _send_bytes(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise _HttpError(400, "body is not JSON") from None


def _api(
    central: CentralServer,
    method: str,
    cab: str,
    parts: list[str],
    query: dict[str, str],
    body: bytes,
) -> tuple[int | None, Any]:
    store = central.store
    route = (method, "/".join(parts))
    if route == ("POST", "batches"):
        batch = _json(body)
        if not isinstance(batch, dict):
            raise _HttpError(400, "a batch is a JSON object")
        answer = store.store_batch(cab, batch, body)
        if central.faults.take("drop_acks"):
            return None, None
        return 200, {"stored": answer["stored"], "rejected": answer["rejected"]}
    if method == "GET" and route[1] in ("catalog", "config", "accounts"):
        after = int(query.get("after", "0") or 0)
        message = store.latest_downlink(cab, route[1], after)
        store.touch(cab)
        return (200, message) if message else (204, None)
    if route == ("GET", "commands"):
        store.touch(cab)
        return 200, store.commands_after(cab, query.get("after"))
    if route == ("POST", "payments/authorize"):
        m = _json(body)
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("code"), str)
            or not isinstance(m.get("hold_fen"), int)
            or m["hold_fen"] < 0
        ):
            raise _HttpError(400, "authorize needs {session, code, hold_fen}")
        return 200, store.authorize(cab, str(m.get("session")), m["code"], m["hold_fen"])
    if route == ("POST", "payments/capture"):
        m = _json(body)
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("auth_id"), str)
            or not isinstance(m.get("amount_fen"), int)
            or m["amount_fen"] < 0
        ):
            raise _HttpError(400, "capture needs {auth_id, amount_fen}")
        return store.capture(cab, m["auth_id"], m["amount_fen"])
    raise _HttpError(404, "no such path", "/".join(parts))


def _admin(central: CentralServer, method: str, parts: list[str], body: bytes) -> tuple[int, Any]:
    route = (method, "/".join(parts))
    if route == ("GET", "faults"):
        return 200, central.faults.faults.__dict__
    if route == ("POST", "faults"):
        try:
            faults = parse_faults(_json(body))
        except ValueError as e:
            raise _HttpError(400, "bad faults", str(e)) from None
        central.set_faults(faults)
        return 200, faults.__dict__
    if route == ("GET", "stats"):
        return 200, central.store.stats().__dict__
    if method == "POST" and route[1] in ("catalog", "config", "accounts"):
        m = _json(body)
        if not isinstance(m, dict) or m.get("cabinet") not in central.keys:
            raise _HttpError(400, "needs a known cabinet")
        kind = route[1]
        payload = m.get(kind)
        version = m.get("version")
        return 200, central.push(m["cabinet"], kind, payload, version)
    if route == ("POST", "commands"):
        m = _json(body)
        if not isinstance(m, dict) or m.get("cabinet") not in central.keys:
            raise _HttpError(400, "needs a known cabinet")
        return 200, central.store.add_command(
            m["cabinet"], str(m.get("cmd")), m.get("args") or {}, float(m.get("ttl_s", 600))
        )
    raise _HttpError(404, "no such admin path", "/".join(parts))
