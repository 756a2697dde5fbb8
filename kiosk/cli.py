"""The ``kiosk`` command: the composition root.

This is the one module that may import every package (``drivers``, ``sync``, ``simulators``,
``ui``); it does so lazily inside each command, so ``kiosk sync`` never loads Kivy and
``kiosk weigh`` never opens a serial port. Exit codes: 0 ok, 1 failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.problems import Problems

if TYPE_CHECKING:  # annotations only: each handler imports what it runs, lazily
    from sqlite_utils import Database

    from kiosk.config import Config
    from kiosk.hardware import CodeSource, DeviceHealth, LockBoard, ScaleBus
    from kiosk.payments import PaymentPort

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad input from the person at the terminal: printed, exit 2."""


# -- Step 1: configuration, database, catalogue -----------------------------------------------
def _cmd_config_check(args: argparse.Namespace) -> int:
    from kiosk import config

    cfg = config.load(args.file)  # a ConfigError: ``main`` lists its problems, exit 2
    for w in cfg.warnings:  # worth a look, but the file is usable: exit 0
        print(f"warning: {w}")
    print(
        f"{Path(args.file).name}: ok (cabinet {cfg.cabinet.id}, {len(cfg.doors)} doors, "
        f"{len(cfg.shelves)} shelves)"
    )
    return 0


def _db_path(args: argparse.Namespace) -> Path:
    """``--db`` wins; otherwise the configuration's ``[database] path``."""
    if getattr(args, "db", None):
        return Path(args.db)
    if getattr(args, "config", None):
        return _load_config(args.config).database
    raise UsageError("give --db PATH (or --config FILE)")


def _load_config(path: str) -> Config:
    from kiosk import config

    try:
        return config.load(path)
    except config.ConfigError as e:
        raise UsageError("bad configuration:\n" + "\n".join(e.problems)) from None


def _open_existing(args: argparse.Namespace) -> Database:
    from kiosk import db as kdb

    path = _db_path(args)
    if not path.exists():
        raise UsageError(f"{path}: no such database (create it with `kiosk db init`)")
    return kdb.open_db(path)


def _cmd_db_init(args: argparse.Namespace) -> int:
    from kiosk import db as kdb

    cfg = _load_config(args.config) if args.config else None
    path = _db_path(args)
    database = kdb.connect(path)
    seeded = kdb.init(database, cfg)
    lanes = "seeded planogram and stock from the lanes" if seeded else "lanes not seeded"
    if cfg is not None and not seeded:
        lanes = "lanes were seeded before: the database keeps its planogram and stock"
    print(f"{path}: schema version {kdb.schema_version(database)}; {lanes}")
    return 0


def _cmd_db_status(args: argparse.Namespace) -> int:
    import json

    from kiosk import db as kdb

    s = kdb.status(_open_existing(args))
    if args.json:
        print(json.dumps(s, ensure_ascii=False))
        return 0
    for key, value in s.items():
        if key != "tables":
            print(f"{key}: {value}")
    for table, n in s["tables"].items():
        print(f"  {table}: {n}")
    return 0


def _cmd_db_export(args: argparse.Namespace) -> int:
    from kiosk import db as kdb

    written = kdb.export_csv(_open_existing(args), args.csv)
    print(f"{len(written)} tables written to {args.csv}")
    return 0


def _cmd_catalog_import(args: argparse.Namespace) -> int:
    from kiosk import catalog
    from kiosk import db as kdb

    cat = catalog.load_catalog_file(args.file)  # a CatalogError: ``main`` lists its problems
    version = catalog.apply_catalog(kdb.open_db(_db_path(args)), cat, source=args.file)
    print(f"catalogue version {version} in force: {len(cat.products)} products")
    return 0


def _cmd_catalog_list(args: argparse.Namespace) -> int:
    import json

    from kiosk import catalog, money

    listed = catalog.list_products(_open_existing(args))
    if args.json:
        print(json.dumps([p.to_dict() for p in listed], ensure_ascii=False, indent=1))
        return 0
    for p in listed:
        print(
            f"{p.product.sku:20} {money.yuan_sign(p.product.price_fen):>10}  {p.product.zh}"
            f"  ({p.supplier_zh}, {p.households} 户)"
        )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Every part as its own ``kiosk`` process, started and stopped by ``simulators.demo``."""
    from simulators import demo

    return demo.main(args)


# -- Step 6: the touchscreen ------------------------------------------------------------------
def _cmd_ui_shots(args: argparse.Namespace) -> int:
    """Kivy runs in child processes (one per orientation) with KIVY_HOME under --state."""
    from ui import fonts, shots

    try:
        fonts.find_cjk_font()
    except fonts.CJKFontMissing as e:
        print(f"kiosk ui shots: {e}", file=sys.stderr)
        return 1
    state = Path(args.state) if args.state else Path(args.out) / ".state"
    try:
        files = shots.render_all(Path(args.out), state, args.screen or None)
    except RuntimeError as e:
        print(f"kiosk ui shots: {e}", file=sys.stderr)
        return 1
    print(f"{len(files)} screenshots in {args.out}")
    return 0


# -- Step 7: on a real cabinet -----------------------------------------------------------------
def _cmd_doctor(args: argparse.Namespace) -> int:
    """Every check on its own line; exit 1 when any failed. Stop kiosk.service first on a
    cabinet: two processes talking on one RS-485 line garble each other's frames."""
    from kiosk import doctor

    first, cfg = doctor.check_config(args.config)
    checks = [first]
    if cfg is not None:
        import drivers
        from kiosk import db as kdb

        inverted = _inverted_by_url(cfg)
        shelves = {s.id: s.slave for s in cfg.shelves}
        checks += doctor.check_doors(
            cfg,
            lambda proto, url, baud: drivers.open_lock_board(
                proto, url, baud, inverted=inverted.get(url, ())
            ),
        )
        checks += doctor.check_shelves(
            cfg,
            lambda on_health: drivers.open_scale_bus(
                cfg.scales.url, cfg.scales.baud, shelves, cfg.scales.timeout_s, on_health
            ),
        )
        checks.append(
            doctor.check_scanner(
                cfg,
                lambda on_health: drivers.open_scanner(
                    cfg.scanner.url, cfg.scanner.baud, on_health
                ),
            )
        )
        db_path = Path(args.db) if args.db else cfg.database
        checks.append(doctor.check_database(db_path, expected_version=kdb.SCHEMA_VERSION))
        checks.append(doctor.check_disk(db_path, cfg.central.storage_low_mb))
        checks.append(doctor.check_clock(synced=doctor.ntp_synchronized()))
        checks.append(doctor.check_http(cfg.central.http))
        checks += doctor.check_central_mqtt(cfg.central)
    for line in doctor.format_checks(checks):
        print(line, flush=True)
    return 0 if doctor.all_ok(checks) else 1


def _id_range(text: str) -> range:
    first, sep, last = text.partition("-")
    if not (first.isdigit() and (not sep or last.isdigit())):
        raise UsageError(f"--ids {text!r}: give N or FIRST-LAST, e.g. 1-10")
    return range(int(first), int(last if sep else first) + 1)


def _cmd_probe(args: argparse.Namespace) -> int:
    """An installer's first look at a bus: status queries only, never an unlock."""
    from drivers import probe
    from kiosk.config import PROTOCOL_BAUD

    baud = args.baud or PROTOCOL_BAUD.get(args.protocol, 9600)
    ids = _id_range(args.ids) if args.ids else None
    try:
        if args.protocol == "modbus":
            found: list = probe.probe_transmitters(args.url, baud, ids)
        else:
            found = probe.probe_locks(args.protocol, args.url, baud, ids)
    except Exception as e:  # the port: missing, busy, gone mid-scan
        print(f"kiosk probe: {args.url}: {e}", file=sys.stderr)
        return 1
    what = "transmitters" if args.protocol == "modbus" else "lock boards"
    for line in probe.report(args.protocol, found):
        print(line)
    print(f"# {len(found)} {what} answered on {args.url} at {baud} baud")
    if found:
        print(probe.skeleton(args.protocol, args.url, baud, found), end="")
    return 0 if found else 1


# -- Step 2: the simulated cabinet ---------------------------------------------------------------
def _cmd_sim(args: argparse.Namespace) -> int:
    """Print the devices' URLs as one JSON line, then run until SIGTERM/SIGINT."""
    import json
    import signal
    import threading

    from kiosk import config
    from simulators.cabinet import SimulatedCabinet

    cfg = config.load(args.config)  # a ConfigError: ``main`` lists its problems
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cabinet = SimulatedCabinet(cfg).start()
    try:
        print(json.dumps(cabinet.urls(), ensure_ascii=False), flush=True)
        stop.wait()
    finally:
        cabinet.stop()
    return 0


# -- Step 5: sync agent, report ----------------------------------------------
def _cmd_sync(args: argparse.Namespace) -> int:
    """Run the sync agent until SIGTERM/SIGINT."""
    from sync.agent import main as sync_main

    return sync_main(_load_config(args.config), args.db, args.tune or [])


def _cmd_report(args: argparse.Namespace) -> int:
    from kiosk import report

    db = _open_existing(args)
    tz, name, location = args.timezone, "", ""
    if args.config:
        cab = _load_config(args.config).cabinet
        tz, name, location = cab.timezone, cab.name, cab.location
    return report.cli(report.from_cabinet_db(db, tz, name, location), args)


# -- Step 4: the controller, its control socket, operators, accounts, sales ---------------------
def _inverted_by_url(cfg: Config) -> dict[str, set[tuple[int, int]]]:
    """Each serial line's doors wired the other way (``status_inverted``): (board, lock)."""
    by_url: dict[str, set[tuple[int, int]]] = {d.url: set() for d in cfg.doors}
    for d in cfg.doors:
        if d.status_inverted:
            by_url[d.url].add((d.board, d.lock))
    return by_url


def open_devices(
    cfg: Config, on_health: Callable[[DeviceHealth], None] | None = None
) -> tuple[dict[str, LockBoard], ScaleBus, CodeSource]:
    """Drivers for the devices in the configuration (real serial lines or ``kiosk sim``)."""
    import drivers

    inverted = _inverted_by_url(cfg)
    by_url: dict[str, LockBoard] = {}  # one driver per serial line, shared by its doors
    locks: dict[str, LockBoard] = {}
    for d in cfg.doors:
        if d.url not in by_url:
            by_url[d.url] = drivers.open_lock_board(
                d.protocol, d.url, d.baud, on_health, inverted=inverted[d.url]
            )
        locks[d.id] = by_url[d.url]
    scales = drivers.open_scale_bus(
        cfg.scales.url,
        cfg.scales.baud,
        {s.id: s.slave for s in cfg.shelves},
        cfg.scales.timeout_s,
        on_health,
    )
    scanner = drivers.open_scanner(cfg.scanner.url, cfg.scanner.baud, on_health)
    return locks, scales, scanner


def payment_port(cfg: Config, key: bytes | None) -> PaymentPort | None:
    """The HTTP payment port when [central] http is set (sync/ implements it)."""
    if not cfg.central.http or key is None:
        return None
    from sync.http_link import HttpLink
    from sync.payments import HttpPaymentPort

    ca = str(cfg.central.ca_file) if cfg.central.ca_file else None
    return HttpPaymentPort(HttpLink(cfg.central.http, cfg.cabinet.id, key, 5.0, ca))


def _cmd_run(args: argparse.Namespace) -> int:
    import os

    from kiosk import logs, run

    logs.setup(os.environ.get("KIOSK_LOG_LEVEL", "info"))
    cfg = _load_config(args.config)
    db_path = Path(args.db) if args.db else cfg.database
    from kiosk import db as kdb

    kdb.open_db(db_path).close()  # schema up to date before anything opens a door
    from kiosk.controller.device_health import HealthRelay

    health = HealthRelay()  # device health for telemetry, held until the controller starts
    locks, scales, scanner = open_devices(cfg, health)
    payments = payment_port(cfg, run.cabinet_key(cfg, db_path))
    ui_hook = None
    if not args.headless:  # the touchscreen (Step 6): its own main loop on this controller
        from functools import partial

        from ui.run import open_touchscreen

        ui_hook = partial(
            open_touchscreen,
            config=cfg,
            fullscreen=args.window is None,
            size=_window_size(args.window) if args.window else None,
            shots_dir=Path(args.shots) if args.shots else None,
        )
    control = Path(args.control) if args.control else None
    return run.serve(
        cfg, db_path, locks, scales, scanner, payments, control, ui_hook, health=health
    )


def _window_size(text: str) -> tuple[int, int]:
    w, sep, h = text.partition("x")
    if not (sep and w.isdigit() and h.isdigit()):
        raise UsageError(f"--window {text!r}: give WIDTHxHEIGHT, e.g. 1280x800")
    return int(w), int(h)


def _cmd_ctl(args: argparse.Namespace) -> int:
    import json

    from kiosk import control

    try:
        line = control.words_to_line(list(args.words))
    except control.CtlUsage as e:
        raise UsageError(str(e)) from None
    try:
        reply = control.request(args.control, line, args.timeout)
    except OSError as e:
        print(f"kiosk ctl: cannot reach {args.control}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(reply, ensure_ascii=False))
    return 0 if reply.get("ok") else 1


def _cmd_operators_add(args: argparse.Namespace) -> int:
    from kiosk import clock, operators, signing
    from kiosk import db as kdb

    pin = sys.stdin.readline().strip()
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise UsageError("the PIN (on stdin) is 4 to 12 digits")
    d = _open_existing(args)
    key = _key_for(args, d)
    with kdb.transaction(d):
        op = operators.add(
            d.conn, args.name, signing.card_account(key, args.card), pin, clock.now_iso()
        )
    print(f"operator {op.name} added ({op.id})")
    return 0


def _key_for(args: argparse.Namespace, d: Database) -> bytes:
    from kiosk import db as kdb
    from kiosk import signing

    path = getattr(args, "key", None) or kdb.get_setting(d, "key_file")
    if not path:
        raise UsageError("no key: give --key FILE (or run `kiosk db init --config` first)")
    try:
        return signing.load_key(path)
    except signing.KeyFileError as e:
        raise UsageError(str(e)) from None


def _cmd_accounts_import(args: argparse.Namespace) -> int:
    import csv

    from kiosk import auth, clock
    from kiosk import db as kdb

    rows = []
    with open(args.file, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"card", "name", "offline_limit_fen", "status"} - set(reader.fieldnames or [])
        if missing:
            raise UsageError(f"{args.file}: missing columns {', '.join(sorted(missing))}")
        for i, r in enumerate(reader, 2):
            status = (r["status"] or "active").strip()
            limit = (r["offline_limit_fen"] or "").strip()
            if status not in ("active", "blocked") or (limit and not limit.isdigit()):
                raise UsageError(f"{args.file}: line {i}: status active|blocked, limit in fen")
            rows.append(
                auth.AccountRow(
                    r["card"].strip(), r["name"].strip(), int(limit) if limit else None, status
                )
            )
    d = _open_existing(args)
    key = _key_for(args, d)
    with kdb.transaction(d):
        n = auth.import_accounts(d.conn, key, rows, clock.now_iso())
    print(f"{n} accounts imported")
    return 0


def _cmd_sales_list(args: argparse.Namespace) -> int:
    import json

    from kiosk import sales

    d = _open_existing(args)
    rows = sales.list_sales(d)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for r in rows:
            flag = "  REVIEW" if r["review"] else ""
            pay = f"{r['payment']['method']}/{r['payment']['status']}"
            total = r["total_fen"] / 100
            print(f"{r['closed_at']}  {r['door']}  {total:8.2f}  {pay}{flag}  {r['id']}")
    return 0


# -- Step 3: weighing -------------------------------------------------------------------------
def _cmd_weigh(args: argparse.Namespace) -> int:
    import json

    from kiosk.weighing import solve_scenario

    try:
        src = sys.stdin if args.inp == "-" else open(args.inp, encoding="utf-8")  # noqa: SIM115
    except OSError as e:
        raise UsageError(f"{args.inp}: {e.strerror}") from e
    n = 0
    with src, open(args.out, "w", encoding="utf-8") as out:
        for lineno, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                scenario = json.loads(line)
                result = solve_scenario(scenario)
            except (ValueError, KeyError, TypeError) as e:
                raise UsageError(f"{args.inp}:{lineno}: not a scenario: {e}") from e
            out.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    print(f"weighed {n} scenario(s) into {args.out}", file=sys.stderr)
    return 0


def _cmd_planogram_check(args: argparse.Namespace) -> int:
    import json

    from kiosk import config
    from kiosk.weighing import LaneStock, ShelfPlan, planogram_warnings

    cfg = config.load(args.config)  # a ConfigError: ``main`` lists its problems
    path = Path(args.catalog) if args.catalog else cfg.simulator.catalog
    if path is None:
        raise UsageError("no catalogue: give --catalog FILE or [simulator] catalog in the config")
    try:
        products = {p["sku"]: p for p in json.loads(path.read_text(encoding="utf-8"))["products"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: cannot read the catalogue: {e}") from e
    plans, unknown = [], []
    for shelf in cfg.shelves:
        lanes = []
        for ln in shelf.lanes:
            prod = products.get(ln.sku)
            if prod is None:
                unknown.append(f"{shelf.id}: {ln.sku} is not in the catalogue")
                continue
            lanes.append(
                LaneStock(
                    ln.sku,
                    float(prod["unit_g"]),
                    float(prod.get("unit_sd_g", 0.0)),
                    int(prod.get("price_fen", 0)),
                    ln.count,
                )
            )
        div = 1.0 if shelf.capacity_g <= 30000 else 2.0
        plans.append(ShelfPlan(shelf.id, tuple(lanes), div, float(shelf.capacity_g)))
    warnings = planogram_warnings(plans, noise_g=args.noise, max_items=args.max_items)
    for line in unknown:
        print(f"warning: {line}")
    for w in warnings:
        print(f"warning: {w}")
    print(f"{len(plans)} shelves checked, {len(warnings) + len(unknown)} warning(s)")
    return 1 if warnings or unknown else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kiosk",
        description="An unattended farm-produce cabinet: controller, sync, simulators, tools.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, handler: Handler, help: str, parent=sub) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=handler)
        return sp

    def group(name: str, help: str) -> argparse._SubParsersAction:
        gp = sub.add_parser(name, help=help, description=help)
        return gp.add_subparsers(dest="action", required=True, metavar="ACTION")

    cfg = group("config", "check a cabinet configuration")
    c = cmd("check", _cmd_config_check, "validate FILE; exit 2 listing every problem", cfg)
    c.add_argument("file")

    dbg = group("db", "create, inspect and export the cabinet's database")
    c = cmd("init", _cmd_db_init, "create/migrate; with --config seed lanes once", dbg)
    c.add_argument("--db", help="database file (default: the configuration's [database] path)")
    c.add_argument("--config", help="cabinet TOML: identity, planogram and initial stock")
    c = cmd("status", _cmd_db_status, "schema version, pragmas, rows per table", dbg)
    c.add_argument("--db", required=True)
    c.add_argument("--json", action="store_true", help="one JSON object")
    c = cmd("export", _cmd_db_export, "write one CSV per table into DIR", dbg)
    c.add_argument("--db", required=True)
    c.add_argument("--csv", required=True, metavar="DIR")

    cat = group("catalog", "import and list the product catalogue")
    c = cmd("import", _cmd_catalog_import, "check FILE and make it the catalogue in force", cat)
    c.add_argument("file")
    c.add_argument("--db", required=True)
    c = cmd("list", _cmd_catalog_list, "the products in force", cat)
    c.add_argument("--db", required=True)
    c.add_argument("--json", action="store_true", help="a JSON array")

    c = cmd("demo", _cmd_demo, "the whole simulated cabinet; a scripted sale without a display")
    c.add_argument("--config", help="cabinet TOML to copy (default: examples/cabinet.toml)")
    c.add_argument("--headless", action="store_true", help="the scripted sale even with a display")
    c.add_argument("--run-dir", metavar="DIR", help="fresh run folder (default: examples/run/demo)")
    c.add_argument("--out", metavar="DIR", help="screenshots (default: demo-out/ in the repo)")
    c.add_argument("--timeout", type=float, default=90.0, help="seconds the scripted sale may take")

    c = cmd("doctor", _cmd_doctor, "check config, devices, database, disk, clock, central")
    c.add_argument("--config", required=True, help="the cabinet's TOML file")
    c.add_argument("--db", help="the database (default: the configuration's [database] path)")

    c = cmd("probe", _cmd_probe, "list the lock boards or transmitters that answer on a bus")
    c.add_argument("--url", required=True, help="the serial port (any pyserial URL)")
    c.add_argument("--protocol", required=True, choices=("8a80", "kerong_cu", "wkly", "modbus"))
    c.add_argument("--baud", type=int, help="default: the protocol's (9600; kerong_cu 19200)")
    c.add_argument("--ids", metavar="FIRST-LAST", help="board addresses or Modbus ids to ask")

    c = cmd("sim", _cmd_sim, "run a simulated cabinet: prints its device URLs as JSON first")
    c.add_argument("--config", required=True, help="the cabinet's TOML file")

    c = cmd("sync", _cmd_sync, "run the sync agent: outbox up, catalogue and commands down")
    c.add_argument("--config", required=True, help="the cabinet's TOML file")
    c.add_argument("--db", help="the database (default: the configuration's [database] path)")
    c.add_argument(
        "--tune", action="append", metavar="KEY=VALUE", help="agent setting (tests): window=8"
    )

    # Listed for --help only: ``main`` hands ``kiosk central ...`` to ``central.cli`` whole.
    sub.add_parser("central", help="the central service (kiosk central --help)", add_help=False)

    uig = group("ui", "the touchscreen")
    c = cmd("shots", _cmd_ui_shots, "render every screen (both languages, orientations)", uig)
    c.add_argument("--out", required=True, metavar="DIR", help="<screen>-<lang>-<orientation>.png")
    c.add_argument("--state", metavar="DIR", help="KIVY_HOME and image cache (default: DIR/.state)")
    c.add_argument("--screen", action="append", help="only this screen (repeatable)")

    c = cmd("run", _cmd_run, "run the controller (and the touchscreen unless --headless)")
    c.add_argument("--config", required=True, help="the cabinet's TOML file")
    c.add_argument("--db", help="the database (default: the configuration's [database] path)")
    c.add_argument("--headless", action="store_true", help="no touchscreen")
    c.add_argument("--control", metavar="PATH", help="serve intents on this Unix socket")
    c.add_argument("--window", metavar="WxH", help="a desktop window that closing ends")
    c.add_argument("--shots", metavar="DIR", help="a screenshot of each screen shown")

    c = cmd("ctl", _cmd_ctl, "send one intent to a running controller (kiosk ctl ... state)")
    c.add_argument("--control", required=True, metavar="PATH")
    c.add_argument("--timeout", type=float, default=30.0)
    c.add_argument("words", nargs=argparse.REMAINDER, help="state | scan TEXT | confirm N | ...")

    opg = group("operators", "operator accounts (card + PIN)")
    c = cmd("add", _cmd_operators_add, "add an operator; the PIN is read from stdin", opg)
    c.add_argument("--db", required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--card", required=True, metavar="UID")
    c.add_argument("--key", metavar="FILE", help="the cabinet key (default: db's key_file)")

    acg = group("accounts", "staff card accounts")
    c = cmd("import", _cmd_accounts_import, "CSV card,name,offline_limit_fen,status", acg)
    c.add_argument("file")
    c.add_argument("--db", required=True)
    c.add_argument("--key", metavar="FILE", help="the cabinet key (default: db's key_file)")

    slg = group("sales", "the cabinet's recorded sales")
    c = cmd("list", _cmd_sales_list, "every sale, oldest first", slg)
    c.add_argument("--db", required=True)
    c.add_argument("--json", action="store_true", help="a JSON array")

    c = cmd("weigh", _cmd_weigh, "scenario file in (JSON Lines), verdicts out (weighing.md)")
    c.add_argument("--in", dest="inp", required=True, metavar="SCENARIOS.jsonl", help="- for stdin")
    c.add_argument("--out", required=True, metavar="RESULTS.jsonl")

    plg = group("planogram", "check what the shelves' load cells can tell apart")
    c = cmd("check", _cmd_planogram_check, "takes of 1-3 items a shelf cannot tell apart", plg)
    c.add_argument("--config", required=True, help="the cabinet's TOML file")
    c.add_argument("--catalog", help="catalogue JSON (default: the config's [simulator] catalog)")
    c.add_argument("--noise", type=float, help="reading noise in grams (default: the division)")
    c.add_argument("--max-items", type=int, default=3)

    c = cmd("report", _cmd_report, "the programme's figures from this cabinet's database")
    c.add_argument("--db", help="the database (default: the configuration's [database] path)")
    c.add_argument("--config", help="the cabinet's TOML file")
    c.add_argument("--timezone", default="Asia/Shanghai")
    from kiosk.report import add_cli_args

    add_cli_args(c)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["central"]:  # the central service owns its command line (central/cli.py)
        from central.cli import main as central_main

        return central_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UsageError as e:
        print(f"kiosk: {e}", file=sys.stderr)
        return 2
    except Problems as e:  # a configuration or catalogue file: every problem, one a line
        for line in e.problems:
            print(line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
