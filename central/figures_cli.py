"""``kiosk central export | statements | staff ...``: the programme's figures, staff cards and
what to charge them (``central/cli.py`` adds these with ``add_cli``).

::

    kiosk central export --from D --to D [--format csv|xlsx] [--out FILE] [--certified]
    kiosk central statements --month YYYY-MM [--format csv|xlsx] [--out FILE] [--totals]
    kiosk central staff import FILE        # card,name,offline_limit_fen,status[,employee_no,...]
    kiosk central staff list [--json]
    kiosk central staff block|unblock CARD # its id (staff list) or its UID; every cabinet told
    kiosk central staff push [--cabinet ID ...]   # a new accounts list for the cabinets

``--by month|supplier|category|location|cabinet`` of ``kiosk central report`` is
``central.reports``. Commands that open sealed card UIDs take ``--master-key FILE``
(default ``/etc/kiosk-central/master.key``); ``statements`` uses it when it is there.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from central.cli_common import UsageError, open_store

if TYPE_CHECKING:
    from central.keyring import Keyring
    from central.store import Store

Handler = Callable[[argparse.Namespace], int]


@contextmanager
def _store(args: argparse.Namespace, master_key: str = "no") -> Iterator[Store]:
    """The store (a SQLite file migrated, PostgreSQL checked, as the service does), with its
    keyring per ``master_key``: ``no`` (not loaded), ``maybe`` (when given, or at the default
    path), ``required``. Bad input inside (``ValueError``, ``KeyringError``): one line, exit 2."""
    from central import staff
    from central.keyring import DEFAULT_PATH, KeyringError
    from central.provision import open_keyring

    store = open_store(args)
    try:
        if master_key != "no":
            given = getattr(args, "master_key", None)
            need = master_key == "required" or given is not None or DEFAULT_PATH.exists()
            # loads it and checks it opens the sealed cabinet keys; then the staff cards too
            open_keyring(store, given, required=need)
            if store.keyring is not None:
                store.keyring.check(staff.sealed_samples(store))
        yield store
    except (ValueError, KeyringError) as e:  # StaffError is a ValueError
        raise UsageError(str(e)) from e
    finally:
        store.close()


def _ring(store: Store) -> Keyring:
    assert store.keyring is not None  # _store(args, "required") loaded it or stopped
    return store.keyring


def _catalog(args: argparse.Namespace) -> dict | None:
    if not getattr(args, "catalog", None):
        return None
    try:
        return json.loads(Path(args.catalog).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{args.catalog}: cannot read the catalogue: {e}") from e


def _timezone(args: argparse.Namespace) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(args.timezone).key
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone {args.timezone!r}: no such time zone") from None


def _write(write: Callable[[], Path], out: Path) -> None:
    try:
        write()
    except OSError as e:
        raise UsageError(f"{out}: cannot write: {e.strerror or e}") from e


# -- commands ---------------------------------------------------------------------------------
def export(args: argparse.Namespace) -> int:
    from central import export as ex
    from central.reports import parse_period

    if not args.date_from or not args.date_to:
        raise UsageError("export: give --from YYYY-MM-DD and --to YYYY-MM-DD")
    try:
        start, end = parse_period(args.date_from, args.date_to)
    except ValueError as e:
        raise UsageError(f"export: {e}") from e
    assert start and end
    tz, catalog = _timezone(args), _catalog(args)
    out = Path(args.out or f"sales_{start}_{end}.{args.format}")
    with _store(args) as store:
        rows = ex.rows(store, catalog, start, end, tz, certified_only=args.certified)
    _write(lambda: ex.write(rows, out, args.format), out)
    tot = ex.totals(rows)
    print(
        f"wrote {out}: {tot.rows} rows, sales {tot.sales_fen / 100:.2f} yuan, "
        f"certified {tot.certified_fen / 100:.2f} yuan"
    )
    return 0


def statements(args: argparse.Namespace) -> int:
    from central import statements as stm

    tz = _timezone(args)
    try:
        stm.month_bounds(args.month, tz)
    except ValueError as e:
        raise UsageError(f"statements: {e}") from e
    with _store(args, "maybe") as store:
        st = stm.compute(store, store.keyring, args.month, tz, employer=args.employer)
    suffix = "_totals" if args.totals and args.format == "csv" else ""
    out = Path(args.out or f"statements_{args.month}{suffix}.{args.format}")
    _write(lambda: stm.write(st, out, args.format, totals_only=args.totals), out)
    unknown = sum(1 for s in st.statements if not s.registered)
    print(
        f"wrote {out}: {len(st.statements)} accounts ({unknown} not in the staff registry), "
        f"to deduct {st.total_fen / 100:.2f} yuan"
    )
    return 0


def staff_import(args: argparse.Namespace) -> int:
    from central import staff

    try:
        rows = staff.parse_csv(args.file)
    except staff.StaffError as e:
        raise UsageError(str(e)) from e
    with _store(args, "required") as store:
        got = staff.import_rows(store, _ring(store), rows)
    print(f"{got.added} cards added, {got.updated} updated (`staff push` sends them down)")
    return 0


def staff_list(args: argparse.Namespace) -> int:
    from central import staff

    with _store(args, "maybe") as store:
        if store.keyring is not None:
            listed = [(c, staff.masked(uid)) for c, uid in staff.opened(store, store.keyring)]
        else:
            listed = [(c, "") for c in staff.cards(store)]
    if args.json:
        for c, uid in listed:
            print(json.dumps({**asdict(c), "card": uid}, ensure_ascii=False))
        return 0
    for c, uid in listed:
        limit = "default" if c.offline_limit_fen is None else f"{c.offline_limit_fen / 100:.2f}"
        print(
            f"{c.id}  {uid:<10} {c.status:<7} {c.name}  {c.employee_no or '-'}  "
            f"{c.employer or '-'} / {c.department or '-'}  offline limit {limit}"
        )
    print(f"{len(listed)} cards")
    return 0


def _set_status(args: argparse.Namespace, status: str) -> int:
    from central import staff

    with _store(args, "required") as store:
        ring = _ring(store)
        card, uid = staff.set_status(store, ring, args.card, status)
        assert uid is not None
        told = staff.send_status(store, card, uid)
        versions = staff.publish_accounts(store, ring)
    print(
        f"card {card.id} ({card.name}) {status}; "
        f"{'block_card' if status == 'blocked' else 'unblock_card'} sent to {len(told)} cabinets, "
        f"accounts list updated for {len(versions)}"
    )
    return 0


def staff_block(args: argparse.Namespace) -> int:
    return _set_status(args, "blocked")


def staff_unblock(args: argparse.Namespace) -> int:
    return _set_status(args, "active")


def staff_push(args: argparse.Namespace) -> int:
    from central import staff

    with _store(args, "required") as store:
        versions = staff.publish_accounts(store, _ring(store), args.cabinet or None)
    for cab, v in versions.items():
        print(f"{cab}: accounts version {v}")
    print(f"accounts list sent to {len(versions)} cabinets")
    return 0


# -- the parser -------------------------------------------------------------------------------
def _cmd(
    sub: argparse._SubParsersAction, name: str, handler: Handler, help: str
) -> argparse.ArgumentParser:
    sp = sub.add_parser(name, help=help, description=help)
    sp.set_defaults(handler=handler)
    # SUPPRESS: given before the action (the global option) it stays as given
    sp.add_argument("--db", default=argparse.SUPPRESS, help="SQLite file or postgresql:// URL")
    sp.add_argument(
        "--master-key",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="the master key (default /etc/kiosk-central/master.key)",
    )
    return sp


def add_cli(sub: argparse._SubParsersAction) -> None:
    """``export``, ``statements`` and ``staff ...`` on ``kiosk central``'s subcommands."""
    from central import export as ex
    from central import statements as stm

    c = _cmd(sub, "export", export, "every sale line of a period, by certification number")
    c.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    c.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    c.add_argument("--format", choices=ex.FORMATS, default="csv")
    c.add_argument("--out", metavar="FILE", help="default sales_FROM_TO.FORMAT")
    c.add_argument("--catalog", help="catalogue JSON for names (default: the newest sent)")
    c.add_argument("--timezone", default="Asia/Shanghai")
    c.add_argument("--certified", action="store_true", help="certified products only")

    c = _cmd(sub, "statements", statements, "what to charge each staff account for a month")
    c.add_argument("--month", required=True, metavar="YYYY-MM")
    c.add_argument("--format", choices=stm.FORMATS, default="csv")
    c.add_argument("--out", metavar="FILE", help="default statements_MONTH.FORMAT")
    c.add_argument("--employer", help="only this employer's staff")
    c.add_argument("--totals", action="store_true", help="CSV: one line per account only")
    c.add_argument("--timezone", default="Asia/Shanghai")

    sp = sub.add_parser("staff", help="staff card accounts", description="staff card accounts")
    ss = sp.add_subparsers(dest="staff_action", required=True, metavar="ACTION")
    c = _cmd(ss, "import", staff_import, "add or update cards from a CSV file")
    c.add_argument("file", help="CSV: card,name,offline_limit_fen,status[,employee_no,...]")
    c = _cmd(ss, "list", staff_list, "the cards (UIDs masked)")
    c.add_argument("--json", action="store_true")
    c = _cmd(ss, "block", staff_block, "block a card at every cabinet")
    c.add_argument("card", help="the card's id (staff list) or its UID")
    c = _cmd(ss, "unblock", staff_unblock, "unblock a card at every cabinet")
    c.add_argument("card", help="the card's id (staff list) or its UID")
    c = _cmd(ss, "push", staff_push, "send the accounts list to the cabinets")
    c.add_argument("--cabinet", action="append", default=[], help="only this cabinet (repeat)")
