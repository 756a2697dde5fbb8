"""``kiosk demo``: the whole simulated cabinet, end to end, with nothing set up by hand.

A fresh run folder gets a copy of the example configuration on free loopback ports; the core's
stages (``kiosk.demo``: database, catalogue, product list, demo card and operator) run on it;
then every part starts as its own process, each in its own process group: a broker (Debian's
mosquitto), ``kiosk central --simulate``, ``kiosk sim``, ``kiosk run`` with the touchscreen,
``kiosk sync``.

With a display the window stays until it is closed or Ctrl-C. Without one (or ``--headless``)
the touchscreen renders offscreen and a scripted purchase runs through the simulator's control
port; every screen shown is saved as a PNG, the receipt and the centre's count are printed, and
the demo exits by itself. Whatever happens, every process started is stopped: SIGTERM to its
group, SIGKILL to what is left.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kiosk import config, control, money
from kiosk import demo as core
from simulators.control import ControlClient, ControlError

REPO = core.EXAMPLES.parent
DEFAULT_RUN = core.EXAMPLES / "run" / "demo"
DEFAULT_OUT = REPO / "demo-out"
MOSQUITTO = Path("/usr/sbin/mosquitto")
# The touchscreen's landscape layout (ui.theme.LAYOUTS): a window that fits a laptop screen.
WINDOW, DENSITY = "1280x800", "1.6"
STOP_GRACE_S = 5.0
# The purchase: two products from two shelves behind the door the card opens.
PICKS = {"D1": (("D1-S2", "hs-honey-500g"), ("D1-S3", "zr-chili-sauce"))}


class DemoFailed(Exception):
    """A step did not happen: the message says which, and where the logs are."""


@dataclass(frozen=True)
class Options:
    base_config: Path
    run_dir: Path
    out_dir: Path
    headless: bool
    timeout_s: float


@dataclass(frozen=True)
class Ports:
    mqtt: int
    http: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# -- the run folder ----------------------------------------------------------------------------
def write_config(base: Path, run_dir: Path, ports: Ports) -> Path:
    """The base configuration with its devices, database, key and catalogue in ``run_dir`` and
    the central platform on the demo's ports. ``run_dir`` starts empty every time."""
    cfg = config.load(base)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    text = base.read_text(encoding="utf-8")
    edits = [
        (r'^(url\s*=\s*)"(?:[^"]*/)?([^"/]+)"', r'\1"\2"'),  # device links beside the config
        (r'^(path\s*=\s*)"[^"]*"', r'\1"kiosk.db"'),
        (r'^(mqtt\s*=\s*)"[^"]*"', rf'\1"mqtt://127.0.0.1:{ports.mqtt}"'),
        (r'^(http\s*=\s*)"[^"]*"', rf'\1"http://127.0.0.1:{ports.http}"'),
    ]
    if cfg.central.key_file is not None:
        shutil.copy(cfg.central.key_file, run_dir / "cabinet.key")
        os.chmod(run_dir / "cabinet.key", 0o600)
        edits.append((r'^(key_file\s*=\s*)"[^"]*"', r'\1"cabinet.key"'))
    if cfg.simulator.catalog is not None:
        shutil.copy(cfg.simulator.catalog, run_dir / "catalog.json")
        edits.append((r'^(catalog\s*=\s*)"[^"]*"', r'\1"catalog.json"'))
    for pattern, repl in edits:
        text = re.sub(pattern, repl, text, flags=re.MULTILINE)
    path = run_dir / "cabinet.toml"
    path.write_text(text, encoding="utf-8")
    return path


def control_socket(run_dir: Path) -> Path:
    """A Unix socket path must fit in 108 bytes: a deep checkout falls back to /tmp."""
    path = run_dir / "control.sock"
    if len(str(path).encode()) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="kiosk-demo-")) / "control.sock"


# -- processes ---------------------------------------------------------------------------------
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGTERM when the demo itself dies, even by SIGKILL (Linux only)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """Every process the demo starts, each in its own session (so its own process group)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.procs: list[Proc] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, announces: bool = False
    ) -> Proc:
        """``announces``: the process prints a JSON line when up (read it with ``first_line``);
        otherwise its stdout goes straight to its log."""
        log = self.run_dir / f"{name}.log"
        with open(log, "ab") as f:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=f,
                env=env,
                cwd=self.run_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        if not announces:
            self.drain(proc)
        return proc

    def first_line(self, proc: Proc, timeout_s: float) -> dict[str, Any]:
        """The JSON line a server prints when it is up; the rest of its stdout goes to its log."""
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(proc.popen.stdout.readline()))  # type: ignore[union-attr]
        reader.daemon = True
        reader.start()
        reader.join(timeout_s)
        if not got or not got[0]:
            raise DemoFailed(f"{proc.name} did not start:\n{proc.tail()}")
        self.drain(proc)
        try:
            return dict(json.loads(got[0]))
        except ValueError:
            raise DemoFailed(f"{proc.name} printed {got[0]!r}, not its JSON line") from None

    def drain(self, proc: Proc) -> None:
        def copy(src: IO[bytes], log: Path) -> None:
            with open(log, "ab") as f:
                for line in src:
                    f.write(line)
                    f.flush()

        threading.Thread(
            target=copy, args=(proc.popen.stdout, proc.log), daemon=True, name=f"{proc.name}-out"
        ).start()

    def check_alive(self) -> None:
        for p in self.procs:
            code = p.popen.poll()
            if code is not None:
                raise DemoFailed(f"{p.name} exited ({code}):\n{p.tail()}")

    def stop_all(self) -> None:
        """Newest first (the controller before the devices it talks to, the broker last):
        SIGTERM to the group, SIGKILL to whatever of it is left after a grace period."""
        for p in reversed(self.procs):
            _signal_group(p.popen, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(STOP_GRACE_S)
            # the leader may be gone with children of its own still in the group
            _signal_group(p.popen, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(2.0)


def _signal_group(popen: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


def kiosk(*args: str) -> list[str]:
    return [sys.executable, "-m", "kiosk", *args]


def start_broker(procs: Processes, port: int) -> str:
    """Debian's mosquitto, an MQTT v5 broker, on 127.0.0.1:port."""
    run = procs.run_dir
    if not MOSQUITTO.exists():
        # The contract signs batches and acks in MQTT v5 user properties: a v3.1.1-only
        # broker (amqtt, once the fallback) cannot carry them.
        raise DemoFailed(
            "no MQTT v5 broker: install Debian's mosquitto (apt-get install mosquitto)"
        )
    conf = run / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n",
        encoding="utf-8",
    )
    procs.start("mosquitto", [str(MOSQUITTO), "-c", str(conf)])
    wait_for(lambda: _port_open(port), 10.0, f"mosquitto listening on port {port}", procs)
    return "mosquitto"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(
    pred: Callable[[], Any], timeout_s: float, what: str, procs: Processes, every_s: float = 0.1
) -> Any:
    """Poll ``pred`` until it returns something true; a process dying fails the step at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        procs.check_alive()
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


# -- the demo --------------------------------------------------------------------------------
class Run:
    def __init__(self, opts: Options, out: IO[str]):
        self.opts = opts
        self.out = out
        self.procs = Processes(opts.run_dir)
        self.deadline = time.monotonic() + opts.timeout_s
        self.control = control_socket(opts.run_dir)
        self.sim: ControlClient | None = None
        self.cfg_path = Path()
        self.central_db = opts.run_dir / "central.db"
        self.sim_address = ""
        self.central_url = ""  # the central service's own address, once it has announced it
        self.ports = Ports(mqtt=free_port(), http=free_port())
        self.cfg = config.load(opts.base_config)  # the run folder's copy once prepared

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    def left(self, cap: float) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DemoFailed(f"the demo took longer than {self.opts.timeout_s:.0f} s")
        return min(cap, remaining)

    def wait(self, pred: Callable[[], Any], cap: float, what: str) -> Any:
        try:
            return wait_for(pred, self.left(cap), what, self.procs)
        except DemoFailed as e:
            if "timed out" not in str(e):
                raise
            s = self._snap()
            seen = {k: s.get(k) for k in ("state", "refusal", "out_of_service")}
            raise DemoFailed(f"{e} (the controller: {seen if s else 'no answer'})") from None

    # -- set up and start ----------------------------------------------------------------------
    def prepare(self) -> None:
        self.cfg_path = write_config(self.opts.base_config, self.opts.run_dir, self.ports)
        if self.opts.headless:  # before the touchscreen starts writing into it
            shutil.rmtree(self.opts.out_dir, ignore_errors=True)
            self.opts.out_dir.mkdir(parents=True)
        core.run(self.cfg_path, out=self.out)  # database, catalogue, product list, people
        self.cfg = config.load(self.cfg_path)
        self.say()

    def start(self) -> None:
        run, cfg_arg = self.opts.run_dir, str(self.cfg_path)
        broker = start_broker(self.procs, self.ports.mqtt)
        self.say(f"broker     {broker} on mqtt://127.0.0.1:{self.ports.mqtt}")
        cabinet = f"{self.cfg.cabinet.id}={run / 'cabinet.key'}"
        central = self.procs.start(
            "central",
            kiosk(
                "central",
                "--db",
                str(self.central_db),
                "--http",
                f"127.0.0.1:{self.ports.http}",
                "--mqtt",
                f"mqtt://127.0.0.1:{self.ports.mqtt}",
                "--cabinet",
                cabinet,
                "--simulate",  # the phone page's test login and the scripted payment provider
            ),
            announces=True,
        )
        info = self.procs.first_line(central, self.left(20))
        self.central_url = str(info.get("http") or f"http://127.0.0.1:{self.ports.http}")
        self.say(
            f"central    {self.central_url} (the central service, `kiosk central --simulate`; "
            f"database {self.central_db.name})"
        )
        self.say(
            f"           {self.central_url}/metrics, {self.central_url}/healthz, "
            f"MQTT mqtt://127.0.0.1:{self.ports.mqtt}"
        )
        sim = self.procs.start("sim", kiosk("sim", "--config", cfg_arg), announces=True)
        urls = self.procs.first_line(sim, self.left(20))
        self.sim_address = str(urls["control"])
        self.sim = ControlClient(self.sim_address)
        self.say(f"cabinet    simulated, control port {urls['control']}")
        self.procs.start("controller", self._run_argv(), env=self._ui_env())
        self.wait(self._controller_state, 45, "the controller's control socket")
        self.say(f"controller {self.control} (kiosk ctl --control {self.control} state)")
        self.procs.start("sync", kiosk("sync", "--config", cfg_arg))
        self.say("sync       agent started")

    def _run_argv(self) -> list[str]:
        argv = kiosk("run", "--config", str(self.cfg_path), "--control", str(self.control))
        argv += ["--window", WINDOW]
        if self.opts.headless:
            argv += ["--shots", str(self.opts.out_dir)]
        return argv

    def _ui_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("KIVY_GL_BACKEND", None)  # "mock" draws nothing
        env.update(
            KIVY_HOME=str(self.opts.run_dir / "kivy"),
            KIVY_NO_ARGS="1",
            KIVY_NO_CONSOLELOG="1",
            KIVY_METRICS_DENSITY=DENSITY,
        )
        if self.opts.headless:
            env["SDL_VIDEODRIVER"] = "offscreen"
        return env

    def _controller_state(self) -> dict[str, Any] | None:
        try:
            reply = control.request(self.control, json.dumps({"intent": "state"}), 5.0)
        except (OSError, ValueError):
            return None
        return reply if reply.get("ok") else None

    # -- with a display ------------------------------------------------------------------------
    def windowed(self) -> int:
        """Until the window closes (or Ctrl-C); lines typed here go to the simulator."""
        ui = next(p for p in self.procs.procs if p.name == "controller")
        self.say()
        self.say("The touchscreen is open. Play the customer: type simulator lines here, e.g.")
        self.say(f"  scan {core.STAFF_CARD}        (the demo staff card at the scanner)")
        self.say("  pull D1 | take D1-S2 hs-honey-500g | take D1-S3 hs-tea-100g | push D1")
        self.say(f"Operator: card {core.OPERATOR_CARD}, PIN {core.OPERATOR_PIN}.")
        self.say("Close the window or press Ctrl-C to stop everything.")
        threading.Thread(target=self._forward_stdin, daemon=True, name="stdin").start()
        while ui.popen.poll() is None:
            for p in self.procs.procs:
                if p is not ui and p.popen.poll() is not None:
                    raise DemoFailed(f"{p.name} exited ({p.popen.returncode}):\n{p.tail()}")
            time.sleep(0.3)
        self.say("window closed")
        stats = self.centre_stats(10.0)
        if stats is not None:
            self.say(f"central simulator received: {json.dumps(stats)}")
        self.summary()
        return 0

    def _forward_stdin(self) -> None:
        with ControlClient(self.sim_address) as sim:
            for line in sys.stdin:
                if not line.strip():
                    continue
                try:
                    answer = sim.command(line.strip())
                    self.say("ok" if answer is None else f"ok {json.dumps(answer)}")
                except ControlError as e:
                    self.say(f"error {e}")

    # -- without a display: the scripted purchase ------------------------------------------
    def scripted(self) -> int:
        shots = self.opts.out_dir
        sim = self.sim
        assert sim is not None
        self.wait(self._idle, 20, "the controller to be idle")
        self.shot("idle")
        self.say()
        self.say(f"scan       staff card {core.STAFF_CARD}")
        sim.scan(core.STAFF_CARD)
        snap = self.wait(lambda: self._state_in("unlocking", "open"), 15, "the door to unlock")
        door = snap["session"]["door"]
        self.shot("authorise")
        self.say(f"unlocked   door {door}")
        if not sim.pull(door):
            raise DemoFailed(f"door {door} did not swing open when pulled")
        self.wait(lambda: self._state_in("open"), 10, "the controller to see the door open")
        self.shot("door-open")
        picks = PICKS.get(door) or self._two_shelves(door)
        for shelf, sku in picks:
            sim.take(shelf, sku)
            self.say(f"take       {sku} from {shelf}")
            time.sleep(0.6)  # a hand moves from one shelf to the next
        sim.push(door)
        self.say(f"push       door {door} shut")
        self.shot("settling")
        snap = self.wait(self._receipt, 30, "the receipt")
        self.shot("receipt")
        self.print_receipt(snap["receipt"])
        stats = self.wait(self._centre_has_sale, 30, "the sale at the central simulator")
        self.say()
        self.say(f"central simulator received: {json.dumps(stats)}")
        self.say(
            f"screenshots in {shots}: {', '.join(p.name for p in sorted(shots.glob('*.png')))}"
        )
        self.summary()
        return 0

    def summary(self) -> None:
        """Where everything ran: the addresses a newcomer looks at next (docs/central.md)."""
        mqtt = f"mqtt://127.0.0.1:{self.ports.mqtt}"
        self.say()
        self.say("summary")
        for name, where in (
            (
                "central service",
                f"{self.central_url} (`kiosk central`, database {self.central_db})",
            ),
            ("its metrics", f"{self.central_url}/metrics"),
            ("its health", f"{self.central_url}/healthz"),
            ("broker", f"{mqtt} (mosquitto; the cabinet's batches and the centre's acks)"),
            ("cabinet", f"{self.cfg.cabinet.id}, configuration {self.cfg_path}"),
            ("logs", str(self.opts.run_dir)),
        ):
            self.say(f"  {name:<16} {where}")

    def shot(self, screen: str) -> Path:
        """Wait for the touchscreen's screenshot of ``screen`` (ui.recorder names it)."""
        found = self.wait(
            lambda: sorted(self.opts.out_dir.glob(f"[0-9][0-9]-{screen}.png")),
            20,
            f"the {screen} screen (screenshot in {self.opts.out_dir})",
        )
        return Path(found[-1])

    def _snap(self) -> dict[str, Any]:
        """The controller's snapshot as JSON (``kiosk ctl state``), {} while it does not answer."""
        return dict((self._controller_state() or {}).get("snapshot") or {})

    def _idle(self) -> bool:
        s = self._snap()
        return s.get("state") == "idle" and not s.get("out_of_service")

    def _state_in(self, *states: str) -> dict[str, Any] | None:
        s = self._snap()
        if s.get("refusal") and s.get("state") in ("idle", "cancelled"):
            raise DemoFailed(f"the controller refused: {s['refusal']}")
        return s if s.get("state") in states else None

    def _receipt(self) -> dict[str, Any] | None:
        s = self._snap()
        if s.get("state") == "confirming":
            raise DemoFailed("the controller could not tell the basket apart (confirming)")
        return s if s.get("receipt") else None

    def _two_shelves(self, door: str) -> tuple[tuple[str, str], ...]:
        """Another configuration: the first lane of the first two shelves behind ``door``."""
        shelves = [s for s in self.cfg.shelves if s.door == door and s.lanes][:2]
        if len(shelves) < 2:
            raise DemoFailed(f"door {door} has fewer than two stocked shelves")
        return tuple((s.id, s.lanes[0].sku) for s in shelves)

    def _centre_has_sale(self) -> dict[str, int] | None:
        stats = self.centre_stats(self.left(20))
        return stats if stats and stats.get("sales", 0) >= 1 else None

    def centre_stats(self, timeout_s: float) -> dict[str, int] | None:
        """``kiosk central stats --json``: what the central simulator has received."""
        try:
            res = subprocess.run(
                kiosk("central", "stats", "--db", str(self.central_db), "--json"),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        return dict(json.loads(res.stdout)) if res.returncode == 0 else None

    def print_receipt(self, r: dict[str, Any]) -> None:
        self.say()
        self.say(f"receipt    {self.cfg.cabinet.name or self.cfg.cabinet.id}, door {r['door']}")
        rows = [
            (
                i["zh"],
                str(i["qty"]),
                money.yuan_sign(i["unit_price_fen"]),
                money.yuan_sign(i["line_fen"]),
            )
            for i in r["items"]
        ]
        rows.append(("合计 total", "", "", money.yuan_sign(r["total_fen"])))
        for line in core.table(("商品", "数量", "单价", "金额"), rows, right={1, 2, 3}):
            self.say(f"  {line}")
        suppliers = "、".join(s["zh"] for s in r["suppliers"])
        self.say(f"  paid by {r['method']} ({r['payment_status']}), sale {r['sale']}")
        self.say(f"  households supported: {r['households']} ({suppliers})")


def run(opts: Options, out: IO[str] = sys.stdout) -> int:
    try:
        demo = Run(opts, out)
    except config.ConfigError as e:
        print("\n".join(["kiosk demo: bad configuration:", *e.problems]), file=sys.stderr)
        return 2

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # the finally below stops every process

    # SIGINT too: a shell starting the demo in the background leaves SIGINT ignored.
    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        demo.prepare()
        demo.start()
        return demo.scripted() if opts.headless else demo.windowed()
    except DemoFailed as e:
        print(f"kiosk demo: {e}", file=sys.stderr)
        print(f"kiosk demo: logs in {opts.run_dir}", file=sys.stderr)
        return 1
    except (ControlError, OSError) as e:
        print(f"kiosk demo: {type(e).__name__}: {e} (logs in {opts.run_dir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kiosk demo: stopping", file=sys.stderr)
        return 130
    finally:
        if demo.sim is not None:
            with contextlib.suppress(OSError):
                demo.sim.close()
        demo.procs.stop_all()
        if demo.control.parent != opts.run_dir:  # the /tmp fallback of a deep checkout
            shutil.rmtree(demo.control.parent, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(args: argparse.Namespace) -> int:
    headless = bool(args.headless) or not has_display()
    opts = Options(
        base_config=Path(args.config) if args.config else core.DEFAULT_CONFIG,
        run_dir=Path(args.run_dir).resolve() if args.run_dir else DEFAULT_RUN,
        out_dir=Path(args.out).resolve() if args.out else DEFAULT_OUT,
        headless=headless,
        timeout_s=float(args.timeout),
    )
    return run(opts)
