"""systemd's notify protocol (sd_notify), without a dependency.

A unit with ``Type=notify`` waits for ``READY=1``; with ``WatchdogSec=`` it kills and restarts
the service when ``WATCHDOG=1`` stops arriving. Every function here is a no-op when the process
was not started by systemd (no ``$NOTIFY_SOCKET``), so tests and terminals need nothing.

The watchdog must be fed from the main loop itself, never from a helper thread: a thread would
keep pinging while the loop it vouches for is stuck, and the hang would never be restarted.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping


def _address(env: Mapping[str, str]) -> str | bytes | None:
    path = env.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    if path.startswith("@"):  # Linux abstract namespace: a leading NUL byte
        return b"\0" + path[1:].encode()
    if path.startswith("/"):
        return path
    return None  # vsock:// and other forms: not used on a cabinet


def send(*fields: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``KEY=VALUE`` lines in one datagram; return whether a notify socket took them."""
    addr = _address(os.environ if env is None else env)
    if addr is None:
        return False
    payload = "\n".join(fields).encode()
    # Non-blocking: a receiver that stopped reading fills its queue, and a blocking send would
    # then freeze the very loop the watchdog vouches for (and its SIGTERM handling with it).
    kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
    try:
        with socket.socket(socket.AF_UNIX, kind) as s:
            s.sendto(payload, addr)
    except OSError:
        return False  # systemd gone or its queue full: never worth crashing the service over
    return True


def ready(status: str | None = None) -> bool:
    fields = ["READY=1", f"MAINPID={os.getpid()}"]
    if status:
        fields.append(f"STATUS={_one_line(status)}")
    return send(*fields)


def watchdog() -> bool:
    return send("WATCHDOG=1")


def stopping(status: str | None = None) -> bool:
    fields = ["STOPPING=1"]
    if status:
        fields.append(f"STATUS={_one_line(status)}")
    return send(*fields)


def status(text: str) -> bool:
    """The one-line text ``systemctl status`` shows."""
    return send(f"STATUS={_one_line(text)}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Half of ``WatchdogSec`` in seconds, or None when systemd asked for no watchdog.

    ``WATCHDOG_PID`` (when set) must be this process: a child that inherited the environment
    must not feed its parent's watchdog.
    """
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


class Watchdog:
    """Call ``tick()`` once per main-loop iteration; it pings at most every WatchdogSec/2.

    Cheap enough to call thousands of times a second: it only reads the monotonic clock
    until a ping is due. Without ``WATCHDOG_USEC`` it does nothing.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        env = dict(os.environ if env is None else env)
        self._env = env
        self._clock = clock
        self.interval = watchdog_interval(env)
        self._last: float | None = None

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    def tick(self) -> bool:
        """Ping if due; return whether a ping was sent."""
        if self.interval is None:
            return False
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return send("WATCHDOG=1", env=self._env)


class DebugHang:
    """A test hook proving the watchdog works: with ``KIOSK_DEBUG=1`` in the environment,
    ``kill -USR2 PID`` makes the next ``check()`` block for ``KIOSK_DEBUG_HANG_S`` seconds
    (default 60), as a loop stuck on a dead device would. Without ``KIOSK_DEBUG=1`` SIGUSR2
    keeps its default action, so a cabinet in service cannot be hung by accident.

    Call ``check()`` from the loop whose progress feeds the watchdog. Must be created on the
    main thread (Python installs signal handlers only there).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        env = os.environ if env is None else env
        self.enabled = env.get("KIOSK_DEBUG") == "1"
        try:
            self.seconds = float(env.get("KIOSK_DEBUG_HANG_S", "60"))
        except ValueError:
            self.seconds = 60.0
        self._sleep = sleep
        self._armed = False
        if self.enabled:
            import signal

            signal.signal(signal.SIGUSR2, lambda *_: self.arm())

    def arm(self) -> None:
        self._armed = True

    def check(self) -> None:
        if self._armed:
            self._armed = False
            self._sleep(self.seconds)
