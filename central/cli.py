"""``kiosk central ...``: the central service's command line (``kiosk/cli.py`` hands on to it).

::

    kiosk central --db PATH|URL --http HOST:PORT [--mqtt URL] [--master-key FILE]
                  [--cabinet ID=KEYFILE ...] [--simulate]
    kiosk central ingest --db URL --mqtt URL [--group NAME]       # more MQTT ingest workers
    kiosk central db upgrade --db PATH|URL                        # Alembic migrations
    kiosk central master-key new FILE                             # what keys are sealed under
    kiosk central cabinet add ID --name N --location L [--route R] --out DIR --db ...
    kiosk central cabinet rotate-key ID --out DIR [--grace-days D] --db ...
    kiosk central cabinet retire ID --db ...
    kiosk central cabinet list --db ...
    kiosk central broker files --db ...                           # the broker's logins again
    kiosk central send CMD --cabinet ID [--args JSON] [--ttl S] [--key-file F] --db PATH|URL
    kiosk central stats --db PATH|URL [--json]
    kiosk central report --db PATH|URL [--by month|supplier|...] [--from D] [--to D] [--csv DIR] ...
    kiosk central export --from D --to D [--format csv|xlsx] [--out FILE] --db PATH|URL
    kiosk central statements --month YYYY-MM [--format csv|xlsx] [--out FILE] --db PATH|URL
    kiosk central staff import FILE | list | block CARD | unblock CARD | push --db PATH|URL
    kiosk central backup --db PATH|URL --out FILE                 # while the service runs
    kiosk central restore --from FILE --db PATH|URL               # a new file / an empty database
    kiosk central hook add --url URL [--route R | --cabinet ID] [--format json|wecom|dingtalk]
    kiosk central hook list|remove ID|enable ID|disable ID|test ID --db PATH|URL
    kiosk central user add NAME --role viewer|operator|admin [--cabinets ID,... | --routes R,...]
                  --db PATH|URL                                   # the password on stdin
    kiosk central user list|lock NAME|unlock NAME --db PATH|URL
    kiosk central token add NAME --role ... [--cabinets ... | --routes ...] --db PATH|URL
    kiosk central token list|revoke NAME --db PATH|URL            # a token is shown once

The master key (``--master-key``, default ``/etc/kiosk-central/master.key``) is read by every
command that uses a cabinet's key, whenever one is sealed; the cabinet and broker commands
always need it. The broker's files go to ``--broker-dir`` (default ``/etc/mosquitto/kiosk``);
``--broker-pid-file`` makes the broker read them at once (SIGHUP). The service and ``ingest``
log in to the broker as ``kiosk-central`` (its password derived from the master key), or with
``--mqtt-username`` and ``--mqtt-password-file``. Keys given with ``--cabinet ID=KEYFILE``
(tests, ``--simulate``) are held by that one process only: ``ingest`` takes them too, ``send``
takes the cabinet's ``--key-file``.
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

from central.cli_common import UsageError, db_arg
from kiosk import clock, signing

Handler = Callable[[argparse.Namespace], int]


def _db(args: argparse.Namespace, must_exist: bool = False) -> str:
    return db_arg(args, must_exist)


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


def _mqtt_login(args: argparse.Namespace) -> tuple[str, str] | None:
    user, pw_file = getattr(args, "mqtt_username", None), getattr(args, "mqtt_password_file", None)
    if user is None and pw_file is None:
        return None
    if user is None or pw_file is None:
        raise UsageError("--mqtt-username and --mqtt-password-file go together")
    try:
        password = Path(pw_file).read_text(encoding="utf-8").strip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--mqtt-password-file {pw_file}: {getattr(e, 'strerror', e)}") from e
    if not password:
        raise UsageError(f"--mqtt-password-file {pw_file}: empty")
    return user, password


def _open_store(args: argparse.Namespace, cabinets: dict[str, bytes] | None = None):
    """The store, migrated or checked, its keyring loaded (``central.service.open_store``)."""
    from central.service import ServiceError, open_store

    try:
        return open_store(_db(args), args.master_key, cabinets)
    except ServiceError as e:
        raise UsageError(str(e)) from e


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
            master_key=args.master_key,
            mqtt_login=_mqtt_login(args),
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
    from central.service import with_login
    from kiosk import logs

    login = _mqtt_login(args)
    logs.setup(os.environ.get("KIOSK_LOG_LEVEL", "info"))
    store, master = _open_store(args, _cabinet_keys(args.cabinet))
    try:
        url = with_login(args.mqtt, login, master)
        worker = IngestWorker(store, url, ca_file=args.ca_file, group=args.group, metrics=Metrics())
    except ValueError as e:
        store.close()
        raise UsageError(str(e)) from e
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
    try:
        cmd_args = json.loads(args.args)
    except ValueError as e:
        raise UsageError("--args is not JSON") from e
    _db(args, must_exist=True)
    store, _ = _open_store(args)
    try:
        if args.key_file:  # a cabinet whose key is not in the database (given with --cabinet)
            if store.cabinet(args.cabinet) is None:
                raise KeyError(f"unknown cabinet {args.cabinet!r}")
            store.hold_keys({args.cabinet: _load_key(args.key_file)})
        message = store.add_command(args.cabinet, args.cmd, cmd_args, args.ttl)
    except (KeyError, ValueError) as e:
        raise UsageError(str(e.args[0])) from e
    finally:
        store.close()
    print(json.dumps(message, ensure_ascii=False))
    return 0


def _load_key(path: str) -> bytes:
    try:
        return signing.load_key(path)
    except signing.KeyFileError as e:
        raise UsageError(str(e)) from e


# -- keys and cabinets --------------------------------------------------------------------------
def master_key_new(args: argparse.Namespace) -> int:
    from central.keyring import new_master_key

    try:
        path = new_master_key(args.file)
    except FileExistsError as e:
        raise UsageError(f"{args.file} exists: a master key is never overwritten") from e
    except OSError as e:
        raise UsageError(f"{args.file}: {e.strerror}") from e
    print(f"master key written to {path} (mode 0600): keep a copy apart from the database")
    return 0


def _centre(args: argparse.Namespace):
    """The store and the checked master key, for the commands that change cabinets."""
    from central.broker_files import BrokerFiles
    from central.keyring import KeyringError
    from central.provision import Centre

    store, _ = _open_store(args)
    try:
        return Centre(store, args.master_key, BrokerFiles(Path(args.broker_dir)))
    except KeyringError as e:
        store.close()
        raise UsageError(str(e)) from e


def _links(args: argparse.Namespace):
    from central.provision import CabinetLinks

    return CabinetLinks(mqtt=args.cabinet_mqtt, http=args.cabinet_http, ca_file=args.cabinet_ca)


def _broker_files_again(centre, args: argparse.Namespace, done: str) -> list[Path]:
    """Write the broker's files and tell the broker; ``done`` says what already happened."""
    from central.broker_files import BrokerFilesError, reload_broker

    try:
        paths = centre.write_broker_files()
        note = reload_broker(args.broker_pid_file)
    except BrokerFilesError as e:
        raise UsageError(f"{done}, but {e} (then run `kiosk central broker files`)") from e
    print(note, file=sys.stderr)
    return paths


def _changing(args: argparse.Namespace, change: Callable[..., object]) -> object:
    from central.provision import ProvisionError

    centre = _centre(args)
    try:
        try:
            result = change(centre)
        except ProvisionError as e:
            raise UsageError(str(e)) from e
        _broker_files_again(centre, args, f"cabinet {args.id} changed")
        return result
    finally:
        centre.store.close()


def cabinet_add(args: argparse.Namespace) -> int:
    from central import provision

    def change(centre) -> object:
        return provision.add(
            centre,
            args.id,
            args.out,
            name=args.name,
            location=args.location,
            route=args.route,
            links=_links(args),
        )

    written = _changing(args, change)
    print(
        f"# cabinet {args.id}: copy {written.key_file.name} and {written.password_file.name}"
        f" from {written.key_file.parent} beside its cabinet.toml, with this section"
    )
    print(written.section, end="")
    return 0


def cabinet_rotate_key(args: argparse.Namespace) -> int:
    from central import provision

    grace_s = args.grace_days * 86400.0

    def change(centre) -> object:
        return provision.rotate_key(centre, args.id, args.out, grace_s, _links(args))

    written = _changing(args, change)
    until = written.grace_until
    old = f"the old key is accepted until {clock.iso(until)}" if until else "the old key is not"
    print(f"# cabinet {args.id}: new key in {written.key_file}; {old}")
    return 0


def cabinet_retire(args: argparse.Namespace) -> int:
    from central import provision

    at = _changing(args, lambda centre: provision.retire(centre, args.id))
    print(f"cabinet {args.id} retired at {at}: no key, no broker login; its records are kept")
    return 0


def cabinet_list(args: argparse.Namespace) -> int:
    store, _ = _open_store(args)
    try:
        rows = store.cabinets()
        held = set(store.provisioned())
    finally:
        store.close()
    for c in rows:
        state = f"retired {c['retired_at']}" if c["retired_at"] else "in service"
        login = "broker login" if c["id"] in held else "no broker login"
        where = " / ".join(x for x in (c["name"], c["location"], c["route"] or "") if x)
        print(f"{c['id']}\t{state}\t{login}\t{where}")
    return 0


def broker_files(args: argparse.Namespace) -> int:
    """The broker's files again (lost, or after the broker directory moved)."""
    centre = _centre(args)
    try:
        for path in _broker_files_again(centre, args, "nothing changed"):
            print(path)
    finally:
        centre.store.close()
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
    from central import reports
    from central.store import Store

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
    return reports.cli(data, args)


# -- the parser ---------------------------------------------------------------------------------
MASTER_KEY_HELP = "the master key (default /etc/kiosk-central/master.key)"
BROKER_DIR = "/etc/mosquitto/kiosk"


def _login_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mqtt-username", help="the centre's broker login (default kiosk-central)")
    p.add_argument("--mqtt-password-file", help="a file holding its password")


def _section_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cabinet-mqtt", default="", metavar="URL", help="the broker, as cabinets see it"
    )
    p.add_argument(
        "--cabinet-http", default="", metavar="URL", help="the centre, as cabinets see it"
    )
    p.add_argument(
        "--cabinet-ca", default="ca.crt", metavar="PATH", help="the CA file on the cabinet"
    )


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
    _login_args(p)
    p.add_argument(
        "--cabinet",
        action="append",
        metavar="ID=KEYFILE",
        default=[],
        help="a cabinet and its key, held in memory only (tests, --simulate)",
    )
    p.add_argument("--master-key", metavar="FILE", default=None, help=MASTER_KEY_HELP)
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
        sp.add_argument(
            "--master-key", metavar="FILE", default=argparse.SUPPRESS, help=MASTER_KEY_HELP
        )
        return sp

    c = cmd("ingest", ingest, "MQTT ingest worker (shared subscription; run several)")
    c.add_argument("--mqtt", required=True, metavar="URL")
    c.add_argument("--ca-file", default=None)
    c.add_argument("--group", default="ingest", help="the shared subscription's group")
    c.add_argument("--cabinet", action="append", metavar="ID=KEYFILE", default=[])
    _login_args(c)

    mk = sub.add_parser("master-key", help="the master key the cabinets' keys are sealed under")
    mks = mk.add_subparsers(dest="mk_action", required=True, metavar="ACTION")
    c = mks.add_parser("new", help="write a new master key (never overwrites one)")
    c.set_defaults(handler=master_key_new)
    c.add_argument("file", metavar="FILE")

    cab = sub.add_parser("cabinet", help="cabinets into and out of service, their keys")
    cabs = cab.add_subparsers(dest="cabinet_action", required=True, metavar="ACTION")

    def changes(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        c = cmd(name, handler, help, cabs)
        c.add_argument("id", metavar="ID")
        c.add_argument("--broker-dir", default=str(BROKER_DIR), help="the broker's files")
        c.add_argument("--broker-pid-file", help="the broker's pid file: SIGHUP it")
        return c

    c = changes("add", cabinet_add, "a new cabinet: its key, its broker login, its [central]")
    c.add_argument("--name", required=True)
    c.add_argument("--location", required=True)
    c.add_argument("--route", help="the operator's round")
    c.add_argument("--out", required=True, metavar="DIR", help="where the cabinet's files go")
    _section_args(c)
    c = changes("rotate-key", cabinet_rotate_key, "a new key; the old one for a grace period")
    c.add_argument("--out", required=True, metavar="DIR", help="where the new key file goes")
    c.add_argument("--grace-days", type=float, default=7.0, help="the old key's grace (0: none)")
    _section_args(c)
    changes("retire", cabinet_retire, "out of service: no key, no login; records kept")
    cmd("list", cabinet_list, "every cabinet, in service or retired", cabs)

    bro = sub.add_parser("broker", help="the broker's password and ACL files")
    bros = bro.add_subparsers(dest="broker_action", required=True, metavar="ACTION")
    c = cmd("files", broker_files, "write the broker's files again from the database", bros)
    c.add_argument("--broker-dir", default=str(BROKER_DIR))
    c.add_argument("--broker-pid-file")

    dbp = sub.add_parser("db", help="the centre's database schema")
    dbs = dbp.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    cmd("upgrade", db_upgrade, "migrate to the newest schema (Alembic)", dbs)

    c = cmd("send", send, "sign and queue a command for a cabinet")
    c.add_argument("cmd")
    c.add_argument("--cabinet", required=True)
    c.add_argument("--args", default="{}", help="the command's args as JSON")
    c.add_argument("--ttl", type=float, default=600, help="seconds until it expires")
    c.add_argument("--key-file", help="the cabinet's key, when it was given with --cabinet")

    c = cmd("stats", stats, "records, sales and duplicates received")
    c.add_argument("--json", action="store_true")

    c = cmd("report", report, "the programme's figures across cabinets")
    c.add_argument("--catalog", help="catalogue JSON for categories and suppliers")
    c.add_argument("--timezone", default="Asia/Shanghai")
    from kiosk.report import add_cli_args

    add_cli_args(c)
    from central import figures_cli, reports

    reports.add_by_arg(c)  # --by month|cabinet|location|category|supplier|product
    figures_cli.add_cli(sub)  # export, statements, staff import|list|block|unblock|push
    from central import backup_cli

    backup_cli.add_cli(sub)  # backup, restore
    from central import hooks_cli

    hooks_cli.add_cli(sub)  # hook add|list|remove|enable|disable|test
    from central import auth_cli

    auth_cli.add_cli(sub)  # user add|list|lock|unlock, token add|list|revoke
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
