"""``kiosk central user ...`` and ``kiosk central token ...``: the people and scripts that may
use the fleet API (``central.auth`` does the work).

::

    kiosk central user add NAME --role viewer|operator|admin [--cabinets ID,... | --routes R,...]
                                                   --db PATH|URL     # the password on stdin
    kiosk central user list --db PATH|URL [--json]
    kiosk central user lock NAME --db PATH|URL     # refused at login, sessions ended
    kiosk central user unlock NAME --db PATH|URL   # allowed again; a lockout lifted
    kiosk central token add NAME --role ... [--cabinets ... | --routes ...] --db PATH|URL
    kiosk central token list --db PATH|URL [--json]
    kiosk central token revoke NAME --db PATH|URL

The password is read from stdin (one line; typed twice at a terminal), never from the command
line, where other users could read it. A token is printed once: only its hash is kept. Each of
these is audited as ``cli:<the OS user>`` from ``cli``. Anything refused is one line on stderr
and exit 2 (``central.cli_common.UsageError``); nothing is changed then.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any

from central.auth import ROLES, Auth, AuthError, Principal
from central.cli_common import UsageError, open_store

CLI_ADDRESS = "cli"


def _cli_principal() -> Principal:
    """Whoever runs the command line holds the database: an admin, named by the OS user."""
    try:
        who = getpass.getuser()
    except Exception:  # no name for this uid (a container): the uid is still someone
        import os

        who = str(os.getuid())
    return Principal(f"cli:{who}", "admin")


Work = Callable[[Auth, Principal, argparse.Namespace], int]


def _with_auth(work: Work) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        store = open_store(args, pool_size=1)
        try:
            return int(work(Auth(store), _cli_principal(), args))
        except AuthError as e:
            detail = f": {e.detail}" if e.detail not in (None, "") else ""
            raise UsageError(f"{e.error}{detail}") from e
        finally:
            store.close()

    return handler


def _split(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _scope(args: argparse.Namespace) -> dict[str, Any]:
    return {"cabinets": _split(args.cabinets), "routes": _split(args.routes)}


# -- users ----------------------------------------------------------------------------------------
def user_add(auth: Auth, who: Principal, args: argparse.Namespace) -> int:
    password = _read_password()
    user = auth.add_user(args.name, args.role, password, **_scope(args))
    detail = {k: v for k, v in user.items() if k != "name"}
    auth.audit(who, "user.add", target=args.name, address=CLI_ADDRESS, detail=detail)
    print(f"user {args.name} added ({args.role})")
    return 0


def user_list(auth: Auth, who: Principal, args: argparse.Namespace) -> int:
    users = auth.users()
    if args.json:
        print(json.dumps(users, ensure_ascii=False))
        return 0
    for u in users:
        scope = ",".join(u["cabinets"] + [f"route:{r}" for r in u["routes"]]) or "-"
        state = "disabled" if u["disabled"] else (f"locked until {u['locked_until']}"
                                                  if u["locked_until"] else "active")  # fmt: skip
        print(f"{u['name']}\t{u['role']}\t{scope}\t{state}")
    return 0


def _user_lock(disabled: bool) -> Work:
    def run(auth: Auth, who: Principal, args: argparse.Namespace) -> int:
        auth.set_disabled(args.name, disabled)
        action = "user.lock" if disabled else "user.unlock"
        auth.audit(who, action, target=args.name, address=CLI_ADDRESS)
        print(f"user {args.name} {'locked' if disabled else 'unlocked'}")
        return 0

    return run


# -- tokens ---------------------------------------------------------------------------------------
def token_add(auth: Auth, who: Principal, args: argparse.Namespace) -> int:
    scope = _scope(args)
    token = auth.add_token(args.name, args.role, by=who, **scope)
    auth.audit(
        who, "token.add", target=args.name, address=CLI_ADDRESS, detail={"role": args.role, **scope}
    )
    print(token)
    print(f"token {args.name} ({args.role}): shown once, keep it safe", file=sys.stderr)
    return 0


def token_list(auth: Auth, who: Principal, args: argparse.Namespace) -> int:
    tokens = auth.tokens()
    if args.json:
        print(json.dumps(tokens, ensure_ascii=False))
        return 0
    for k in tokens:
        scope = ",".join(k["cabinets"] + [f"route:{r}" for r in k["routes"]]) or "-"
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "live"
        print(f"{k['name']}\t{k['role']}\t{scope}\t{state}\tby {k['created_by']}")
    return 0


def token_revoke(auth: Auth, who: Principal, args: argparse.Namespace) -> int:
    auth.revoke_token(args.name)
    auth.audit(who, "token.revoke", target=args.name, address=CLI_ADDRESS)
    print(f"token {args.name} revoked")
    return 0


# -- the parser -----------------------------------------------------------------------------------
def add_cli(sub: argparse._SubParsersAction) -> None:
    """``user`` and ``token`` under ``kiosk central``."""

    def leaf(parent: Any, name: str, work: Work, help: str) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=_with_auth(work))
        sp.add_argument("--db", default=argparse.SUPPRESS, help="SQLite file or postgresql:// URL")
        return sp

    def scoped(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("name")
        sp.add_argument("--role", required=True, choices=ROLES)
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--cabinets", metavar="ID,...", help="limited to these cabinets")
        g.add_argument("--routes", metavar="R,...", help="limited to the cabinets on these routes")

    users = sub.add_parser("user", help="people who may use the fleet API and the console")
    us = users.add_subparsers(dest="user_action", required=True, metavar="ACTION")
    scoped(leaf(us, "add", user_add, "add a user (the password on stdin)"))
    leaf(us, "list", user_list, "list users").add_argument("--json", action="store_true")
    leaf(us, "lock", _user_lock(True), "refuse a user's logins").add_argument("name")
    leaf(us, "unlock", _user_lock(False), "allow a user again").add_argument("name")

    tokens = sub.add_parser("token", help="API tokens for scripts")
    ts = tokens.add_subparsers(dest="token_action", required=True, metavar="ACTION")
    scoped(leaf(ts, "add", token_add, "make a token (printed once)"))
    leaf(ts, "list", token_list, "list tokens").add_argument("--json", action="store_true")
    leaf(ts, "revoke", token_revoke, "revoke a token").add_argument("name")
