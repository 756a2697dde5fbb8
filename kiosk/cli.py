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

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad input from the person at the terminal: printed, exit 2."""


# -- Step 1: configuration, database, catalogue -----------------------------------------------
def _cmd_config_check(args: argparse.Namespace) -> int:
    from kiosk import config

    try:
        cfg = config.load(args.file)
    except config.ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 2
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


def _load_config(path: str):  # -> kiosk.config.Config
    from kiosk import config

    try:
        return config.load(path)
    except config.ConfigError as e:
        raise UsageError("bad configuration:\n" + "\n".join(e.problems)) from None


def _open_existing(args: argparse.Namespace):  # -> sqlite_utils.Database
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

    try:
        cat = catalog.load_catalog_file(args.file)
        version = catalog.apply_catalog(kdb.open_db(_db_path(args)), cat, source=args.file)
    except catalog.CatalogError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 2
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
    from kiosk import demo

    return demo.run(Path(args.config)) if args.config else demo.run()


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


def _not_built(args: argparse.Namespace) -> int:
    print(f"kiosk {args.command}: not built yet", file=sys.stderr)
    return 3


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

        open_states_by_url: dict[str, dict[tuple[int, int], str]] = {}
        for d in cfg.doors:
            open_states_by_url.setdefault(d.url, {})[(d.board, d.lock)] = d.open_state
        shelves = {s.id: s.slave for s in cfg.shelves}
        checks += doctor.check_doors(
            cfg,
            lambda proto, url, baud: drivers.open_lock_board(
                proto, url, baud, open_states=open_states_by_url.get(url)
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
        checks.append(doctor.check_mqtt(cfg.central.mqtt))
    for line in doctor.format_checks(checks):
        print(line, flush=True)
    return 0 if doctor.all_ok(checks) else 1


# -- Step 2: the simulated cabinet ---------------------------------------------------------------
def _cmd_sim(args: argparse.Namespace) -> int:
    """Print the devices' URLs as one JSON line, then run until SIGTERM/SIGINT."""
    import json
    import signal
    import threading

    from kiosk import config
    from simulators.cabinet import SimulatedCabinet

    try:
        cfg = config.load(args.config)
    except config.ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 2
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


# -- Step 5: sync agent, central simulator, report ----------------------------------------------
def _cmd_sync(args: argparse.Namespace) -> int:
    """Run the sync agent until SIGTERM/SIGINT."""
    from sync.agent import main as sync_main

    return sync_main(_load_config(args.config), args.db, args.tune or [])


def _cmd_central(args: argparse.Namespace) -> int:
    from simulators.central_cli import serve

    return serve(args)


def _cmd_central_send(args: argparse.Namespace) -> int:
    from simulators.central_cli import send

    return send(args)


def _cmd_central_stats(args: argparse.Namespace) -> int:
    from simulators.central_cli import stats

    return stats(args)


def _cmd_central_report(args: argparse.Namespace) -> int:
    from simulators.central_cli import report

    return report(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from kiosk import report

    db = _open_existing(args)
    return report.cli(report.from_cabinet_db(db, args.timezone), args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kiosk", description=__doc__.splitlines()[0])
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

    c = cmd("demo", _cmd_demo, "a fresh example cabinet: database, catalogue, product list")
    c.add_argument("--config", help="cabinet TOML (default: examples/cabinet.toml)")

    c = cmd("doctor", _cmd_doctor, "check config, devices, database, disk, clock, central")
    c.add_argument("--config", required=True, help="the cabinet's TOML file")
    c.add_argument("--db", help="the database (default: the configuration's [database] path)")

    c = cmd("sim", _cmd_sim, "run a simulated cabinet: prints its device URLs as JSON first")
    c.add_argument("--config", required=True, help="the cabinet's TOML file")

    c = cmd("sync", _cmd_sync, "run the sync agent: outbox up, catalogue and commands down")
    c.add_argument("--config", required=True, help="the cabinet's TOML file")
    c.add_argument("--db", help="the database (default: the configuration's [database] path)")
    c.add_argument(
        "--tune", action="append", metavar="KEY=VALUE", help="agent setting (tests): window=8"
    )

    c = cmd("central", _cmd_central, "the central platform simulator (HTTP + MQTT)")
    c.add_argument("--db", help="the centre's own SQLite file")
    c.add_argument("--http", default="127.0.0.1:8080", metavar="HOST:PORT")
    c.add_argument("--mqtt", metavar="URL", help="mqtt://127.0.0.1:1883 (omit: HTTP only)")
    c.add_argument("--ca-file", help="CA for mqtts://")
    c.add_argument("--cabinet", action="append", metavar="ID=KEYFILE", default=[])
    csub = c.add_subparsers(dest="action", required=False, metavar="ACTION")
    sp = cmd("send", _cmd_central_send, "sign and queue a command for a cabinet", csub)
    sp.add_argument("cmd")
    sp.add_argument("--cabinet", required=True)
    sp.add_argument("--args", default="{}", help="the command's args as JSON")
    sp.add_argument("--ttl", type=float, default=600, help="seconds until it expires")
    sp.add_argument("--db", default=argparse.SUPPRESS)
    sp = cmd("stats", _cmd_central_stats, "records, sales and duplicates received", csub)
    sp.add_argument("--db", default=argparse.SUPPRESS)
    sp.add_argument("--json", action="store_true")
    sp = cmd("report", _cmd_central_report, "the programme's figures across cabinets", csub)
    sp.add_argument("--db", default=argparse.SUPPRESS)
    sp.add_argument("--catalog", help="catalogue JSON for categories and suppliers")
    sp.add_argument("--timezone", default="Asia/Shanghai")
    _report_args(sp)

    uig = group("ui", "the touchscreen")
    c = cmd("shots", _cmd_ui_shots, "render every screen (both languages, orientations)", uig)
    c.add_argument("--out", required=True, metavar="DIR", help="<screen>-<lang>-<orientation>.png")
    c.add_argument("--state", metavar="DIR", help="KIVY_HOME and image cache (default: DIR/.state)")
    c.add_argument("--screen", action="append", help="only this screen (repeatable)")

    c = cmd("report", _cmd_report, "the programme's figures from this cabinet's database")
    c.add_argument("--db", help="the database (default: the configuration's [database] path)")
    c.add_argument("--config", help="the cabinet's TOML file")
    c.add_argument("--timezone", default="Asia/Shanghai")
    _report_args(c)

    return p


def _report_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    c.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    c.add_argument("--csv", metavar="DIR", help="one CSV per breakdown")
    c.add_argument("--chart", metavar="FILE.png", help="bar chart of sales by category, supplier")
    c.add_argument("--json", action="store_true", help="the figures as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UsageError as e:
        print(f"kiosk: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
