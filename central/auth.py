"""Who may do what at the centre: users, roles, login sessions, API tokens and the audit log.

Rules:

- **One permission table.** ``PERMISSIONS`` maps each action to the roles that may take it;
  ``allowed`` is the only check (the fleet API calls ``Auth.authorize``, which uses it and
  audits a refusal). viewer: read figures, reports and downloads. operator: that, the staff
  cards, and on their own cabinets acknowledge alarms, open a door, refund, review a sale,
  block and unblock cards.
  admin: everything, including users, tokens, cabinets, catalogue, prices and configuration.
- **Scope.** A user or token may be limited to cabinets and/or routes (an operator must be, an
  admin cannot be). A scoped principal sees and acts on only the cabinets in its scope; a
  cabinet's route is read when the check is made, so moving a cabinet moves who may touch it.
- **Passwords** are argon2id (argon2-cffi). ``max_failures`` (5) wrong passwords in a row lock
  the user for ``lockout_s`` (15 min): the right password is refused until then, and the count
  starts again after. An unknown user costs one hash too, and gets the same answer as a wrong
  password. The hash is computed outside any transaction (it is slow on purpose; a SQLite write
  lock held meanwhile would stall ingest).
- **Login sessions** (the console, Step 10): an opaque random id in a cookie, stored only as its
  SHA-256, valid ``session_ttl_s`` (12 h) after login; logout deletes it; locking a user deletes
  theirs. The user's role and scope are read at every request, so a change applies at once.
- **API tokens** (scripts): random, printed once, stored only as their SHA-256; a token has its
  own role and scope; revoked, never deleted (the audit log keeps naming it).
- **Audit**: ``Auth.audit`` writes who (a user, ``token:NAME``, ``cli:OSUSER``, or ``-`` when
  nobody could be told), what (action, target, detail), when (the injected clock), from where
  (the client's address, or ``cli``) and how it ended (ok, denied, refused, failed).

Time comes from an injected ``clock`` (aware UTC ``datetime``), so lockout and expiry are
tested without waiting.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from central import schema as t
from central import schema_auth as ta
from central.store import Store
from kiosk import clock as wall

Clock = Callable[[], datetime]

ROLES = ("viewer", "operator", "admin")
_VIEW = ("viewer", "operator", "admin")
_OPERATE = ("operator", "admin")
_ADMIN = ("admin",)

# The one table: action -> the roles that may take it. Scoped actions (on one cabinet) are
# checked against the principal's cabinets/routes too (``allowed``).
PERMISSIONS: dict[str, tuple[str, ...]] = {
    # figures, reports, downloads
    "cabinets.read": _VIEW,
    "alarms.read": _VIEW,
    "stock.read": _VIEW,
    "sales.read": _VIEW,
    "commands.read": _VIEW,
    "versions.read": _VIEW,
    "reports.read": _VIEW,
    # an operator's work, on their own cabinets
    "alarm.ack": _OPERATE,
    "door.open": _OPERATE,
    "sale.refund": _OPERATE,
    "sale.review": _OPERATE,
    "card.block": _OPERATE,
    "card.unblock": _OPERATE,
    "staff.read": _OPERATE,  # the staff cards (names, status; never UIDs)
    # an admin's
    "catalog.publish": _ADMIN,
    "prices.publish": _ADMIN,
    "config.push": _ADMIN,
    "command.send": _ADMIN,
    "cabinets.manage": _ADMIN,
    "staff.manage": _ADMIN,
    "users.manage": _ADMIN,
    "tokens.manage": _ADMIN,
    "audit.read": _ADMIN,
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_SCOPE_ITEM = re.compile(r"[\x21-\x7e]{1,64}")
SESSION_COOKIE = "kiosk_session"
TOKEN_PREFIX = "kt_"
PASSWORD_MIN, PASSWORD_MAX = 8, 1024


class AuthError(Exception):
    """A refusal: ``status`` (HTTP), ``error`` (a fixed text), ``detail`` (more)."""

    def __init__(self, status: int, error: str, detail: Any = None):
        super().__init__(f"{error}: {detail}" if detail is not None else error)
        self.status, self.error, self.detail = status, error, detail

    def json(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail}


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (``alice``), a token (``token:deploy``) or the command line
    (``cli:root``), with a role and, unless empty, a scope."""

    name: str
    role: str
    cabinets: frozenset[str] = frozenset()
    routes: frozenset[str] = frozenset()

    @property
    def scoped(self) -> bool:
        return bool(self.cabinets or self.routes)

    def covers(self, cabinet: str, route: str | None) -> bool:
        """Whether ``cabinet`` (on ``route``) is within this principal's scope."""
        if not self.scoped:
            return True
        return cabinet in self.cabinets or (route is not None and route in self.routes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "cabinets": sorted(self.cabinets),
            "routes": sorted(self.routes),
        }


def allowed(
    p: Principal, action: str, cabinet: str | None = None, route: str | None = None
) -> bool:
    """Whether ``p`` may take ``action`` (on ``cabinet``, which is on ``route``)."""
    roles = PERMISSIONS[action]  # an unknown action is a programming error: KeyError
    if p.role not in roles:
        return False
    return cabinet is None or p.covers(cabinet, route)


@dataclass(frozen=True)
class AuthSettings:
    max_failures: int = 5
    lockout_s: float = 15 * 60
    session_ttl_s: float = 12 * 3600


@dataclass(frozen=True)
class Login:
    session_id: str = field(repr=False)  # the cookie's value; the database has its hash only
    principal: Principal
    expires_at: datetime


# -- database helpers shared by central.alarms and central.fleet_view --------------------------
@contextmanager
def read_tx(store: Store) -> Iterator[Connection]:
    with store.engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def write_tx(store: Store) -> Iterator[Connection]:
    with store.engine.connect() as conn:
        # central.store's SQLite hook reads this: BEGIN IMMEDIATE, so a writer waits its turn
        # (busy_timeout) instead of failing when it upgrades a read lock.
        conn.execution_options(kiosk_write=True)
        with conn.begin():
            yield conn


def insert(store: Store, table: sa.Table) -> Any:
    """INSERT with ON CONFLICT (a dialect construct both backends have)."""
    return (postgresql.insert if store.postgres else sqlite.insert)(table)


def utc(d: datetime | None) -> datetime | None:
    """A time read back as aware UTC (SQLite gives it naive, in UTC)."""
    if d is None:
        return None
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def iso(d: datetime | None) -> str | None:
    return None if d is None else wall.iso(utc(d))  # type: ignore[arg-type]


def dumps(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def check_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AuthError(400, f"bad {what}", "1..64 of A-Z a-z 0-9 . _ @ -, starting alnum")
    return name


def _scope_list(values: Iterable[Any] | None, what: str) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or ():
        if not isinstance(v, str) or not _SCOPE_ITEM.fullmatch(v) or "," in v:
            raise AuthError(400, f"bad {what}", f"{str(v)[:80]!r} is not 1..64 printable")
        if v not in out:
            out.append(v)
    return tuple(sorted(out))


def _check_role_scope(role: Any, cabinets: Sequence[str], routes: Sequence[str]) -> None:
    if role not in ROLES:
        raise AuthError(400, "bad role", f"one of {', '.join(ROLES)}")
    if role == "operator" and not (cabinets or routes):
        raise AuthError(400, "an operator needs a scope", "give cabinets or routes")
    if role == "admin" and (cabinets or routes):
        raise AuthError(400, "an admin has no scope", "admins act on every cabinet")


class Auth:
    """Users, sessions, tokens, permission checks and the audit log, over the Store's engine."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = _now,
        hasher: PasswordHasher | None = None,
        settings: AuthSettings | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self.settings = settings or AuthSettings()

    @cached_property
    def _dummy_hash(self) -> str:
        """Verified against for an unknown user: the same cost as a known one."""
        return self.hasher.hash(secrets.token_hex(16))

    # -- audit ----------------------------------------------------------------------------------
    def audit(
        self,
        actor: Principal | str | None,
        action: str,
        *,
        target: str | None = None,
        outcome: str = "ok",
        address: str = "-",
        detail: dict[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> None:
        """One line of the audit log (in ``conn``'s transaction when given)."""
        if isinstance(actor, Principal):
            name, role = actor.name, actor.role
        else:
            name, role = (actor or "-")[:100], None
        row = {
            "at": self.clock(),
            "actor": name,
            "role": role,
            "action": action,
            "target": None if target is None else str(target)[:200],
            "outcome": outcome,
            "address": address[:200],
            "detail": dumps(detail or {}),
        }
        if conn is not None:
            conn.execute(ta.audit_log.insert().values(**row))
            return
        with write_tx(self.store) as c:
            c.execute(ta.audit_log.insert().values(**row))

    def audit_entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first."""
        a = ta.audit_log.c
        q = sa.select(ta.audit_log)
        if actor:
            q = q.where(a.actor == actor)
        if action:
            q = q.where(a.action == action)
        if target:
            q = q.where(a.target == target)
        if before_id:
            q = q.where(a.id < before_id)
        with read_tx(self.store) as conn:
            got = conn.execute(q.order_by(a.id.desc()).limit(limit)).all()
        return [
            {
                "id": int(r.id),
                "at": iso(r.at),
                "actor": r.actor,
                "role": r.role,
                "action": r.action,
                "target": r.target,
                "outcome": r.outcome,
                "address": r.address,
                "detail": json.loads(r.detail),
            }
            for r in got
        ]

    # -- permissions ----------------------------------------------------------------------------
    def route_of(self, cabinet: str) -> str | None:
        c = t.cabinets.c
        with read_tx(self.store) as conn:
            return conn.execute(sa.select(c.route).where(c.id == cabinet)).scalar()

    def authorize(
        self,
        p: Principal,
        action: str,
        *,
        cabinet: str | None = None,
        address: str = "-",
        target: str | None = None,
    ) -> None:
        """Nothing when ``p`` may take ``action`` (on ``cabinet``); else the refusal is audited
        and ``AuthError(403)`` raised."""
        route = self.route_of(cabinet) if cabinet is not None and p.scoped else None
        if allowed(p, action, cabinet, route):
            return
        why = "role" if p.role not in PERMISSIONS[action] else "scope"
        self.audit(
            p,
            action,
            target=target or cabinet,
            outcome="denied",
            address=address,
            detail={"why": why},
        )
        if why == "role":
            raise AuthError(403, "forbidden", f"{p.role} may not {action}")
        raise AuthError(403, "forbidden", f"{cabinet} is not in {p.name}'s scope")

    # -- users ----------------------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        role: str,
        password: str,
        *,
        cabinets: Iterable[str] = (),
        routes: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A new user (the caller audits it: the CLI as its OS user, the API as the admin)."""
        check_name(name)
        cabs, rts = _scope_list(cabinets, "cabinet"), _scope_list(routes, "route")
        _check_role_scope(role, cabs, rts)
        if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
            raise AuthError(400, "bad password", f"{PASSWORD_MIN}..{PASSWORD_MAX} characters")
        pw_hash = self.hasher.hash(password)  # slow on purpose: before the transaction
        u = ta.users.c
        with write_tx(self.store) as conn:
            self._known_cabinets(conn, cabs)
            got = conn.execute(
                insert(self.store, ta.users)
                .values(
                    name=name,
                    role=role,
                    password_hash=pw_hash,
                    cabinets=dumps(list(cabs)),
                    routes=dumps(list(rts)),
                    failed_logins=0,
                    disabled=False,
                    created_at=self.clock(),
                )
                .on_conflict_do_nothing(index_elements=[u.name])
                .returning(u.name)
            ).first()
            if got is None:
                raise AuthError(409, "user exists", name)
        return {"name": name, "role": role, "cabinets": list(cabs), "routes": list(rts)}

    def _known_cabinets(self, conn: Connection, cabinets: Sequence[str]) -> None:
        if not cabinets:
            return
        c = t.cabinets.c
        known = set(conn.execute(sa.select(c.id).where(c.id.in_(cabinets))).scalars())
        unknown = [x for x in cabinets if x not in known]
        if unknown:
            raise AuthError(400, "unknown cabinet", ", ".join(unknown))

    def users(self) -> list[dict[str, Any]]:
        now = self.clock()
        with read_tx(self.store) as conn:
            got = conn.execute(sa.select(ta.users).order_by(ta.users.c.name)).all()
        out = []
        for r in got:
            until = utc(r.locked_until)
            out.append(
                {
                    "name": r.name,
                    "role": r.role,
                    "cabinets": json.loads(r.cabinets),
                    "routes": json.loads(r.routes),
                    "disabled": bool(r.disabled),
                    "locked_until": iso(until) if until and until > now else None,
                    "created_at": iso(r.created_at),
                }
            )
        return out

    def set_disabled(self, name: str, disabled: bool) -> None:
        """``user lock``: refused at login, sessions ended. ``user unlock``: allowed again, and
        a lockout for wrong passwords lifted."""
        u = ta.users.c
        values: dict[str, Any] = {"disabled": disabled}
        if not disabled:
            values.update(failed_logins=0, locked_until=None)
        with write_tx(self.store) as conn:
            got = conn.execute(
                ta.users.update().where(u.name == name).values(**values).returning(u.name)
            ).first()
            if got is None:
                raise AuthError(404, "unknown user", name)
            if disabled:
                conn.execute(ta.login_sessions.delete().where(ta.login_sessions.c.user == name))

    def _principal_of_user(self, r: Any) -> Principal:
        return Principal(
            r.name, r.role, frozenset(json.loads(r.cabinets)), frozenset(json.loads(r.routes))
        )

    # -- login sessions -------------------------------------------------------------------------
    def login(self, name: Any, password: Any, address: str) -> Login:
        """A new session for the right password; ``AuthError(401)`` otherwise (audited)."""
        shown = name[:64] if isinstance(name, str) else "-"
        if not isinstance(name, str) or not isinstance(password, str):
            self.audit(shown, "login", outcome="denied", address=address, detail={"why": "form"})
            raise AuthError(400, "bad request", "name and password are text")
        u = ta.users.c
        with read_tx(self.store) as conn:
            row = conn.execute(sa.select(ta.users).where(u.name == name)).first()
        now = self.clock()
        until = utc(row.locked_until) if row is not None else None
        if row is not None and (row.disabled or (until is not None and until > now)):
            why = "disabled" if row.disabled else "locked"
            self.audit(name, "login", outcome="denied", address=address, detail={"why": why})
            raise AuthError(401, "account locked", {"until": iso(until) if until else None})
        ok = self._verify(row.password_hash if row is not None else None, password)
        if row is None or not ok:
            why = "unknown user" if row is None else "wrong password"
            locked_until = self._failed(name) if row is not None else None
            detail: dict[str, Any] = {"why": why}
            if locked_until is not None:
                detail["locked_until"] = iso(locked_until)
            self.audit(shown, "login", outcome="denied", address=address, detail=detail)
            if locked_until is not None:
                raise AuthError(401, "account locked", {"until": iso(locked_until)})
            raise AuthError(401, "bad credentials", None)
        session_id = secrets.token_urlsafe(32)
        expires = now + timedelta(seconds=self.settings.session_ttl_s)
        new_hash = self.hasher.hash(password) if self._needs_rehash(row.password_hash) else None
        with write_tx(self.store) as conn:
            values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
            if new_hash:
                values["password_hash"] = new_hash
            still = conn.execute(
                ta.users.update()
                .where(u.name == name, u.disabled == sa.false())
                .where(sa.or_(u.locked_until.is_(None), u.locked_until <= now))
                .values(**values)
                .returning(u.name)
            ).first()
            if still is None:  # locked while the password was being checked
                raise AuthError(401, "account locked", None)
            s = ta.login_sessions.c
            conn.execute(ta.login_sessions.delete().where(s.expires_at < now))
            conn.execute(
                ta.login_sessions.insert().values(
                    id_hash=_sha256(session_id),
                    user=name,
                    created_at=now,
                    expires_at=expires,
                    address=address[:200],
                )
            )
            p = self._principal_of_user(row)
            self.audit(p, "login", target=name, address=address, conn=conn)
        return Login(session_id, p, expires)

    def _verify(self, pw_hash: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(pw_hash or self._dummy_hash, password) and pw_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def _needs_rehash(self, pw_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(pw_hash)
        except InvalidHashError:
            return False

    def _failed(self, name: str) -> datetime | None:
        """Count a wrong password; the time the user is locked until when this one was the
        last allowed, else None."""
        u = ta.users.c
        now = self.clock()
        with write_tx(self.store) as conn:
            n = conn.execute(
                ta.users.update()
                .where(u.name == name)
                .values(failed_logins=u.failed_logins + 1)
                .returning(u.failed_logins)
            ).scalar()
            if n is None or n < self.settings.max_failures:
                return None
            until = now + timedelta(seconds=self.settings.lockout_s)
            conn.execute(
                ta.users.update().where(u.name == name).values(failed_logins=0, locked_until=until)
            )
        return until

    def logout(self, session_id: str, address: str = "-") -> None:
        s = ta.login_sessions.c
        with write_tx(self.store) as conn:
            user = conn.execute(
                ta.login_sessions.delete().where(s.id_hash == _sha256(session_id)).returning(s.user)
            ).scalar()
            if user is not None:
                self.audit(user, "logout", target=user, address=address, conn=conn)

    def session_principal(self, session_id: str) -> Principal | None:
        """The user of a live session, as they are now (role and scope read afresh)."""
        s, u = ta.login_sessions.c, ta.users.c
        with read_tx(self.store) as conn:
            r = conn.execute(
                sa.select(ta.users, s.expires_at)
                .join_from(ta.login_sessions, ta.users, s.user == u.name)
                .where(s.id_hash == _sha256(session_id))
            ).first()
        if r is None or r.disabled or utc(r.expires_at) <= self.clock():  # type: ignore[operator]
            return None
        return self._principal_of_user(r)

    # -- API tokens -----------------------------------------------------------------------------
    def add_token(
        self,
        name: str,
        role: str,
        *,
        cabinets: Iterable[str] = (),
        routes: Iterable[str] = (),
        by: Principal,
    ) -> str:
        """A new token, returned once (only its hash is kept). A revoked token's name may be
        given to a new one; a live token's may not. The caller audits it."""
        check_name(name, "token name")
        cabs, rts = _scope_list(cabinets, "cabinet"), _scope_list(routes, "route")
        _check_role_scope(role, cabs, rts)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        k = ta.api_tokens.c
        values = {
            "name": name,
            "role": role,
            "cabinets": dumps(list(cabs)),
            "routes": dumps(list(rts)),
            "token_hash": _sha256(token),
            "created_at": self.clock(),
            "created_by": by.name,
            "revoked_at": None,
        }
        ins = insert(self.store, ta.api_tokens).values(**values)
        with write_tx(self.store) as conn:
            self._known_cabinets(conn, cabs)
            got = conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[k.name],
                    set_={key: ins.excluded[key] for key in values if key != "name"},
                    where=k.revoked_at.is_not(None),
                ).returning(k.name)
            ).first()
            if got is None:
                raise AuthError(409, "token exists", f"{name} (revoke it first)")
        return token

    def tokens(self) -> list[dict[str, Any]]:
        with read_tx(self.store) as conn:
            got = conn.execute(sa.select(ta.api_tokens).order_by(ta.api_tokens.c.name)).all()
        return [
            {
                "name": r.name,
                "role": r.role,
                "cabinets": json.loads(r.cabinets),
                "routes": json.loads(r.routes),
                "created_at": iso(r.created_at),
                "created_by": r.created_by,
                "revoked_at": iso(r.revoked_at),
            }
            for r in got
        ]

    def revoke_token(self, name: str) -> None:
        k = ta.api_tokens.c
        with write_tx(self.store) as conn:
            got = conn.execute(
                ta.api_tokens.update()
                .where(k.name == name, k.revoked_at.is_(None))
                .values(revoked_at=self.clock())
                .returning(k.name)
            ).first()
            if got is None:
                known = conn.execute(sa.select(k.name).where(k.name == name)).first()
                raise AuthError(
                    409 if known else 404, "already revoked" if known else "unknown token", name
                )

    def token_principal(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        k = ta.api_tokens.c
        with read_tx(self.store) as conn:
            r = conn.execute(sa.select(ta.api_tokens).where(k.token_hash == _sha256(token))).first()
        if r is None or r.revoked_at is not None:
            return None
        return Principal(
            f"token:{r.name}",
            r.role,
            frozenset(json.loads(r.cabinets)),
            frozenset(json.loads(r.routes)),
        )
