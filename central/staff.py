"""Staff card accounts: the registry of staff cards, and the ``accounts`` list each cabinet gets.

Rules:
- A card's UID is never stored in clear: it is sealed under the master key
  (``central.keyring``, purpose ``card-uid:<card id>``). Finding a card by its UID opens every
  sealed UID (AES-GCM: a few microseconds each), so nothing in the database can be matched
  against a guessed UID without the master key.
- UIDs are compared as the contract hashes them: stripped, in upper case.
- The ``accounts`` list a cabinet gets names each card by ``kiosk.signing.card_account(cabinet
  key, UID)`` (integration.md, "Card numbers never leave the cabinet"): the full list each time.
  Every account sent down is remembered with its card (``staff_card_accounts``), so a
  statement names the person behind a sale after a key rotation too.
- An import is checked whole before anything is written (a bad line: nothing changes), and
  runs in one transaction. Cards are never deleted: blocked.
"""

from __future__ import annotations

import csv
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from central.keyring import Keyring, KeyringError
from central.schema_staff import staff_card_accounts, staff_cards
from kiosk import contract, signing

if TYPE_CHECKING:
    from central.store import Store

STATUSES = ("active", "blocked")
REQUIRED_COLUMNS = ("card", "name", "offline_limit_fen", "status")  # as `kiosk accounts import`
OPTIONAL_COLUMNS = ("employee_no", "employer", "department")
NAME_MAX = 100  # the contract's limit on an account's name
TEXT_MAX = 100
_UID = re.compile(r"[0-9A-Z:_-]{1,64}")  # what card readers print: hex, decimal, with separators


class StaffError(ValueError):
    """Bad input (a CSV line, an unknown card); the message is one line for the operator."""


@dataclass(frozen=True)
class StaffCard:
    id: str
    name: str
    status: str
    offline_limit_fen: int | None
    employee_no: str | None = None
    employer: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class CardRow:
    """One line of an import file (``uid`` normalised)."""

    line: int
    uid: str
    name: str
    status: str
    offline_limit_fen: int | None
    extra: dict[str, str | None]  # the optional columns the file has (None: blank)


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int


def purpose(card_id: str) -> str:
    return f"card-uid:{card_id}"


def normalise_uid(text: str) -> str:
    """A card UID as the contract hashes it (``signing.card_account``): stripped, upper case."""
    return text.strip().upper()


def masked(uid: str) -> str:
    """A UID for a listing: its last four characters."""
    return "****" + uid[-4:]


# -- the database -----------------------------------------------------------------------------
@contextmanager
def _tx(store: Store, write: bool = False) -> Iterator[Connection]:
    with store.engine.connect() as conn:
        if write:  # SQLite: BEGIN IMMEDIATE (central.store), the writer waits, never fails late
            conn.execution_options(kiosk_write=True)
        with conn.begin():
            if write and store.postgres:
                # One registry writer at a time: an import reads every card to match UIDs, and
                # two imports of one new card must not both add it.
                conn.execute(sa.text("LOCK TABLE staff_cards IN SHARE ROW EXCLUSIVE MODE"))
            yield conn


def _insert(store: Store, table: sa.Table) -> Any:
    return (postgresql.insert if store.postgres else sqlite.insert)(table)


def _card(r: Any) -> StaffCard:
    return StaffCard(
        id=r.id,
        name=r.name,
        status=r.status,
        offline_limit_fen=None if r.offline_limit_fen is None else int(r.offline_limit_fen),
        employee_no=r.employee_no,
        employer=r.employer,
        department=r.department,
    )


def _all(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(staff_cards).order_by(staff_cards.c.id)))


def _open(keyring: Keyring, r: Any) -> str:
    return keyring.open(r.uid_sealed, purpose(r.id)).decode("utf-8")


def cards(store: Store) -> list[StaffCard]:
    """Every card, without UIDs (no master key needed)."""
    with _tx(store) as conn:
        return [_card(r) for r in _all(conn)]


def opened(store: Store, keyring: Keyring) -> list[tuple[StaffCard, str]]:
    """Every card with its UID; ``KeyringError`` when the master key is not the one."""
    with _tx(store) as conn:
        got = _all(conn)
    return [(_card(r), _open(keyring, r)) for r in got]


def sealed_samples(store: Store, most: int = 3) -> list[tuple[str, str]]:
    """A few sealed UIDs (text, purpose): a master key is checked on them before use."""
    c = staff_cards.c
    with _tx(store) as conn:
        got = conn.execute(sa.select(c.id, c.uid_sealed).order_by(c.id).limit(most)).all()
    return [(sealed, purpose(cid)) for cid, sealed in got]


# -- import -----------------------------------------------------------------------------------
def _limit(text: str, where: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > contract.OFFLINE_LIMIT_MAX_FEN:
        raise StaffError(
            f"{where}: offline_limit_fen is whole fen, 0..{contract.OFFLINE_LIMIT_MAX_FEN}"
        )
    return int(text)


def parse_csv(path: str | Path) -> list[CardRow]:
    """The lines of a card file (``card,name,offline_limit_fen,status`` as the cabinet's
    ``kiosk accounts import``, optionally ``employee_no,employer,department``); UTF-8, with or
    without a BOM. ``StaffError`` naming the first bad line."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            fields = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = fields
            missing = [c for c in REQUIRED_COLUMNS if c not in fields]
            if missing:
                raise StaffError(f"{p}: missing columns {', '.join(missing)}")
            extra_cols = [c for c in OPTIONAL_COLUMNS if c in fields]
            out: list[CardRow] = []
            seen: dict[str, int] = {}
            for i, r in enumerate(reader, 2):
                where = f"{p}: line {i}"
                if None in r:  # more cells than columns
                    raise StaffError(f"{where}: more cells than columns")
                uid = normalise_uid(r["card"] or "")
                if not _UID.fullmatch(uid):
                    raise StaffError(f"{where}: card is the UID as the reader prints it (1..64)")
                if uid in seen:
                    raise StaffError(f"{where}: card listed twice (first on line {seen[uid]})")
                seen[uid] = i
                name = (r["name"] or "").strip()
                if len(name) > NAME_MAX:
                    raise StaffError(f"{where}: name longer than {NAME_MAX} characters")
                status = (r["status"] or "").strip() or "active"
                if status not in STATUSES:
                    raise StaffError(f"{where}: status is active or blocked")
                extra: dict[str, str | None] = {}
                for c in extra_cols:
                    v = (r[c] or "").strip()
                    if len(v) > TEXT_MAX:
                        raise StaffError(f"{where}: {c} longer than {TEXT_MAX} characters")
                    extra[c] = v or None
                out.append(
                    CardRow(
                        i, uid, name, status, _limit(r["offline_limit_fen"] or "", where), extra
                    )
                )
    except (OSError, UnicodeDecodeError) as e:
        raise StaffError(f"{p}: cannot read: {e}") from None
    except csv.Error as e:
        raise StaffError(f"{p}: not CSV: {e}") from None
    return out


def import_rows(
    store: Store, keyring: Keyring, rows: Sequence[CardRow], now: datetime | None = None
) -> ImportResult:
    """Add the cards not known yet, update the ones known (matched by UID), in one transaction."""
    now = now or datetime.now(UTC)
    c = staff_cards.c
    added = updated = 0
    with _tx(store, write=True) as conn:
        # The master key is checked on the cards already here before anything is written.
        by_uid = {_open(keyring, r): r.id for r in _all(conn)}
        for row in rows:
            values: dict[str, Any] = {
                "name": row.name,
                "status": row.status,
                "offline_limit_fen": row.offline_limit_fen,
                "updated_at": now,
                **row.extra,
            }
            known = by_uid.get(row.uid)
            if known is not None:
                conn.execute(staff_cards.update().where(c.id == known).values(**values))
                updated += 1
                continue
            card_id = secrets.token_hex(6)
            conn.execute(
                staff_cards.insert().values(
                    id=card_id,
                    uid_sealed=keyring.seal(row.uid.encode("utf-8"), purpose(card_id)),
                    created_at=now,
                    **values,
                )
            )
            by_uid[row.uid] = card_id
            added += 1
    return ImportResult(added, updated)


def import_csv(
    store: Store, keyring: Keyring, path: str | Path, now: datetime | None = None
) -> ImportResult:
    """``kiosk central staff import FILE``: the whole file, or nothing (``StaffError``)."""
    return import_rows(store, keyring, parse_csv(path), now)


# -- one card ---------------------------------------------------------------------------------
def find(store: Store, keyring: Keyring | None, ref: str) -> tuple[StaffCard, str | None]:
    """A card by its id, or by its UID (needs the master key); with its UID when opened.
    ``StaffError`` when there is none."""
    with _tx(store) as conn:
        got = _all(conn)
    for r in got:
        if r.id == ref.strip().lower():
            return _card(r), (_open(keyring, r) if keyring else None)
    if keyring is not None:
        uid = normalise_uid(ref)
        for r in got:
            if _open(keyring, r) == uid:
                return _card(r), uid
    raise StaffError(f"no staff card {ref!r} (give its id from `staff list`, or its UID)")


def set_status(
    store: Store, keyring: Keyring | None, ref: str, status: str, now: datetime | None = None
) -> tuple[StaffCard, str | None]:
    """Block or unblock a card; returns it as it is now (with its UID when opened)."""
    if status not in STATUSES:
        raise StaffError("status is active or blocked")
    card, uid = find(store, keyring, ref)
    with _tx(store, write=True) as conn:
        conn.execute(
            staff_cards.update()
            .where(staff_cards.c.id == card.id)
            .values(status=status, updated_at=now or datetime.now(UTC))
        )
    return replace(card, status=status), uid


# -- down to the cabinets ---------------------------------------------------------------------
def _entry(card: StaffCard, account: str) -> dict[str, Any]:
    e: dict[str, Any] = {"account": account, "name": card.name, "status": card.status}
    if card.offline_limit_fen is not None:  # omitted: the cabinet's card_offline_limit_fen
        e["offline_limit_fen"] = card.offline_limit_fen
    return e


def accounts_payload(
    store: Store,
    keyring: Keyring,
    cabinet: str,
    cabinet_key: bytes | None = None,
    cards_with_uids: Sequence[tuple[StaffCard, str]] | None = None,
) -> list[dict[str, Any]]:
    """The contract's ``accounts`` list for one cabinet: every card, named by its account
    under ``cabinet_key`` (default: the cabinet's live key). ``cards_with_uids``: the cards
    already opened (``opened``), when building lists for many cabinets."""
    key = cabinet_key if cabinet_key is not None else store.key(cabinet)
    if key is None:
        raise StaffError(f"no cabinet {cabinet!r} in service")
    pairs = cards_with_uids if cards_with_uids is not None else opened(store, keyring)
    return [_entry(card, signing.card_account(key, uid)) for card, uid in pairs]


def remember(store: Store, cabinet: str, accounts: dict[str, str], now: datetime) -> None:
    """Keep which card each account sent to ``cabinet`` is (account -> card id)."""
    if not accounts:
        return
    s = staff_card_accounts.c
    with _tx(store, write=True) as conn:
        conn.execute(
            _insert(store, staff_card_accounts).on_conflict_do_nothing(
                index_elements=[s.cabinet, s.account]
            ),
            [
                {"cabinet": cabinet, "account": a, "card_id": cid, "sent_at": now}
                for a, cid in accounts.items()
            ],
        )


def _cabinet_keys(store: Store, cabinets: Sequence[str] | None) -> dict[str, bytes]:
    keys = store.keys()  # every cabinet in service and its live key
    if cabinets is None:
        return keys
    missing = [c for c in cabinets if c not in keys]
    if missing:
        raise StaffError(f"no cabinet in service named {', '.join(missing)}")
    return {c: keys[c] for c in cabinets}


def publish_accounts(
    store: Store,
    keyring: Keyring,
    cabinets: Sequence[str] | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Sign and keep a new ``accounts`` version for each cabinet in service (or those named):
    the cabinets fetch it (``GET /accounts``). Returns each cabinet's new version."""
    now = now or datetime.now(UTC)
    pairs = opened(store, keyring)
    out: dict[str, int] = {}
    for cab, key in sorted(_cabinet_keys(store, cabinets).items()):
        payload = accounts_payload(store, keyring, cab, key, pairs)
        remember(
            store, cab, {e["account"]: c.id for e, (c, _) in zip(payload, pairs, strict=True)}, now
        )
        out[cab] = store.put_downlink(cab, "accounts", payload)["version"]
    return out


def send_status(
    store: Store, card: StaffCard, uid: str, cabinets: Sequence[str] | None = None
) -> list[str]:
    """Queue ``block_card`` / ``unblock_card`` (as ``card.status`` says) for every cabinet in
    service, so the change takes effect at once rather than at the next accounts poll.
    Returns the cabinets."""
    cmd = "block_card" if card.status == "blocked" else "unblock_card"
    now = datetime.now(UTC)
    done = []
    for cab, key in sorted(_cabinet_keys(store, cabinets).items()):
        account = signing.card_account(key, uid)
        remember(store, cab, {account: card.id}, now)
        store.add_command(cab, cmd, {"account": account})
        done.append(cab)
    return done


def owners(
    store: Store, keyring: Keyring | None, cabinets: Sequence[str]
) -> dict[tuple[str, str], StaffCard]:
    """(cabinet, account) -> its card, for the accounts of ``cabinets``: every account ever
    sent down, and, with the master key, each card hashed with each cabinet's keys (live, and
    the one before during a rotation's grace period)."""
    with _tx(store) as conn:
        got = _all(conn)
        sent = conn.execute(
            sa.select(
                staff_card_accounts.c.cabinet,
                staff_card_accounts.c.account,
                staff_card_accounts.c.card_id,
            ).where(staff_card_accounts.c.cabinet.in_(list(cabinets)))
        ).all()
    by_id = {r.id: _card(r) for r in got}
    out = {(cab, acc): by_id[cid] for cab, acc, cid in sent if cid in by_id}
    if keyring is None or not got:
        return out
    uids = [(by_id[r.id], _open(keyring, r)) for r in got]
    for cab in cabinets:
        try:
            keys = store.key_set(cab)
        except KeyringError:  # a sealed cabinet key and a Store without the keyring
            keys = None
        if keys is None:  # retired, or a stranger: only what was sent down names its cards
            continue
        for key in filter(None, (keys.live, keys.previous)):
            for card, uid in uids:
                out.setdefault((cab, signing.card_account(key, uid)), card)
    return out
