"""``kiosk central ...``: run the simulator, queue commands, show what it received."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from kiosk import signing


def _need_db(args: argparse.Namespace) -> Path:
    db = getattr(args, "db", None)
    if not db:
        print("kiosk central: give --db PATH (the centre's SQLite file)", file=sys.stderr)
        raise SystemExit(2)
    return Path(db)


def _existing_db(args: argparse.Namespace, command: str) -> Path:
    """The centre's file for a command that only reads it: exit 2 when it is not there."""
    db = _need_db(args)
    if not db.exists():
        print(f"kiosk central {command}: {db}: no such file", file=sys.stderr)
        raise SystemExit(2)
    return db


def serve(args: argparse.Namespace) -> int:
    from kiosk import logs
    from simulators.central import CentralServer

    logs.setup()
    db = _need_db(args)
    cabinets: dict[str, bytes] = {}
    for item in args.cabinet:
        cab, sep, keyfile = item.partition("=")
        if not sep:
            print(f"kiosk central: --cabinet {item!r} is not ID=KEYFILE", file=sys.stderr)
            return 2
        try:
            cabinets[cab] = signing.load_key(keyfile)
        except signing.KeyFileError as e:
            print(f"kiosk central: {e}", file=sys.stderr)
            return 2
    host, _, port = args.http.rpartition(":")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = CentralServer(db, cabinets, (host or "127.0.0.1", int(port)), args.mqtt, args.ca_file)
    server.start()
    print(
        json.dumps({"http": server.http_url, "mqtt": args.mqtt, "cabinets": sorted(cabinets)}),
        flush=True,
    )
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


def send(args: argparse.Namespace) -> int:
    """Sign and queue a command; the running simulator publishes it (and serves it by HTTP)."""
    from simulators.central_store import CentralStore

    db = _need_db(args)
    try:
        cmd_args = json.loads(args.args)
    except ValueError:
        print("kiosk central send: --args is not JSON", file=sys.stderr)
        return 2
    store = CentralStore(db)
    try:
        message = store.add_command(args.cabinet, args.cmd, cmd_args, args.ttl)
    except KeyError as e:
        print(f"kiosk central send: {e.args[0]}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(json.dumps(message, ensure_ascii=False))
    return 0


def stats(args: argparse.Namespace) -> int:
    from simulators.central_store import CentralStore

    store = CentralStore(_existing_db(args, "stats"))
    s = store.stats()
    store.close()
    if args.json:
        print(json.dumps(s.__dict__))
    else:
        print(f"records {s.records}, sales {s.sales}, duplicates dropped {s.duplicates}")
    return 0


def report(args: argparse.Namespace) -> int:
    from kiosk import report as rpt
    from simulators.central_store import CentralStore

    store = CentralStore(_existing_db(args, "report"))
    try:
        catalog = None
        if args.catalog:
            catalog = json.loads(Path(args.catalog).read_text(encoding="utf-8"))
        data = rpt.from_central(store, catalog, args.timezone)
    finally:
        store.close()
    return rpt.cli(data, args)
