"""The controller's control socket: one JSON line in, one JSON line out (``kiosk ctl``).

``ControlServer`` serves a Unix socket for ``kiosk run --headless --control PATH``;
``words_to_line`` turns ``kiosk ctl`` words into the JSON line; ``request`` sends one.

ctl words (baskets and lanes counted from 1, as people count):
  state | scan TEXT [DOOR] | confirm N|none | cancel | dismiss
  login [--card UID] [--pin PIN] | logout | restock DOOR | open DOOR [REASON]
  counts DOOR SHELF:SKU=N[@YYYY-MM-DD] ... | calibrate SHELF zero|known GRAMS
  planogram SHELF SKU[:LOW] ... [--force] | ack ALARM | refund SALE [SKU=N ...] [--amount FEN]
  or a JSON object: {"intent": "...", ...}
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any, Protocol

from kiosk import intents as I
from kiosk.snapshot import as_dict


class Submitter(Protocol):
    def submit(self, intent: I.Intent, timeout_s: float = 30.0) -> I.Result: ...


def answer(ctl: Submitter, line: str) -> dict[str, Any]:
    try:
        intent = I.from_dict(json.loads(line))
    except (ValueError, I.BadIntent) as e:
        return {"ok": False, "code": "bad_request", "detail": str(e)}
    res = ctl.submit(intent)
    out: dict[str, Any] = {"ok": res.ok, "code": res.code}
    if res.detail:
        out["detail"] = res.detail
    out.update(as_dict(res.data))
    return out


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            reply = answer(self.server.controller, line)  # type: ignore[attr-defined]
            self.wfile.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
            self.wfile.flush()


class ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, controller: Submitter, path: str | Path):
        self.path = Path(path)
        self.path.unlink(missing_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.controller = controller
        super().__init__(str(self.path), _Handler)
        os.chmod(self.path, 0o660)  # operators' tools only
        self._thread = threading.Thread(target=self.serve_forever, name="control", daemon=True)

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.path.unlink(missing_ok=True)


def request(path: str | Path, line: str, timeout_s: float = 30.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(line.encode("utf-8") + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf.decode("utf-8"))


class CtlUsage(ValueError):
    """ctl words that do not make an intent."""


def _opt(words: list[str], name: str) -> str | None:
    if name in words:
        i = words.index(name)
        if i + 1 >= len(words):
            raise CtlUsage(f"{name} needs a value")
        value = words[i + 1]
        del words[i : i + 2]
        return value
    return None


def words_to_line(words: list[str]) -> str:
    if not words:
        raise CtlUsage("an intent is needed (state, scan, confirm, login, restock, ...)")
    if words[0].startswith("{"):
        return " ".join(words)
    verb, rest = words[0], list(words[1:])
    d: dict[str, Any]
    try:
        if verb == "state":
            d = {"intent": "state"}
        elif verb == "scan":
            d = {"intent": "scan", "text": rest[0], "door": rest[1] if len(rest) > 1 else None}
        elif verb == "confirm":
            choice = None if rest[0] == "none" else int(rest[0]) - 1
            d = {"intent": "confirm_basket", "choice": choice}
        elif verb in ("cancel", "dismiss", "logout"):
            d = {
                "intent": {"dismiss": "dismiss_receipt", "logout": "operator_logout"}.get(
                    verb, verb
                )
            }
        elif verb == "login":
            d = {
                "intent": "operator_login",
                "card": _opt(rest, "--card"),
                "pin": _opt(rest, "--pin"),
            }
        elif verb == "restock":
            d = {"intent": "open_door_for_restock", "door": rest[0]}
        elif verb == "open":
            d = {"intent": "open_door", "door": rest[0], "reason": " ".join(rest[1:])}
        elif verb == "counts":
            counts = []
            for w in rest[1:]:
                lane, _, n = w.partition("=")
                shelf, _, sku = lane.partition(":")
                n, _, exp = n.partition("@")
                counts.append(
                    {"shelf": shelf, "sku": sku, "count": int(n), "expires_on": exp or None}
                )
            d = {"intent": "confirm_counts", "door": rest[0], "counts": counts}
        elif verb == "calibrate":
            d = {"intent": "calibrate", "shelf": rest[0], "step": rest[1]}
            if rest[1] == "known":
                d["known_g"] = int(rest[2])
        elif verb == "planogram":
            force = "--force" in rest
            rest = [w for w in rest if w != "--force"]
            lanes = []
            for w in rest[1:]:
                sku, _, low = w.partition(":")
                lanes.append({"sku": sku, "low_stock": int(low or 1)})
            d = {"intent": "set_planogram", "shelf": rest[0], "lanes": lanes, "force": force}
        elif verb == "ack":
            d = {"intent": "ack_alarm", "alarm": rest[0]}
        elif verb == "refund":
            amount = _opt(rest, "--amount")
            reason = _opt(rest, "--reason") or ""
            items = []
            for w in rest[1:]:
                sku, _, n = w.partition("=")
                items.append({"sku": sku, "qty": int(n)})
            d = {"intent": "refund", "sale": rest[0], "items": items, "reason": reason}
            if amount is not None:
                d["amount_fen"] = int(amount)
        else:
            raise CtlUsage(f"unknown intent {verb!r}")
    except (IndexError, ValueError) as e:
        if isinstance(e, CtlUsage):
            raise
        raise CtlUsage(f"{verb}: missing or bad arguments ({e})") from e
    return json.dumps(d, ensure_ascii=False)
