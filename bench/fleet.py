"""A fleet of cabinets against the real centre: mosquitto, K ``kiosk central ingest`` workers
and PostgreSQL 15, all started here on loopback.

The cabinets are simulated in this one asyncio process (``fleet_parts``: a minimal MQTT v5
client, one TCP connection per cabinet, no thread per cabinet), each sending signed batches as
the sync agent does (window of 8, resend after the ack timeout) with a busy lunch hour's mix of
sales, inventory, sessions, telemetry and events (``fleet_parts/load.py`` defines it).

Phases, each measured in the same run:

1. connect: N cabinets connected at once (each subscribes to its acks and downlinks and says
   online, retained, as the agent does); the time until the centre has stored their presence.
2. catalogue: one signed, retained catalogue to every connected cabinet through the centre's
   own publisher (``Store.put_downlink`` + ``Publisher.push``, in its own process), with the
   fleet idle: the time until every cabinet had it (signature checked), and the broker's
   memory before and after.
3. lunch: the fleet offers ``--rate`` times a lunch hour for ``--duration`` s, then gets up to
   2 ack timeouts + 30 s to have everything acked. Prints offered and stored records/s,
   store-to-ack latency (record made on the cabinet -> the ack naming it, p50/p95; a record
   never acked counts as the slowest), lost records (acked, so forgotten by the cabinet, yet
   missing at the centre), records not delivered by the end (still on the cabinets, not
   lost), doubled records (a (cabinet, seq) stored twice, a sale's rows twice), the workers'
   peak RSS, and the CPU each part used, with what other processes took (this client's
   share tells whether a miss is the load generator's).
4. drain: ``--drain CxR``: C cabinets back after a day offline with R records each, with 1 and
   with 2 workers (the ratio is contention on a 2-core machine, not scale-out), and the
   baseline: PostgreSQL ``COPY`` of the very rows the K-worker drain stored (every table the
   ingest wrote: records, batches, sales, sale_aliases, sale_lines) into a fresh database with
   the same tables and indexes, records/s (records rows over the time to COPY all of them).

mosquitto runs with ``set_tcp_nodelay true``: without it Nagle's algorithm and delayed ACKs
add ~40 ms to each small message on loopback, which would measure the kernel, not the centre.

    .venv/bin/python bench/fleet.py [--cabinets 10000] [--rate 10] [--duration 60]
                                    [--workers 2] [--drain 1000x200] [--quick]

Targets: 10,000 cabinets connected at once at 10x a lunch hour (about 600 sales/s), ack p95
<= 1 s, 0 lost, 0 doubled; the drain (K workers) at >= 30 % of the COPY rate. ``--quick`` (500
cabinets, 15 s, drain 200x200) is for development: the scale targets are not judged there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import math
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fleet_parts import load, services  # noqa: E402
from fleet_parts.cabinets import Cabinet, Shop, Tally  # noqa: E402
from fleet_parts.mqtt5 import Client, Message  # noqa: E402

from kiosk import wire  # noqa: E402

CATALOG = ROOT / "examples" / "catalog.json"
PUSH_CATALOG = ROOT / "bench" / "fleet_parts" / "push_catalog.py"
# The tables the ingest writes for records up, parents first (foreign keys), as COPY needs.
INGEST_TABLES = ("records", "batches", "sales", "sale_aliases", "sale_lines")
TARGET_CABINETS, TARGET_RATE = 10_000, 10.0
TARGET_P95_S = 1.0
TARGET_COPY_SHARE = 0.30


def key_of(cabinet: str) -> bytes:
    return hashlib.sha256(f"fleet-bench:{cabinet}".encode()).digest()


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- the centre's database -------------------------------------------------------------------------
def prepare_db(url: str, cabinets: Sequence[str]) -> float:
    """Migrate to the newest schema and provision ``cabinets`` with their keys; seconds taken."""
    from central import migrate

    t0 = time.perf_counter()
    migrate.upgrade(url)
    # One COPY rather than 10,000 Store.add_cabinet transactions: provisioning is not what
    # is measured. Columns as central/schema.py has them (keys in clear until Step 9).
    with (
        psycopg.connect(url) as c,
        c.cursor() as cur,
        cur.copy("COPY cabinets (id, key_hex) FROM STDIN") as cp,
    ):
        for cab in cabinets:
            cp.write_row((cab, key_of(cab).hex()))
    return time.perf_counter() - t0


def count_where(url: str, sql: str, *params: object) -> int:
    with psycopg.connect(url) as c:
        row = c.execute(sql, params).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


@dataclass(frozen=True)
class Audit:
    """The centre's rows for a phase's cabinets against what the cabinets sent."""

    sent: int
    stored: int
    lost: int  # ids acked (the cabinet would forget them) that the centre does not have
    unknown: int  # rows the centre has that no cabinet sent
    doubled: int  # one record kept twice: a (cabinet, seq) twice, a sale's rows twice

    @classmethod
    def of(cls, url: str, prefix: str, made: Sequence[str], pending: set[str]) -> Audit:
        """``pending``: ids the cabinets still hold (never acked): not lost, on their way."""
        like = prefix + "%"
        with psycopg.connect(url) as c:
            # One snapshot for every count: workers may still be storing a backlog meanwhile.
            c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            have = {
                r[0] for r in c.execute("SELECT id FROM records WHERE cabinet LIKE %s", (like,))
            }
            q = c.execute(
                "SELECT count(*) - count(DISTINCT (cabinet, seq)),"
                " count(*) FILTER (WHERE type = 'sale'),"
                " coalesce(sum(jsonb_array_length(body::jsonb -> 'items'))"
                "   FILTER (WHERE type = 'sale'), 0)"
                " FROM records WHERE cabinet LIKE %s",
                (like,),
            ).fetchone()
            assert q is not None
            seq_twice, sale_records, items = (int(v) for v in q)
            sales = c.execute("SELECT count(*) FROM sales WHERE cabinet LIKE %s", (like,))
            lines = c.execute("SELECT count(*) FROM sale_lines WHERE cabinet LIKE %s", (like,))
            sales_n = int(sales.fetchone()[0])  # type: ignore[index]
            lines_n = int(lines.fetchone()[0])  # type: ignore[index]
        sent = set(made)
        doubled = seq_twice + max(0, sales_n - sale_records) + max(0, lines_n - items)
        return cls(len(sent), len(have), len(sent - have - pending), len(have - sent), doubled)


def copy_baseline(pg: services.Postgres, source: str, prefix: str) -> tuple[float, dict[str, int]]:
    """COPY the rows the drain stored (every table the ingest wrote) into a fresh database with
    the same schema; (records/s, rows per table). Only the COPY into it is timed."""
    target = pg.create_database(f"copy_{int(time.time() * 1000)}")
    with psycopg.connect(source) as c:
        cabinets = [
            r[0] for r in c.execute("SELECT id FROM cabinets WHERE id LIKE %s", (prefix + "%",))
        ]
    prepare_db(target, cabinets)
    dumps: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    with psycopg.connect(source) as c, c.cursor() as cur:
        for table in INGEST_TABLES:
            buf = io.BytesIO()
            query = f"COPY (SELECT * FROM {table} WHERE cabinet LIKE '{prefix}%') TO STDOUT"
            with cur.copy(query + " (FORMAT binary)") as cp:
                for chunk in cp:
                    buf.write(chunk)
            dumps[table] = buf.getvalue()
            counts[table] = count_where(
                source, f"SELECT count(*) FROM {table} WHERE cabinet LIKE %s", prefix + "%"
            )
    with psycopg.connect(target) as c, c.cursor() as cur:
        t0 = time.perf_counter()
        for table, data in dumps.items():
            with cur.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as cp:
                cp.write(data)
        c.commit()
        elapsed = time.perf_counter() - t0
    return counts["records"] / elapsed, counts


# -- watching the parts ----------------------------------------------------------------------------
class SysWatch:
    """mosquitto's own counts ($SYS, once a second): connected clients, shared subscribers."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.updated: dict[str, float] = {}
        self.client = Client("fleet-bench-sys", on_message=self._on)

    def _on(self, m: Message) -> None:
        with contextlib.suppress(ValueError):
            name = m.topic.removeprefix("$SYS/broker/")
            self.values[name] = float(m.payload)
            self.updated[name] = time.monotonic()

    async def fresh(self, name: str, timeout: float = 5.0) -> None:
        """Wait for a value of ``name`` published from now on (mosquitto sends one only when
        it changed, at most once a second)."""
        t0 = time.monotonic()
        while self.updated.get(name, 0.0) < t0 and time.monotonic() - t0 < timeout:
            await asyncio.sleep(0.1)

    async def start(self, port: int) -> SysWatch:
        await self.client.connect("127.0.0.1", port)
        for t in ("clients/connected", "shared_subscriptions/count", "heap/current"):
            await self.client.subscribe(f"$SYS/broker/{t}", qos=0)
        return self

    async def wait(self, name: str, pred: Callable[[float], bool], timeout: float = 60) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if name in self.values and pred(self.values[name]):
                return True
            await asyncio.sleep(0.1)
        return False


@dataclass
class Cpu:
    """CPU seconds of each part over a window (this client, workers, broker, PostgreSQL)."""

    parts: dict[str, Callable[[], float]]
    start: dict[str, float] = field(default_factory=dict)
    t0: float = 0.0

    @staticmethod
    def own() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    def begin(self) -> None:
        self.start = {k: f() for k, f in self.parts.items()}
        self.t0 = time.perf_counter()

    def shares(self) -> dict[str, float]:
        """Each part's CPU as a fraction of one core over the window so far."""
        wall = time.perf_counter() - self.t0
        return {k: (f() - self.start[k]) / wall for k, f in self.parts.items()}


def cpu_for(workers: services.Workers, broker: services.Broker, pg: services.Postgres) -> Cpu:
    return Cpu(
        {
            "client": Cpu.own,
            "workers": workers.cpu_seconds,
            "mosquitto": lambda: services.cpu_seconds(broker.pid),
            "postgres": pg.cpu_seconds,
            "machine": services.machine_busy_seconds,
        }
    )


# -- phases ----------------------------------------------------------------------------------------
@dataclass
class Plan:
    cabinets: int
    rate: float
    duration: float
    workers: int
    drain_cabinets: int
    drain_records: int
    ack_timeout_s: float
    quick: bool

    def drain_workers(self) -> list[int]:
        return sorted({1, 2, self.workers})


@dataclass
class Env:
    plan: Plan
    pg: services.Postgres
    broker: services.Broker
    url: str
    tmp: Path
    sys: SysWatch
    catalog: dict


async def start_workers(env: Env, k: int) -> services.Workers:
    workers = services.Workers.start(k, env.url, env.broker.url, env.tmp)
    if not await env.sys.wait("shared_subscriptions/count", lambda v: v >= k, 60):
        raise services.SetupError(f"{k} ingest workers did not subscribe within 60 s")
    return workers


async def stop_workers(env: Env, workers: services.Workers) -> None:
    workers.stop()
    await env.sys.wait("shared_subscriptions/count", lambda v: v == 0, 30)


async def wait_presence(env: Env, prefix: str, n: int, timeout: float = 120) -> float:
    """Seconds until the centre holds every cabinet of ``prefix`` online (the status flood)."""
    t0 = time.perf_counter()
    sql = "SELECT count(*) FROM cabinets WHERE online AND id LIKE %s"
    while count_where(env.url, sql, prefix + "%") < n and time.perf_counter() - t0 < timeout:
        await asyncio.sleep(0.25)
    return time.perf_counter() - t0


async def connect_phase(env: Env, out: dict) -> load.Fleet:
    """Every cabinet connected at once; their presence stored by the centre."""
    p = env.plan
    names = [f"F-{i:05d}" for i in range(p.cabinets)]
    tally = Tally()  # one for the whole fleet
    fleet = load.Fleet([Cabinet(n, key_of(n), tally, p.ack_timeout_s) for n in names])
    out["connect_s"] = await fleet.connect("127.0.0.1", env.broker.port)
    out["connect_failed"] = fleet.failed[:3]
    out["presence_s"] = await wait_presence(env, "F-", fleet.connected)
    await env.sys.wait("clients/connected", lambda v: v >= fleet.connected, 5)
    out["broker_connected"] = env.sys.values.get("clients/connected", 0.0)
    out["connected"] = fleet.connected
    return fleet


async def catalog_phase(env: Env, fleet: load.Fleet, out: dict) -> None:
    """The centre's publisher (its own process) pushes one catalogue to every connected
    cabinet; timed from its first push to the last cabinet's receipt."""
    tally = fleet.cabinets[0].tally
    names = [c.id for c in fleet.cabinets if c.client.connected]
    rss0, heap0 = services.memory_mb(env.broker.pid), env.sys.values.get("heap/current", 0)
    proc = subprocess.Popen(
        [sys.executable, str(PUSH_CATALOG), env.url, env.broker.url, str(CATALOG)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise services.SetupError("the catalogue publisher did not connect")
    proc.stdin.write("\n".join(names) + "\ngo\n")
    proc.stdin.flush()
    t0 = time.monotonic()
    published = asyncio.create_task(asyncio.to_thread(proc.stdout.readline))
    done_at = math.inf
    # Every cabinet has it, or 30 s passed since the publisher had its last PUBACK.
    while len(tally.catalogs) < len(names) and time.monotonic() - done_at < 30:
        if published.done():
            done_at = min(done_at, time.monotonic())
        await asyncio.sleep(0.05)
    out["catalog_s"] = time.monotonic() - t0
    out["catalog_got"], out["catalog_of"] = len(tally.catalogs), len(names)
    out["catalog_bad"] = tally.bad_catalogs
    out["catalog_pub"] = json.loads(await published or "{}")
    proc.wait(60)
    await env.sys.fresh("heap/current")
    out["broker_rss"] = (rss0, services.memory_mb(env.broker.pid))
    out["broker_heap"] = (heap0 / 2**20, env.sys.values.get("heap/current", 0) / 2**20)


async def load_phase(env: Env, fleet: load.Fleet, workers: services.Workers, out: dict) -> None:
    """Lunch at ``--rate`` for ``--duration`` s, then every record acked (or the wait over)."""
    p = env.plan
    tally = fleet.cabinets[0].tally
    cpu = cpu_for(workers, env.broker, env.pg)
    shop = Shop(env.catalog, random.Random(1))
    cpu.begin()
    window = await fleet.offer(shop, p.rate, p.duration)
    out["cpu"] = cpu.shares()
    out["connected_end"] = fleet.connected
    out["offered_rps"] = len(tally.made) / window
    out["stored_rps"] = tally.acked / window
    out["settle_s"] = await fleet.settle(2 * p.ack_timeout_s + 30)
    out["unacked"] = fleet.unacked()
    # A record never acked counts as the slowest: a percentile of the acked ones alone would
    # look better the more the centre drops.
    waits = tally.latencies + [math.inf] * out["unacked"]
    out["p50"], out["p95"] = pct(waits, 0.5), pct(waits, 0.95)
    out["batch_p95"] = pct(tally.batch_latencies, 0.95)
    out["rewinds"], out["bad_acks"] = tally.rewinds, tally.bad_acks
    out["rejected"] = len(tally.rejected)
    out["audit"] = Audit.of(env.url, "F-", tally.made, fleet.pending_ids())
    out["peak_rss"] = workers.peak_rss_mb()


async def drain_phase(env: Env, k: int, out: dict) -> None:
    """C cabinets, each with R records made over the past day, connect and send them all."""
    p = env.plan
    prefix = f"D{k}-"
    workers = await start_workers(env, k)
    tally = Tally()
    shop = Shop(env.catalog, random.Random(k))
    cabinets = []
    day_ago = time.time() - 86_400
    for i in range(p.drain_cabinets):
        cab = Cabinet(f"{prefix}{i:05d}", key_of(f"{prefix}{i:05d}"), tally, p.ack_timeout_s)
        while len(cab.pending) < p.drain_records:
            at = wire.iso(day_ago + len(cab.pending) * 86_400 / p.drain_records)
            (shop.sale if p.drain_records - len(cab.pending) >= 3 else shop.telemetry)(cab, at)
        cabinets.append(cab)
    fleet = load.Fleet(cabinets)
    await fleet.connect("127.0.0.1", env.broker.port)
    await wait_presence(env, prefix, fleet.connected)
    cpu = cpu_for(workers, env.broker, env.pg)
    cpu.begin()
    t0 = time.perf_counter()
    fleet.pump_all()
    await fleet.settle(max(120.0, 4 * p.ack_timeout_s))
    elapsed = time.perf_counter() - t0
    out["cpu"] = cpu.shares()
    out["records"] = len(tally.made)
    out["rps"] = tally.acked / elapsed
    out["elapsed_s"] = elapsed
    out["unacked"] = fleet.unacked()
    out["rewinds"] = tally.rewinds
    out["audit"] = Audit.of(env.url, prefix, tally.made, fleet.pending_ids())
    out["peak_rss"] = workers.peak_rss_mb()
    await fleet.close()
    await stop_workers(env, workers)


async def run(env: Env) -> dict[str, bool | None]:
    """Every phase, each printed as soon as it ends; the targets."""
    p = env.plan
    env.sys = await SysWatch().start(env.broker.port)
    workers = await start_workers(env, p.workers)
    f: dict = {}
    fleet = await connect_phase(env, f)
    print_connect(p, f)
    c: dict = {}
    await catalog_phase(env, fleet, c)
    print_catalog(c)
    await load_phase(env, fleet, workers, f)
    print_load(p, f)
    await fleet.close()
    await stop_workers(env, workers)
    print(f"drain: {p.drain_cabinets:,} cabinets back after a day offline, {p.drain_records} each")
    drains: dict[int, dict] = {}
    for k in p.drain_workers():
        drains[k] = {}
        await drain_phase(env, k, drains[k])
        print_drain(k, drains[k])
    copy_rps, copy_rows = copy_baseline(env.pg, env.url, f"D{p.workers}-")
    share = drains[p.workers]["rps"] / copy_rps
    print_copy(p, drains, copy_rps, copy_rows, share)
    env.sys.client.disconnect()
    audits = [f["audit"], *(d["audit"] for d in drains.values())]
    scale = None if p.quick else f["connected"] >= TARGET_CABINETS and p.rate >= TARGET_RATE
    return {
        f"{TARGET_CABINETS:,} cabinets connected at once at {TARGET_RATE:g}x a lunch hour": scale,
        f"all {p.cabinets:,} cabinets asked for connected at once": f["connected"] == p.cabinets,
        f"store-to-ack p95 <= {TARGET_P95_S:g} s": f["p95"] <= TARGET_P95_S,
        "0 lost (fleet and drains)": all(a.lost == 0 for a in audits),
        "0 doubled (fleet and drains)": all(a.doubled == 0 for a in audits),
        "every cabinet got the catalogue": c["catalog_got"] == c["catalog_of"],
        f"drain at >= {TARGET_COPY_SHARE:.0%} of the COPY rate": share >= TARGET_COPY_SHARE,
    }


# -- the report ------------------------------------------------------------------------------------
def _cpu_line(shares: dict[str, float]) -> str:
    ours = {k: v for k, v in shares.items() if k != "machine"}
    parts = ", ".join(f"{k} {v:.0%}" for k, v in ours.items())
    others = max(0.0, shares["machine"] - sum(ours.values()))
    return (
        f"{parts}; other processes {others:.0%}; the machine was busy"
        f" {shares['machine']:.0%} of {services.cores()}00 %"
    )


def _row(name: str, text: str) -> None:
    print(f"  {name:28s} {text}", flush=True)


def _s(v: float) -> str:
    return "never (unacked)" if math.isinf(v) else f"{v:.3f}"


def print_connect(p: Plan, f: dict) -> None:
    print(f"fleet: {p.cabinets:,} cabinets, {p.workers} ingest worker(s)")
    failed = f"; failed: {'; '.join(f['connect_failed'])}" if f["connect_failed"] else ""
    _row(
        "connected cabinets",
        f"{f['connected']:,} (the broker counts {f['broker_connected']:,.0f} clients: these,"
        f" the workers and the bench's $SYS reader); all connected in {f['connect_s']:.1f} s,"
        f" their presence stored in {f['presence_s']:.1f} s{failed}",
    )


def print_load(p: Plan, f: dict) -> None:
    a: Audit = f["audit"]
    print(f"lunch at {p.rate:g}x for {p.duration:g} s ({p.cabinets:,} cabinets)")
    _row("connected at the end", f"{f['connected_end']:,}")
    expect = load.records_per_s(p.cabinets, p.rate)
    _row("offered records/s", f"{f['offered_rps']:,.0f} (the mix expects {expect:,.0f})")
    _row("stored records/s", f"{f['stored_rps']:,.0f} (acked within the window)")
    _row(
        "store-to-ack p50 / p95",
        f"{_s(f['p50'])} / {_s(f['p95'])} s (a batch's publish-to-ack p95 {_s(f['batch_p95'])} s)",
    )
    _row(
        "lost / doubled",
        f"{a.lost:,} / {a.doubled:,} (sent {a.sent:,}, the centre holds {a.stored:,},"
        f" unknown {a.unknown})",
    )
    _row(
        "not delivered at the end",
        f"{f['unacked']:,} (still on the cabinets, resent until acked; waited"
        f" {f['settle_s']:.0f} s after the window)",
    )
    _row(
        "resent, bad acks, rejected", f"{f['rewinds']:,} batches, {f['bad_acks']}, {f['rejected']}"
    )
    _row("workers' peak RSS", ", ".join(f"{m:.1f} MB" for m in f["peak_rss"]))
    _row("CPU, % of one core", _cpu_line(f["cpu"]))


def print_catalog(c: dict) -> None:
    pub = c.get("catalog_pub", {})
    print(f"catalogue: one signed, retained catalogue ({CATALOG.name}) to every connected cabinet")
    _row(
        "every cabinet had it after",
        f"{c['catalog_s']:.1f} s ({c['catalog_got']:,} of {c['catalog_of']:,},"
        f" {c['catalog_bad']} bad signatures); the centre's publisher signed, kept and published"
        f" all in {pub.get('pushed_s', float('nan')):.1f} s, last PUBACK at"
        f" {pub.get('flushed_s', float('nan')):.1f} s",
    )
    (rss0, rss1), (heap0, heap1) = c["broker_rss"], c["broker_heap"]
    _row("broker memory", f"RSS {rss0:.0f} -> {rss1:.0f} MB, heap {heap0:.0f} -> {heap1:.0f} MB")


def print_drain(k: int, d: dict) -> None:
    a: Audit = d["audit"]
    _row(
        f"{k} worker(s)",
        f"{d['rps']:,.0f} records/s ({d['records']:,} in {d['elapsed_s']:.1f} s); lost {a.lost},"
        f" doubled {a.doubled}, not delivered {d['unacked']}, resent {d['rewinds']} batches;"
        f" peak RSS {', '.join(f'{m:.0f}' for m in d['peak_rss'])} MB",
    )
    _row("", f"CPU: {_cpu_line(d['cpu'])}")


def print_copy(
    p: Plan, drains: dict[int, dict], copy_rps: float, rows: dict[str, int], share: float
) -> None:
    _row(
        "2 workers / 1 worker",
        f"{drains[2]['rps'] / drains[1]['rps']:.2f}: contention on a {services.cores()}-core"
        " machine (client, broker, PostgreSQL and workers share it), not scale-out",
    )
    listed = ", ".join(f"{t} {n:,}" for t, n in rows.items())
    _row("COPY baseline", f"{copy_rps:,.0f} records/s (rows: {listed})")
    _row(f"drain ({p.workers} workers) / COPY", f"{share:.1%}")


def check_records(catalog: dict) -> None:
    """Every kind of record the bench makes passes the centre's decoder (a rejected one would
    count as neither stored nor lost, and spoil the comparison)."""
    from kiosk import contract

    cab = Cabinet("F-check", key_of("F-check"), Tally())
    shop, at = Shop(catalog, random.Random(0)), wire.now_iso()
    for _ in range(20):
        for make in (shop.sale, shop.empty_session, shop.telemetry, shop.event):
            make(cab, at)
    batch = contract.decode_batch(wire.batch_json("check", (t for _, t in cab.pending.values())))
    if batch.rejected:
        raise services.SetupError(
            f"the centre's decoder refuses a bench record: {batch.rejected[0]}"
        )


# -- main ------------------------------------------------------------------------------------------
def parse_args() -> Plan:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cabinets", type=int, help="default 10,000")
    ap.add_argument("--rate", type=float, default=TARGET_RATE, help="times a busy lunch hour")
    ap.add_argument("--duration", type=float, help="seconds of load (default 60)")
    ap.add_argument("--workers", type=int, default=2, help="ingest workers (K)")
    ap.add_argument("--drain", help="CABINETSxRECORDS back after a day offline (1000x200)")
    ap.add_argument("--ack-timeout", type=float, default=15.0, help="the agent's ack_timeout_s")
    ap.add_argument("--quick", action="store_true", help="500 cabinets, 15 s, drain 200x200")
    args = ap.parse_args()
    quick = {"cabinets": 500, "duration": 15.0, "drain": "200x200"}
    full = {"cabinets": TARGET_CABINETS, "duration": 60.0, "drain": "1000x200"}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:  # what is given on the command line wins
            setattr(args, name, value)
    try:
        dc, dr = (int(x) for x in args.drain.lower().split("x"))
    except ValueError:
        ap.error("--drain is CABINETSxRECORDS, e.g. 1000x200")
    if args.workers < 1 or args.cabinets < 1 or dc < 1 or dr < 1:
        ap.error("--workers, --cabinets and --drain need at least 1")
    return Plan(
        args.cabinets, args.rate, args.duration, args.workers, dc, dr, args.ack_timeout, args.quick
    )


def all_cabinets(plan: Plan) -> list[str]:
    names = [f"F-{i:05d}" for i in range(plan.cabinets)]
    for k in plan.drain_workers():
        names += [f"D{k}-{i:05d}" for i in range(plan.drain_cabinets)]
    return names


def main() -> int:
    plan = parse_args()
    try:
        services.raise_nofile(max(plan.cabinets, plan.drain_cabinets))
    except services.SetupError as e:
        print(f"fleet: {e}", file=sys.stderr)
        return 2
    catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
    try:
        check_records(catalog)
    except services.SetupError as e:
        print(f"fleet: {e}", file=sys.stderr)
        return 2
    pg_root = Path(tempfile.mkdtemp(prefix="fleet-pg-"))  # in /tmp: `nobody` can reach it
    with tempfile.TemporaryDirectory(prefix="fleet-") as d:
        tmp = Path(d)
        pg = services.Postgres(pg_root)
        broker = services.Broker(tmp)
        try:
            pg.start()
            url = pg.url()
            took = prepare_db(url, all_cabinets(plan))
            print(f"PostgreSQL 15 on port {pg.port}: schema and cabinets ready in {took:.1f} s")
            broker.start()
            env = Env(plan, pg, broker, url, tmp, SysWatch(), catalog)
            checks = asyncio.run(run(env))
        except services.SetupError as e:
            print(f"fleet: {e}", file=sys.stderr)
            return 2
        finally:
            broker.stop()
            pg.stop()
            shutil.rmtree(pg_root, ignore_errors=True)
    print("targets:")
    for name, ok in checks.items():
        print(f"  {'not judged (--quick)' if ok is None else 'met' if ok else 'NOT met'}: {name}")
    return 0 if all(ok is not False for ok in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
