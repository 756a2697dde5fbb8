"""The simulated cabinet's control port: text lines in, one line out each (hardware.md 5).

Answers are ``ok``, ``ok <json>`` or ``error <why>``; a bad line never stops the server.
``ControlClient`` is the other end, for tests and the demo.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from simulators.faults import Fault, parse_fault
from simulators.model import CabinetModel, ModelError


class Controlled(Protocol):
    """What the control port drives: the model, and the devices for scans and faults."""

    model: CabinetModel

    def scan(self, code: str) -> None: ...

    def fault(self, device: str, fault: Fault) -> None: ...

    def clear(self, device: str) -> None: ...


def _count(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise ValueError(f"{s!r} is not a whole number") from None


def _number(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"{s!r} is not a number") from None


def _take(c: Controlled, a: list[str]) -> Any:
    return {"grams": c.model.take(a[0], a[1], _count(a[2]) if len(a) > 2 else 1)}


def _put(c: Controlled, a: list[str]) -> Any:
    return {"grams": c.model.put(a[0], a[1], _count(a[2]) if len(a) > 2 else 1)}


def _pull(c: Controlled, a: list[str]) -> Any:
    return {"open": c.model.pull(a[0])}


@dataclass(frozen=True)
class Command:
    usage: str
    min_args: int
    max_args: int
    run: Callable[[Controlled, list[str]], Any]  # returns None (``ok``) or JSON-able


COMMANDS: dict[str, Command] = {
    "pull": Command("pull DOOR", 1, 1, _pull),
    "push": Command("push DOOR", 1, 1, lambda c, a: c.model.push(a[0])),
    "force": Command("force DOOR", 1, 1, lambda c, a: c.model.force(a[0])),
    "take": Command("take SHELF SKU [N]", 2, 3, _take),
    "put": Command("put SHELF SKU [N]", 2, 3, _put),
    "lean": Command(
        "lean SHELF GRAMS SECONDS",
        3,
        3,
        lambda c, a: c.model.lean(a[0], _number(a[1]), _number(a[2])),
    ),
    "foreign": Command(
        "foreign SHELF GRAMS", 2, 2, lambda c, a: c.model.foreign(a[0], _number(a[1]))
    ),
    "stock": Command(
        "stock SHELF SKU N", 3, 3, lambda c, a: c.model.stock(a[0], a[1], _count(a[2]))
    ),
    "scan": Command("scan CODE", 1, 1, lambda c, a: c.scan(a[0])),
    "fault": Command(
        "fault DEVICE KIND [ARGS]", 2, 3, lambda c, a: c.fault(a[0], parse_fault(a[1:]))
    ),
    # the door's board pulses the lock on an unlock but answers nothing; ``clear DOOR`` ends it
    "silent-unlock": Command(
        "silent-unlock DOOR", 1, 1, lambda c, a: c.fault(a[0], Fault("silent-unlock"))
    ),
    "clear": Command("clear DEVICE", 1, 1, lambda c, a: c.clear(a[0])),
    "state": Command("state", 0, 0, lambda c, a: c.model.state()),
}


def handle_line(target: Controlled, line: str) -> str:
    """One line in, one line out."""
    words = line.split()
    if not words:
        return "error empty line"
    cmd = COMMANDS.get(words[0])
    if cmd is None:
        return f"error unknown command {words[0]!r} (try: {', '.join(COMMANDS)})"
    args = words[1:]
    if not cmd.min_args <= len(args) <= cmd.max_args:
        return f"error usage: {cmd.usage}"
    try:
        result = cmd.run(target, args)
    except (ModelError, ValueError, KeyError) as e:
        return f"error {e.args[0] if e.args else e}"
    except Exception as e:  # the port must survive anything a line can cause
        return f"error {type(e).__name__}: {e}"
    return "ok" if result is None else f"ok {json.dumps(result, ensure_ascii=False)}"


class _Handler(socketserver.StreamRequestHandler):
    server: ControlServer

    def handle(self) -> None:
        for raw in self.rfile:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                answer = "error not UTF-8"
            else:
                answer = handle_line(self.server.target, line)
            self.wfile.write(answer.encode("utf-8") + b"\n")
            self.wfile.flush()


class ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target: Controlled, port: int = 0):
        self.target = target
        super().__init__(("127.0.0.1", port), _Handler)
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name="sim-control", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class ControlError(Exception):
    """The simulator answered ``error <why>``."""


class ControlClient:
    """A connection to a simulated cabinet's control port (``"127.0.0.1:PORT"``)."""

    def __init__(self, host_port: str, timeout: float = 10.0):
        host, _, port = host_port.rpartition(":")
        self._sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._file = self._sock.makefile("rwb")
        self._lock = threading.Lock()

    def command(self, line: str) -> Any:
        """Send one line; return the answer's JSON (None for a bare ``ok``)."""
        with self._lock:
            self._file.write(line.encode("utf-8") + b"\n")
            self._file.flush()
            answer = self._file.readline().decode("utf-8").rstrip("\n")
        if answer == "ok":
            return None
        if answer.startswith("ok "):
            return json.loads(answer[3:])
        if answer.startswith("error"):
            raise ControlError(answer[6:])
        raise ControlError(f"unexpected answer {answer!r}")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # one method per line of the protocol
    def pull(self, door: str) -> bool:
        return bool(self.command(f"pull {door}")["open"])

    def push(self, door: str) -> None:
        self.command(f"push {door}")

    def force(self, door: str) -> None:
        self.command(f"force {door}")

    def take(self, shelf: str, sku: str, n: int = 1) -> list[float]:
        return list(self.command(f"take {shelf} {sku} {n}")["grams"])

    def put(self, shelf: str, sku: str, n: int = 1) -> list[float]:
        return list(self.command(f"put {shelf} {sku} {n}")["grams"])

    def lean(self, shelf: str, grams: float, seconds: float) -> None:
        self.command(f"lean {shelf} {grams} {seconds}")

    def foreign(self, shelf: str, grams: float) -> None:
        self.command(f"foreign {shelf} {grams}")

    def stock(self, shelf: str, sku: str, n: int) -> None:
        self.command(f"stock {shelf} {sku} {n}")

    def scan(self, code: str) -> None:
        self.command(f"scan {code}")

    def fault(self, device: str, kind: str, *args: float | str) -> None:
        self.command(" ".join(["fault", device, kind, *map(str, args)]))

    def silent_unlock(self, door: str) -> None:
        self.command(f"silent-unlock {door}")

    def clear(self, device: str) -> None:
        self.command(f"clear {device}")

    def state(self) -> dict[str, Any]:
        return dict(self.command("state"))
