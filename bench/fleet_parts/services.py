"""The real parts the fleet benchmark runs against, each a child process on loopback:
PostgreSQL 15 (as ``nobody``, in a temp dir), mosquitto, and ``kiosk central ingest`` workers.
Plus what it reads about processes: CPU seconds and memory from /proc."""

from __future__ import annotations

import getpass
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
MOSQUITTO = "/usr/sbin/mosquitto"
# Descriptors beyond one per connection: the interpreter, its libraries, logs, PostgreSQL's
# sockets, the workers' connections; generous, since running out mid-run spoils the figures.
NOFILE_MARGIN = 1000


class SetupError(Exception):
    """The machine cannot run the benchmark as asked (the message says what to change)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SetupError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def raise_nofile(connections: int) -> int:
    """Raise this process's RLIMIT_NOFILE (inherited by mosquitto, started after) to what
    ``connections`` need; a SetupError naming the limit when it cannot be."""
    need = connections + NOFILE_MARGIN
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:  # root (CAP_SYS_RESOURCE) may raise the hard limit itself
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return need
        except (ValueError, OSError) as e:
            raise SetupError(
                f"RLIMIT_NOFILE: the hard limit is {hard} open files, and {connections:,}"
                f" connections need about {need:,} in this process and as many in mosquitto"
                f" ({e}). Raise it (`ulimit -Hn {need}` as root, LimitNOFILE= in a systemd"
                " unit, nofile in /etc/security/limits.conf) or run fewer --cabinets."
            ) from e
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- /proc -----------------------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy (not idle, not waiting on I/O)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = f[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a live process, in MB (NaN when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def children(parent: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == parent:
                out.append(int(d.name))
    return out


# -- PostgreSQL ------------------------------------------------------------------------------------
@dataclass
class Postgres:
    """A throwaway PostgreSQL 15 cluster: initdb as ``nobody`` (it refuses to run as root),
    trust auth for user ``kiosk``, listening on 127.0.0.1 only."""

    root: Path
    port: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str = "kiosk") -> str:
        return f"postgresql://kiosk@127.0.0.1:{self.port}/{db}"

    def _as_nobody(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "nobody", "--", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start(self) -> Postgres:
        if not (PG_BIN / "initdb").exists():
            raise SetupError(f"PostgreSQL 15 is not installed ({PG_BIN}): make bootstrap")
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, "nobody")
        self.port = free_port()
        initdb = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "kiosk", "--auth=trust"]
        self._as_nobody(*initdb, "-E", "UTF8", "--no-sync")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log")]
        self._as_nobody(*ctl, "-o", opts, "-w", "start")
        self.create_database("kiosk")
        return self

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def cpu_seconds(self) -> float:
        """The postmaster and all its backends (the ones alive now)."""
        pm = self.pid
        return cpu_seconds(pm) + sum(cpu_seconds(p) for p in children(pm))

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
            subprocess.run(["runuser", "-u", "nobody", "--", *ctl], capture_output=True)


# -- mosquitto -------------------------------------------------------------------------------------
@dataclass
class Broker:
    root: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        if not Path(MOSQUITTO).exists():
            raise SetupError(f"{MOSQUITTO} is not installed: make bootstrap")
        self.port = free_port()
        conf = self.root / "mosquitto.conf"
        # `user`: as root, mosquitto would drop to its own user; max_connections -1: no cap;
        # max_queued_messages: an ack for a busy cabinet must never be dropped by the broker;
        # sys_interval 1: $SYS counts (connected clients, subscriptions) once a second.
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nmax_connections -1\nallow_anonymous true\n"
            f"persistence false\nuser {getpass.getuser()}\nmax_queued_messages 100000\n"
            "sys_interval 1\nset_tcp_nodelay true\nlog_type error\nlog_type warning\n"
            f"log_dest file {self.root / 'mosquitto.log'}\n"
        )
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- ingest workers --------------------------------------------------------------------------------
@dataclass
class Workers:
    """``kiosk central ingest`` processes, one shared subscription group."""

    db_url: str
    mqtt_url: str
    log_dir: Path
    procs: list[subprocess.Popen[bytes]]

    @classmethod
    def start(cls, k: int, db_url: str, mqtt_url: str, log_dir: Path) -> Workers:
        procs, logs = [], []
        env = {**os.environ, "KIOSK_LOG_LEVEL": "warning"}
        cmd = [sys.executable, "-m", "kiosk", "central", "ingest", "--db", db_url]
        for _ in range(k):
            logs.append(log_dir / f"ingest-{len(list(log_dir.glob('ingest-*')))}.log")
            with logs[-1].open("wb") as err:
                procs.append(
                    subprocess.Popen(
                        [*cmd, "--mqtt", mqtt_url],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=err,
                    )
                )
        workers = cls(db_url, mqtt_url, log_dir, procs)
        for p, log in zip(procs, logs, strict=True):  # one JSON line once started
            assert p.stdout is not None
            if not p.stdout.readline():
                workers.stop()
                tail = log.read_text(errors="replace")[-2000:]
                raise SetupError(f"an ingest worker exited ({p.returncode}):\n{tail}")
        return workers

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids)

    def peak_rss_mb(self) -> list[float]:
        return [memory_mb(p, "VmHWM") for p in self.pids]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def cores() -> int:
    return len(os.sched_getaffinity(0))
