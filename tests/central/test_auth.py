"""central.auth without HTTP: the permission table, scope, argon2 passwords, the lockout (a fake
clock), login sessions, API tokens, the audit log, on both database backends; and the
``kiosk central user/token`` command line (central.auth_cli)."""

from __future__ import annotations

import argparse
import io
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from central import auth_cli
from central import schema_auth as ta
from central.auth import PERMISSIONS, ROLES, Auth, AuthError, Principal, allowed
from central.keyring import Keyring
from central.store import Store

# Argon2 at its cheapest: the tests check the rules, not the cost.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PW = "correct horse battery"
START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


ADMIN = Principal("cli:test", "admin")

# The roles document (docs, design.md), written out: what each role may do.
READS = {"cabinets.read", "alarms.read", "stock.read", "sales.read", "commands.read",
         "versions.read", "reports.read"}  # fmt: skip
OPERATOR_WORK = {"alarm.ack", "door.open", "sale.refund", "sale.review", "card.block",
                 "card.unblock", "staff.read"}  # fmt: skip
EXPECTED = {
    "viewer": READS,
    "operator": READS | OPERATOR_WORK,
    "admin": set(PERMISSIONS),
}


@pytest.fixture
def cabinets_store(db_url: str):
    s = Store(db_url, keyring=Keyring(os.urandom(32)))
    s.provision_cabinet("QH-0001", os.urandom(32), route="north")
    s.provision_cabinet("QH-0002", os.urandom(32), route="south")
    yield s
    s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth(cabinets_store: Store, clock: FakeClock) -> Auth:
    return Auth(cabinets_store, clock=clock, hasher=FAST)


def denied(auth: Auth) -> list[dict]:
    return [e for e in auth.audit_entries(limit=1000) if e["outcome"] == "denied"]


# -- the permission table -------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_take_exactly_its_actions(role: str) -> None:
    p = Principal("someone", role)
    may = {a for a in PERMISSIONS if allowed(p, a)}
    assert may == EXPECTED[role]
    assert "users.manage" not in may or role == "admin"


def test_an_operator_acts_only_on_the_cabinets_in_scope() -> None:
    by_cab = Principal("ann", "operator", cabinets=frozenset({"QH-0001"}))
    by_route = Principal("bob", "operator", routes=frozenset({"north"}))
    assert allowed(by_cab, "door.open", "QH-0001", "south")
    assert not allowed(by_cab, "door.open", "QH-0002", "north")
    assert allowed(by_route, "sale.refund", "QH-0009", "north")
    assert not allowed(by_route, "sale.refund", "QH-0002", "south")
    assert not allowed(by_route, "sale.refund", "QH-0003", None)
    # the scope never widens a role
    assert not allowed(by_cab, "catalog.publish", "QH-0001", "north")
    with pytest.raises(KeyError):
        allowed(by_cab, "no.such.action")


def test_authorize_refuses_with_403_and_audits_role_and_scope(auth: Auth, clock) -> None:
    op = Principal("ann", "operator", routes=frozenset({"north"}))
    auth.authorize(op, "door.open", cabinet="QH-0001", address="10.0.0.7")  # north: fine
    with pytest.raises(AuthError) as e:
        auth.authorize(op, "door.open", cabinet="QH-0002", address="10.0.0.7")
    assert e.value.status == 403
    with pytest.raises(AuthError) as e:
        auth.authorize(op, "config.push", address="10.0.0.8")
    assert e.value.status == 403
    got = denied(auth)
    assert [(x["actor"], x["action"], x["target"], x["address"], x["detail"]["why"])
            for x in got] == [
        ("ann", "config.push", None, "10.0.0.8", "role"),
        ("ann", "door.open", "QH-0002", "10.0.0.7", "scope"),
    ]  # fmt: skip
    assert all(x["at"] == "2026-11-28T09:00:00.000Z" and x["role"] == "operator" for x in got)


# -- users and passwords --------------------------------------------------------------------------
def test_a_password_is_kept_as_an_argon2_hash(auth: Auth, cabinets_store: Store) -> None:
    auth.add_user("ann", "viewer", PW)
    with cabinets_store.engine.connect() as conn:
        stored = conn.execute(sa.select(ta.users.c.password_hash)).scalar()
    assert stored.startswith("$argon2id$") and PW not in stored
    assert auth.login("ann", PW, "10.0.0.1").principal == Principal("ann", "viewer")


@pytest.mark.parametrize(
    ("role", "scope", "error"),
    [
        ("operator", {}, "an operator needs a scope"),
        ("admin", {"routes": ["north"]}, "an admin has no scope"),
        ("boss", {}, "bad role"),
        ("viewer", {"cabinets": ["QH-9999"]}, "unknown cabinet"),
    ],
)
def test_a_user_that_makes_no_sense_is_refused(auth: Auth, role, scope, error) -> None:
    with pytest.raises(AuthError) as e:
        auth.add_user("ann", role, PW, **scope)
    assert (e.value.status, e.value.error) == (400, error)
    assert auth.users() == []


def test_bad_names_passwords_and_a_second_user_of_a_name_are_refused(auth: Auth) -> None:
    for name, pw in (("", PW), ("a b", PW), ("x" * 65, PW), ("ann", "short")):
        with pytest.raises(AuthError) as e:
            auth.add_user(name, "viewer", pw)
        assert e.value.status == 400
    auth.add_user("ann", "viewer", PW)
    with pytest.raises(AuthError) as e:
        auth.add_user("ann", "admin", PW)
    assert e.value.status == 409
    assert [u["role"] for u in auth.users()] == ["viewer"]


def test_five_wrong_passwords_lock_the_user_for_15_minutes(auth: Auth, clock: FakeClock) -> None:
    auth.add_user("ann", "operator", PW, routes=["north"])
    for i in range(4):
        with pytest.raises(AuthError) as e:
            auth.login("ann", f"wrong {i}", "10.0.0.9")
        assert e.value.error == "bad credentials"
    with pytest.raises(AuthError) as e:  # the fifth: locked from now
        auth.login("ann", "wrong 5", "10.0.0.9")
    assert e.value.error == "account locked"
    assert e.value.detail == {"until": "2026-11-28T09:15:00.000Z"}
    clock.advance(14 * 60 + 59)
    with pytest.raises(AuthError) as e:  # the right password is refused during the lock
        auth.login("ann", PW, "10.0.0.9")
    assert (e.value.status, e.value.error) == (401, "account locked")
    assert auth.users()[0]["locked_until"] == "2026-11-28T09:15:00.000Z"
    clock.advance(1)
    assert auth.login("ann", PW, "10.0.0.9").principal.name == "ann"
    assert auth.users()[0]["locked_until"] is None
    whys = [e["detail"]["why"] for e in reversed(denied(auth))]
    assert whys == ["wrong password"] * 5 + ["locked"]


def test_a_good_password_resets_the_count(auth: Auth, clock: FakeClock) -> None:
    auth.add_user("ann", "viewer", PW)
    for _ in range(2):
        for i in range(4):
            with pytest.raises(AuthError):
                auth.login("ann", f"wrong {i}", "10.0.0.9")
        auth.login("ann", PW, "10.0.0.9")  # 4 + 4 wrong, never 5 in a row: never locked


def test_an_unknown_user_gets_the_answer_a_wrong_password_gets(auth: Auth) -> None:
    auth.add_user("ann", "viewer", PW)
    answers = []
    for name in ("ann", "nobody"):
        with pytest.raises(AuthError) as e:
            auth.login(name, "wrong password", "10.0.0.9")
        answers.append(e.value.json())
    assert answers[0] == answers[1] == {"error": "bad credentials", "detail": None}


def test_user_lock_ends_sessions_and_unlock_lifts_a_lockout(auth: Auth) -> None:
    auth.add_user("ann", "viewer", PW)
    s = auth.login("ann", PW, "10.0.0.1").session_id
    auth.set_disabled("ann", True)
    assert auth.session_principal(s) is None
    with pytest.raises(AuthError) as e:
        auth.login("ann", PW, "10.0.0.1")
    assert e.value.error == "account locked"
    auth.set_disabled("ann", False)
    for i in range(5):
        with pytest.raises(AuthError):
            auth.login("ann", f"wrong {i}", "10.0.0.1")
    auth.set_disabled("ann", False)  # an admin lifts the lockout at once
    assert auth.login("ann", PW, "10.0.0.1")
    with pytest.raises(AuthError) as e:
        auth.set_disabled("nobody", True)
    assert e.value.status == 404


# -- sessions -------------------------------------------------------------------------------------
def test_a_session_is_stored_hashed_and_expires(auth: Auth, clock, cabinets_store) -> None:
    auth.add_user("ann", "viewer", PW)
    login = auth.login("ann", PW, "10.0.0.1")
    assert login.expires_at == START + timedelta(hours=12)
    with cabinets_store.engine.connect() as conn:
        stored = conn.execute(sa.select(ta.login_sessions.c.id_hash)).scalars().all()
    assert len(stored) == 1 and login.session_id not in stored[0]
    assert auth.session_principal(login.session_id) == Principal("ann", "viewer")
    assert auth.session_principal("made-up") is None
    clock.advance(12 * 3600)
    assert auth.session_principal(login.session_id) is None


def test_logout_ends_the_session(auth: Auth) -> None:
    auth.add_user("ann", "viewer", PW)
    login = auth.login("ann", PW, "10.0.0.1")
    auth.logout(login.session_id, "10.0.0.1")
    assert auth.session_principal(login.session_id) is None
    assert auth.audit_entries(limit=1)[0]["action"] == "logout"


# -- tokens ---------------------------------------------------------------------------------------
def test_a_token_is_shown_once_stored_hashed_and_revocable(auth: Auth, cabinets_store) -> None:
    token = auth.add_token("nightly", "viewer", routes=["north"], by=ADMIN)
    with cabinets_store.engine.connect() as conn:
        row = conn.execute(sa.select(ta.api_tokens)).one()
    assert token not in json.dumps([str(v) for v in row])
    assert row.created_by == "cli:test"
    p = auth.token_principal(token)
    assert p == Principal("token:nightly", "viewer", routes=frozenset({"north"}))
    assert auth.token_principal(token[:-1] + "x") is None
    with pytest.raises(AuthError) as e:  # a live token's name is taken
        auth.add_token("nightly", "admin", by=ADMIN)
    assert e.value.status == 409
    auth.revoke_token("nightly")
    assert auth.token_principal(token) is None
    with pytest.raises(AuthError) as e:
        auth.revoke_token("nightly")
    assert e.value.status == 409
    again = auth.add_token("nightly", "admin", by=ADMIN)  # a revoked name may be used again
    assert auth.token_principal(token) is None
    assert auth.token_principal(again) == Principal("token:nightly", "admin")
    assert [(k["name"], k["role"], k["revoked_at"]) for k in auth.tokens()] == [
        ("nightly", "admin", None)
    ]


# -- the command line -----------------------------------------------------------------------------
def run_cli(argv: list[str], stdin: str = "", monkeypatch=None) -> int:
    """``kiosk central user/token ...`` as central.cli would run it (its parser, its errors)."""
    from central.cli import UsageError

    p = argparse.ArgumentParser(prog="kiosk central")
    p.add_argument("--db")
    auth_cli.add_cli(p.add_subparsers(dest="action"))
    args = p.parse_args(argv)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        return args.handler(args)
    except UsageError as e:
        print(f"kiosk central: {e}")
        return 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_command_line_adds_lists_locks_users_and_tokens(
    cabinets_store: Store, db_url: str, monkeypatch, capsys
) -> None:
    def cli(*argv: str, stdin: str = "") -> tuple[int, str]:
        code = run_cli([*argv, "--db", db_url], stdin, monkeypatch)
        return code, capsys.readouterr().out

    assert cli("user", "add", "ann", "--role", "operator", "--routes", "north",
               stdin=PW + "\n") == (0, "user ann added (operator)\n")  # fmt: skip
    code, out = cli("user", "add", "bob", "--role", "operator", stdin=PW + "\n")
    assert (code, out) == (2, "kiosk central: an operator needs a scope: give cabinets or routes\n")
    code, out = cli("user", "add", "cy", "--role", "viewer", stdin="short\n")
    assert code == 2 and "bad password" in out
    code, out = cli("user", "list", "--json")
    assert [(u["name"], u["routes"]) for u in json.loads(out)] == [("ann", ["north"])]
    assert cli("user", "lock", "ann")[0] == 0
    assert "disabled" in cli("user", "list")[1]
    assert cli("user", "unlock", "ann") == (0, "user ann unlocked\n")
    assert cli("user", "lock", "nobody") == (2, "kiosk central: unknown user: nobody\n")

    code, token = cli("token", "add", "nightly", "--role", "viewer", "--cabinets", "QH-0001")
    assert code == 0 and token.startswith("kt_")
    code, out = cli("token", "list")
    assert out.startswith("nightly\tviewer\tQH-0001\tlive\tby cli:")
    assert cli("token", "revoke", "nightly") == (0, "token nightly revoked\n")
    assert cli("token", "revoke", "nightly")[0] == 2

    auth = Auth(cabinets_store, hasher=FAST)
    assert auth.login("ann", PW, "-").principal.routes == {"north"}
    assert auth.token_principal(token.strip()) is None
    done = [(e["action"], e["target"], e["address"]) for e in auth.audit_entries()
            if e["actor"].startswith("cli:")]  # fmt: skip
    assert done == [
        ("token.revoke", "nightly", "cli"),
        ("token.add", "nightly", "cli"),
        ("user.unlock", "ann", "cli"),
        ("user.lock", "ann", "cli"),
        ("user.add", "ann", "cli"),
    ]


def test_the_command_line_wants_a_database_that_exists(tmp_path, monkeypatch, capsys) -> None:
    code = run_cli(["user", "list", "--db", str(tmp_path / "nope.db")], "", monkeypatch)
    assert code == 2 and "no such file" in capsys.readouterr().out
    assert not (tmp_path / "nope.db").exists()
