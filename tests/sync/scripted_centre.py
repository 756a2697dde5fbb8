"""A scripted stand-in for the centre's HTTP side, for unit tests of ``sync.http_link`` and of
the agent's answers to refusals: a real HTTP server on loopback that answers each request to a
path (``/batches``, ``/payments/capture`` ...) with the next answer scripted for it, then as a
well centre would (``usual``), signed with the cabinet's key unless told not to. What the real
centre says is tested against ``central.service`` (test_refusals.py, test_signed_mqtt.py)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kiosk import signing


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None  # JSON; None: an empty body
    headers: dict[str, str] = field(default_factory=dict)
    signed: bool = True
    key: bytes | None = None  # sign with this key instead of the cabinet's


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


# A reply made from the request (e.g. an ack naming what the batch held).
Script = Reply | Callable[[Seen], Reply]


def usual(seen: Seen) -> Reply:
    """A well centre: every record of a batch stored, captures done, nothing new down."""
    leaf = seen.path.split("?")[0].rsplit("/", 1)[-1]
    if leaf == "batches":
        batch = json.loads(seen.body)
        return Reply(200, {"batch": batch["batch"], "stored": [r["id"] for r in batch["records"]]})
    if leaf in ("capture", "authorize"):
        return Reply(200, {"ok": True, "auth_id": "a-1"})
    if leaf == "commands":
        return Reply(200, [])
    return Reply(204)


class ScriptedCentre:
    def __init__(self, key: bytes):
        self.key = key
        self.script: dict[str, deque[Script]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        centre = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(n))
                leaf = self.path.split("?")[0].rsplit("/", 1)[-1]
                with centre._lock:
                    centre.seen.append(seen)
                    queue = centre.script.get(leaf)
                    script = queue.popleft() if queue else usual
                reply = script(seen) if callable(script) else script
                body = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                headers = dict(reply.headers)
                if reply.signed:
                    props = signing.signed_properties(reply.key or centre.key, body, time.time())
                    headers["X-Timestamp"] = props[signing.TIMESTAMP_PROPERTY]
                    headers["X-Signature"] = props[signing.SIGNATURE_PROPERTY]
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ScriptedCentre:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def then(self, leaf: str, *replies: Script) -> ScriptedCentre:
        """The next answers to requests whose path ends in ``leaf`` (``batches``, ``capture``)."""
        with self._lock:
            self.script.setdefault(leaf, deque()).extend(replies)
        return self

    def left(self, leaf: str) -> int:
        """Scripted answers to ``leaf`` not yet given."""
        with self._lock:
            return len(self.script.get(leaf, ()))

    def posts(self, leaf: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == "POST" and s.path.endswith("/" + leaf)]
