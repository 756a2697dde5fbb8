"""``kiosk central hook ...``: where alarms go off site (``central.alarm_hooks`` does the work).

::

    kiosk central hook add --url URL [--route R | --cabinet ID] [--format json|wecom|dingtalk]
    kiosk central hook list [--json]
    kiosk central hook remove ID
    kiosk central hook enable ID | disable ID
    kiosk central hook test ID          # one test message now: exit 0 delivered, 1 not

Each takes ``--db PATH|URL``. A hook with neither ``--route`` nor ``--cabinet`` gets every
cabinet's alarms. URLs are shown with their secrets cut (a WeCom robot's ``key=``, a DingTalk
robot's ``access_token=``). Bad input is one line on stderr and exit 2
(``central.cli_common.UsageError``); the running service picks up a change within a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from central import alarm_hooks as ah
from central.alarm_text import FORMATS
from central.cli_common import UsageError, open_store


def _line(h: ah.Hook) -> str:
    state = "on " if h.enabled else "off"
    where = "all" if h.scope == "all" else f"{h.scope} {h.target}"
    last = ""
    if h.last_error_at and (h.last_ok_at is None or h.last_error_at > h.last_ok_at):
        last = f"  last error: {h.last_error}"
    elif h.last_ok_at:
        last = "  ok"
    pending = f"  {h.pending} waiting" if h.pending else ""
    return f"{h.id:>4}  {state}  {h.format:<8}  {where:<24}  {ah.mask_url(h.url)}{pending}{last}"


def _as_json(h: ah.Hook) -> dict:
    def iso(d: datetime | None) -> str | None:
        return d.isoformat() if d is not None else None

    return {
        "id": h.id,
        "url": ah.mask_url(h.url),
        "scope": h.scope,
        "target": h.target,
        "format": h.format,
        "enabled": h.enabled,
        "pending": h.pending,
        "last_ok_at": iso(h.last_ok_at),
        "last_error": h.last_error,
        "last_error_at": iso(h.last_error_at),
    }


# -- commands -----------------------------------------------------------------------------------
def add_cmd(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        h = ah.add_hook(store, args.url, route=args.route, cabinet=args.cabinet, fmt=args.format)
        on_route = ah.cabinets_on_route(store, h.target) if h.scope == "route" else None
    except ah.HookError as e:
        raise UsageError(str(e)) from e
    finally:
        store.close()
    print(f"hook {h.id} added: {h.describe()}")
    if on_route == 0:
        print(f"(no cabinet is on route {h.target!r} yet)")
    return 0


def list_cmd(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        got = ah.hooks(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps([_as_json(h) for h in got], ensure_ascii=False))
    elif not got:
        print("no hooks: alarms are not sent anywhere (add one: kiosk central hook add --url URL)")
    else:
        for h in got:
            print(_line(h))
    return 0


def remove_cmd(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        dropped = ah.remove_hook(store, args.id)
    finally:
        store.close()
    if dropped is None:
        raise UsageError(f"no hook {args.id}")
    tail = f" ({dropped} undelivered message(s) dropped)" if dropped else ""
    print(f"hook {args.id} removed{tail}")
    return 0


def _enable(args: argparse.Namespace, enabled: bool) -> int:
    store = open_store(args)
    try:
        found = ah.set_enabled(store, args.id, enabled)
    finally:
        store.close()
    if not found:
        raise UsageError(f"no hook {args.id}")
    print(f"hook {args.id} {'enabled' if enabled else 'disabled'}")
    return 0


def enable_cmd(args: argparse.Namespace) -> int:
    return _enable(args, True)


def disable_cmd(args: argparse.Namespace) -> int:
    return _enable(args, False)


def test_cmd(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        why = ah.send_test(store, args.id)
    except ah.HookError as e:
        raise UsageError(str(e)) from e
    finally:
        store.close()
    if why is not None:
        print(f"kiosk central: hook {args.id}: test message not delivered: {why}", file=sys.stderr)
        return 1
    print(f"hook {args.id}: test message delivered")
    return 0


# -- the parser ---------------------------------------------------------------------------------
def add_cli(sub: argparse._SubParsersAction) -> None:
    """``hook add|list|remove|enable|disable|test`` under ``kiosk central``."""
    hp = sub.add_parser(
        "hook",
        help="where alarms go off site (webhooks, WeCom and DingTalk robots)",
        description="Webhooks for new alarms, per route, per cabinet or for all cabinets.",
    )
    hs = hp.add_subparsers(dest="hook_action", required=True, metavar="ACTION")

    def cmd(name: str, handler, help: str) -> argparse.ArgumentParser:
        sp = hs.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=handler)
        sp.add_argument("--db", default=argparse.SUPPRESS, help="SQLite file or postgresql:// URL")
        return sp

    a = cmd("add", add_cmd, "add a hook (every cabinet's alarms unless --route or --cabinet)")
    a.add_argument("--url", required=True, help="http(s):// URL the alarms are POSTed to")
    scope = a.add_mutually_exclusive_group()
    scope.add_argument("--route", help="only the alarms of cabinets on this route")
    scope.add_argument("--cabinet", metavar="ID", help="only this cabinet's alarms")
    a.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help="json (default), wecom (WeCom group robot) or dingtalk (DingTalk robot)",
    )
    c = cmd("list", list_cmd, "the hooks, and how their last delivery went")
    c.add_argument("--json", action="store_true")
    for name, handler, help in (
        ("remove", remove_cmd, "remove a hook (its undelivered messages too)"),
        ("enable", enable_cmd, "send alarms to a hook again"),
        ("disable", disable_cmd, "stop sending alarms to a hook (none kept for it meanwhile)"),
        ("test", test_cmd, "send a test message to a hook now"),
    ):
        cmd(name, handler, help).add_argument("id", type=int, metavar="ID")
