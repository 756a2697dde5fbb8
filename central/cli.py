"""``kiosk central ...``: the central service's command line (``kiosk/cli.py`` hands on to it).

::

    kiosk central --db PATH|URL --http HOST:PORT [--mqtt URL] [--cabinet ID=KEY ...] [--simulate]
    kiosk central ingest --db URL --mqtt URL [--group NAME]       # more MQTT ingest workers
    kiosk central db upgrade --db PATH|URL                        # Alembic migrations
    kiosk central send CMD --cabinet ID [--args JSON] [--ttl S] --db PATH|URL
    kiosk central stats --db PATH|URL [--json]
    kiosk central report --db PATH|URL [--catalog FILE] [--from D] [--to D] [--csv DIR] ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from kiosk import signing

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command line that cannot be run as given (exit 2)."""


def _db(args: argparse.Namespace, must_exist: bool = False) -> str:
    db = getattr(args, "db", None)
    if not db:
        raise UsageError("give --db PATH|URL (the centre's SQLite file or postgresql:// URL)")
    if must_exist and "://" not in db and not Path(db).exists():
        raise UsageError(f"{db}: no such file")
    return str(db)


def _cabinet_keys(items: list[str]) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in items:
        cab, sep, keyfile = item.partition("=")
        if not sep or not cab:
            raise UsageError(f"--cabinet {item!r} is not ID=KEYFILE")
        try:
            keys[cab] = signing.load_key(keyfile)
        except signing.KeyFileError as e:
            raise UsageError(str(e)) from e
    return keys


def _http_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--http {text!r} is not HOST:PORT")
    return host or "127.0.0.1", int(port)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


# -- commands -----------------------------------------------------------------------------------
def serve(args: argparse.Namespace) -> int:
    from central.service import CentralService, ServiceError
    from kiosk import logs

    logs.setup(os.environ.get("KIOSK_LOG_LEVEL", "info"))
    db = _db(args)
    try:
        service = CentralService(
            db,
            _cabinet_keys(args.cabinet),
            _http_address(args.http),
            args.mqtt,
            ca_file=args.ca_file,
            simulate=args.simulate,
        )
    except ServiceError as e:
        raise UsageError(str(e)) from e
    # Announced before starting: the socket is bound and listening already, and the threads'
    # log lines must not come before this one line that the demo and tests read first.
    print(
        json.dumps(
            {
                "http": service.http_url,
                "mqtt": args.mqtt,
                "cabinets": sorted(service.store.keys()),
                "simulate": args.simulate,
            }
        ),
        flush=True,
    )
    try:
        service.start()
        _wait_for_signal()
    finally:
        service.stop()
    return 0


def ingest(args: argparse.Namespace) -> int:
    """MQTT ingest workers only: run as many of these, on as many machines, as the load needs."""
    from central.metrics import Metrics
    from central.mqtt_ingest import IngestWorker
    from central.service import ServiceError, prepare_database
    from central.store import Store
    from kiosk import logs

    logs.setup(os.environ.get("KIOSK_LOG_LEVEL", "info"))
    db = _db(args)
    try:
        prepare_database(db)
    except ServiceError as e:
        raise UsageError(str(e)) from e
    store = Store(db)
    worker = IngestWorker(
        store, args.mqtt, ca_file=args.ca_file, group=args.group, metrics=Metrics()
    )
    print(json.dumps({"ingest": args.mqtt, "group": args.group, "pid": os.getpid()}), flush=True)
    try:
        worker.start()
        _wait_for_signal()
    finally:
        worker.stop()
        store.close()
    return 0


def db_upgrade(args: argparse.Namespace) -> int:
    from central import migrate

    db = _db(args)
    migrate.upgrade(db)
    print(f"database at schema {migrate.current(db)}")
    return 0


def send(args: argparse.Namespace) -> int:
    """Sign and queue a command; the running service publishes it and serves it over HTTP."""
    from central.store import Store

    try:
        cmd_args = json.loads(args.args)
    except ValueError as e:
        raise UsageError("--args is not JSON") from e
    store = Store(_db(args, must_exist=True))
    try:
        message = store.add_command(args.cabinet, args.cmd, cmd_args, args.ttl)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from e
    finally:
        store.close()
    print(json.dumps(message, ensure_ascii=False))
    return 0


def stats(args: argparse.Namespace) -> int:
    from central.store import Store

    store = Store(_db(args, must_exist=True))
    try:
        s = store.stats()
    finally:
        store.close()
    if args.json:
        print(json.dumps({"records": s.records, "sales": s.sales, "duplicates": s.duplicates}))
    else:
        print(f"records {s.records}, sales {s.sales}, duplicates dropped {s.duplicates}")
    return 0


def report(args: argparse.Namespace) -> int:
    from central.store import Store
    from kiosk import report as rpt

    catalog = None
    if args.catalog:
        try:
            catalog = json.loads(Path(args.catalog).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"{args.catalog}: cannot read the catalogue: {e}") from e
    store = Store(_db(args, must_exist=True))
    try:
        data = store.report_data(catalog, args.timezone)
    finally:
        store.close()
    return rpt.cli(data, args)


# -- the parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kiosk central",
        description="The central service: cabinets' records in, catalogue and commands out.",
    )
    p.set_defaults(handler=serve)
    p.add_argument("--db", help="SQLite file, or postgresql://user@host:port/name")
    p.add_argument("--http", default="127.0.0.1:8080", metavar="HOST:PORT")
    p.add_argument("--mqtt", metavar="URL", help="mqtt://127.0.0.1:1883 (omit: HTTP only)")
    p.add_argument("--ca-file", help="CA for mqtts://")
    p.add_argument(
        "--cabinet", action="append", metavar="ID=KEYFILE", default=[], help="a cabinet and its key"
    )
    p.add_argument(
        "--simulate",
        action="store_true",
        help="a test centre: /admin/faults, scripted payments, the phone page's test login",
    )
    sub = p.add_subparsers(dest="action", required=False, metavar="ACTION")

    def cmd(name: str, handler: Handler, help: str, parent=sub) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=handler)
        sp.add_argument("--db", default=argparse.SUPPRESS, help="SQLite file or postgresql:// URL")
        return sp

    c = cmd("ingest", ingest, "MQTT ingest worker (shared subscription; run several)")
    c.add_argument("--mqtt", required=True, metavar="URL")
    c.add_argument("--ca-file", default=None)
    c.add_argument("--group", default="ingest", help="the shared subscription's group")

    dbp = sub.add_parser("db", help="the centre's database schema")
    dbs = dbp.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    cmd("upgrade", db_upgrade, "migrate to the newest schema (Alembic)", dbs)

    c = cmd("send", send, "sign and queue a command for a cabinet")
    c.add_argument("cmd")
    c.add_argument("--cabinet", required=True)
    c.add_argument("--args", default="{}", help="the command's args as JSON")
    c.add_argument("--ttl", type=float, default=600, help="seconds until it expires")

    c = cmd("stats", stats, "records, sales and duplicates received")
    c.add_argument("--json", action="store_true")

    c = cmd("report", report, "the programme's figures across cabinets")
    c.add_argument("--catalog", help="catalogue JSON for categories and suppliers")
    c.add_argument("--timezone", default="Asia/Shanghai")
    from kiosk.report import add_cli_args

    add_cli_args(c)
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        return int(args.handler(args) or 0)
    except UsageError as e:
        print(f"kiosk central: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
