"""The Store: every read and write of the centre's database, on SQLite or PostgreSQL 15.

Each method is one transaction, committed before it returns (an ack promises durability: SQLite
runs with synchronous=FULL, PostgreSQL with synchronous_commit on). The schema is
``central/schema.py``; ``central/migrate.py`` creates it (the Store does not migrate).

A cabinet's key is never in the database in clear once it is provisioned: sealed under the
master key (``central.keyring``; ``self.keyring`` opens it), with the key before a rotation
kept until its grace period ends. Keys given on the command line are held in memory
(``hold_keys``). A retired cabinet has no key: every check refuses it like a stranger.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects import postgresql, sqlite

from central import ingest_rows as rows
from central import schema as t
from central.keyring import Keyring, KeyringError
from kiosk import clock, contract, report, signing, wire


def _row(x: Any) -> dict[str, Any]:
    """A row dataclass's fields, shallow: ``asdict``'s deep copy cost a third of ingest time
    (4,000 records: 3.3 s against 2.2 s); the row classes hold plain values only."""
    return {f.name: getattr(x, f.name) for f in fields(x)}


# What the centre may sign and send down, checked as every cabinet checks it.
DOWN_CHECKS = {
    "catalog": contract.check_catalog,
    "config": contract.check_config,
    "accounts": contract.check_accounts,
}

if TYPE_CHECKING:
    from kiosk.contract import UpBatch

SQLITE_BUSY_MS = 10_000


def _dumps(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def is_postgres(db: str | Path) -> bool:
    return isinstance(db, str) and db.split(":", 1)[0].split("+", 1)[0] in (
        "postgresql",
        "postgres",
    )


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _sqlite_local_day(stored: str | None, tz: str) -> str | None:
    """SQL function kiosk_day(utc DateTime text, zone) -> 'YYYY-MM-DD' there (SQLite has no
    time zones; PostgreSQL uses timezone())."""
    if stored is None:
        return None
    d = datetime.fromisoformat(stored).replace(tzinfo=UTC)
    return d.astimezone(_zone(tz)).date().isoformat()


def engine_for(db: str | Path, pool_size: int = 5) -> Engine:
    """An Engine for a path or ``sqlite:///...`` (SQLite, WAL) or ``postgresql://...``
    (psycopg 3, pooled, connections checked before use so a restarted server is survived)."""
    if is_postgres(db):
        url = sa.make_url(str(db))
        url = url.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,  # a connection the server dropped (restart) is replaced
            pool_recycle=3600,
            connect_args={"connect_timeout": 10},
        )
    text = str(db)
    url = (
        sa.make_url(text)
        if text.startswith("sqlite:")
        else sa.URL.create("sqlite", database=str(Path(text)))
    )
    engine = sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    _sqlite_hooks(engine)
    return engine


def _sqlite_hooks(engine: Engine) -> None:
    # pysqlite's own transaction handling is turned off and SQLAlchemy's "begin" event emits
    # BEGIN itself (the recipe in SQLAlchemy's pysqlite docs): BEGIN IMMEDIATE for writes, so
    # a writer takes the lock up front and waits busy_timeout instead of failing on upgrade.
    @event.listens_for(engine, "connect")
    def _connect(dbapi: sqlite3.Connection, _record: Any) -> None:
        dbapi.isolation_level = None
        cur = dbapi.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # an ack promises the records survive power loss
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
        dbapi.create_function("kiosk_day", 2, _sqlite_local_day, deterministic=True)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("kiosk_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@dataclass(frozen=True)
class BatchAnswer:
    batch: str
    stored: tuple[str, ...]
    rejected: tuple[wire.Rejected, ...]
    conflict: bool = False  # same (cabinet, batch) seen before with a different body digest
    # how many of ``stored`` were new to the database (metrics): 0 for a batch answered again;
    # not part of the answer, so an answer given again compares equal to the first
    fresh: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "stored": list(self.stored),
            "rejected": [{"id": r.id, "why": r.why} for r in self.rejected],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchAnswer:
        return cls(
            data["batch"],
            tuple(data["stored"]),
            tuple(wire.Rejected(r["id"], r["why"]) for r in data["rejected"]),
        )


@dataclass(frozen=True)
class Stats:
    records: int
    sales: int
    duplicates: int


def _now() -> datetime:
    return datetime.now(UTC)


def key_purpose(cabinet: str) -> str:
    """What a cabinet's sealed key is bound to (``central.keyring``'s associated data)."""
    return f"cabinet-key:{cabinet}"


@dataclass(frozen=True)
class CabinetKeys:
    """What a cabinet's signatures are checked with: its live key and, during a rotation's
    grace period (until ``previous_until``), the one before."""

    live: bytes = field(repr=False)
    previous: bytes | None = field(default=None, repr=False)
    previous_until: datetime | None = None

    def accepted(self, at: datetime | None = None) -> tuple[bytes, ...]:
        """The live key first, then the previous one while its grace period lasts."""
        if self.previous is None or self.previous_until is None:
            return (self.live,)
        return (self.live, self.previous) if (at or _now()) < self.previous_until else (self.live,)


class Store:
    def __init__(self, db: str | Path, pool_size: int = 5, keyring: Keyring | None = None):
        """``keyring``: opens the cabinets' sealed keys (the service sets it once it has
        checked the master key)."""
        self.db = db
        self.keyring = keyring
        self._held: dict[str, bytes] = {}  # hold_keys: never written
        self.engine = engine_for(db, pool_size)
        self.postgres = self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(kiosk_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table: sa.Table) -> Any:
        # ON CONFLICT ... DO NOTHING / RETURNING are dialect constructs (both dialects have them)
        return (postgresql.insert if self.postgres else sqlite.insert)(table)

    def _day(self, col: Any, tz: str) -> Any:
        """SQL: the calendar day in ``tz`` of a UTC DateTime column."""
        # The zone is inlined (a checked zone name): with a bound parameter PostgreSQL could
        # not tell the SELECT's expression and the GROUP BY's apart.
        zone = sa.literal(_zone(tz).key, literal_execute=True)
        if self.postgres:
            return sa.cast(sa.func.timezone(zone, col), sa.Date)
        return sa.func.kiosk_day(col, zone)

    def healthy(self) -> bool:
        try:
            with self._read() as conn:
                return conn.execute(sa.text("SELECT 1")).scalar() == 1
        except sa.exc.SQLAlchemyError:
            return False

    # -- cabinets and their keys ------------------------------------------------------------
    # A cabinet's key is, in this order: held in this Store's memory (``hold_keys``: given on
    # the command line, never written), sealed under the master key (``provision_cabinet``;
    # opened with ``self.keyring``), or in clear in ``key_hex`` (``add_cabinet``: tests, and
    # databases made before cabinets were provisioned). A retired cabinet has none.
    def _key_columns(self) -> tuple[Any, ...]:
        c = t.cabinets.c
        return (c.id, c.key_hex, c.key_sealed, c.prev_key_sealed, c.prev_key_until, c.retired_at)

    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise KeyringError(
                "a cabinet's key is sealed under the master key: give it (--master-key FILE)"
            )
        return self.keyring

    def _keys_of(self, r: Any) -> CabinetKeys | None:
        if r.retired_at is not None:
            return None
        held = self._held.get(r.id)
        if held is not None:
            return CabinetKeys(held)
        if r.key_sealed is not None:
            ring, purpose = self._ring(), key_purpose(r.id)
            live = ring.open(r.key_sealed, purpose)
            if r.prev_key_sealed is None or r.prev_key_until is None:
                return CabinetKeys(live)
            return CabinetKeys(
                live, ring.open(r.prev_key_sealed, purpose), clock.parse(r.prev_key_until)
            )
        if r.key_hex is not None:
            return CabinetKeys(bytes.fromhex(r.key_hex))
        return None

    def add_cabinet(self, cabinet: str, key: bytes, name: str = "", location: str = "") -> None:
        """A cabinet with its key in clear in the database (tests; a centre that provisions
        cabinets uses ``provision_cabinet``, the service's ``--cabinet`` uses ``hold_keys``)."""
        ins = self._insert(t.cabinets).values(
            id=cabinet, key_hex=key.hex(), name=name, location=location
        )
        c = t.cabinets.c
        ins = ins.on_conflict_do_update(
            index_elements=[c.id],
            set_={
                "key_hex": ins.excluded.key_hex,
                "name": sa.func.coalesce(sa.func.nullif(ins.excluded.name, ""), c.name),
                "location": sa.func.coalesce(sa.func.nullif(ins.excluded.location, ""), c.location),
            },
        )
        with self._write() as conn:
            conn.execute(ins)

    def hold_keys(self, keys: dict[str, bytes]) -> None:
        """Keys given on the command line (``--cabinet ID=KEYFILE``: tests, ``--simulate``):
        kept in this Store's memory only. The cabinets' rows are made (records, presence and
        reports name them), without a key. ``ValueError`` for a cabinet that is provisioned
        (its key is sealed in the database) or retired."""
        c = t.cabinets.c
        with self._write() as conn:
            for cabinet, key in keys.items():
                if len(key) != 32:
                    raise ValueError(f"cabinet {cabinet}: a key is 32 bytes")
                had = conn.execute(
                    sa.select(c.key_sealed, c.retired_at).where(c.id == cabinet)
                ).first()
                if had is not None and had.retired_at is not None:
                    raise ValueError(f"cabinet {cabinet} is retired: it has no key any more")
                if had is not None and had.key_sealed is not None:
                    raise ValueError(
                        f"cabinet {cabinet} is provisioned (its key is sealed in the database):"
                        f" drop --cabinet {cabinet}"
                    )
                if had is None:
                    conn.execute(t.cabinets.insert().values(id=cabinet))
        self._held.update(keys)

    def provision_cabinet(
        self, cabinet: str, key: bytes, name: str = "", location: str = "", route: str | None = None
    ) -> None:
        """A new cabinet, its key sealed under the master key. ``ValueError`` when the id is
        taken (a cabinet in service, or a retired one: its records stay under that id)."""
        sealed = self._ring().seal(key, key_purpose(cabinet))
        c = t.cabinets.c
        with self._write() as conn:
            had = conn.execute(
                sa.select(*self._key_columns()).where(c.id == cabinet).with_for_update()
            ).first()
            values = {"key_sealed": sealed, "name": name, "location": location, "route": route}
            if had is None:
                conn.execute(t.cabinets.insert().values(id=cabinet, **values))
                return
            if had.retired_at is not None:
                raise ValueError(
                    f"cabinet {cabinet} was retired ({had.retired_at}); its records stay under"
                    " that id: give the new cabinet another"
                )
            if had.key_sealed is not None or had.key_hex is not None:
                raise ValueError(
                    f"cabinet {cabinet} is already provisioned"
                    f" (`kiosk central cabinet rotate-key {cabinet}` gives it a new key)"
                )
            # A row without a key: made for a cabinet given with --cabinet, or by a test.
            conn.execute(t.cabinets.update().where(c.id == cabinet).values(**values))

    def rotate_key(
        self, cabinet: str, key: bytes, grace_s: float, now: datetime | None = None
    ) -> datetime | None:
        """A new key for ``cabinet``; the one it had is still accepted for ``grace_s``
        seconds (0: not at all). Returns when the grace period ends (None for none).
        ``KeyError`` for a cabinet not in service, ``ValueError`` for one whose key is not in
        the database (given with --cabinet)."""
        if grace_s < 0:
            raise ValueError("the grace period is not negative")
        ring, purpose = self._ring(), key_purpose(cabinet)
        c = t.cabinets.c
        until = (now or _now()) + timedelta(seconds=grace_s) if grace_s > 0 else None
        with self._write() as conn:
            had = conn.execute(
                sa.select(*self._key_columns()).where(c.id == cabinet).with_for_update()
            ).first()
            if had is None or had.retired_at is not None:
                raise KeyError(f"no cabinet {cabinet!r} in service")
            if had.key_sealed is not None:
                ring.open(had.key_sealed, purpose)  # a key that does not open is not kept on
                previous = had.key_sealed
            elif had.key_hex is not None:  # kept in clear until now: sealed from here on
                previous = ring.seal(bytes.fromhex(had.key_hex), purpose)
            else:
                raise ValueError(
                    f"cabinet {cabinet} has no key in the database (given with --cabinet?)"
                )
            conn.execute(
                t.cabinets.update()
                .where(c.id == cabinet)
                .values(
                    key_sealed=ring.seal(key, purpose),
                    key_hex=None,
                    prev_key_sealed=previous if until else None,
                    prev_key_until=clock.iso(until) if until else None,
                )
            )
        return until

    def retire_cabinet(self, cabinet: str, now: datetime | None = None) -> str:
        """No key any more (refused like a stranger), its records and figures kept; returns
        when. ``KeyError`` for an unknown cabinet, ``ValueError`` for one already retired."""
        c = t.cabinets.c
        at = clock.iso(now or _now())
        with self._write() as conn:
            had = conn.execute(
                sa.select(c.retired_at).where(c.id == cabinet).with_for_update()
            ).first()
            if had is None:
                raise KeyError(f"no cabinet {cabinet!r}")
            if had.retired_at is not None:
                raise ValueError(f"cabinet {cabinet} was retired already ({had.retired_at})")
            conn.execute(
                t.cabinets.update()
                .where(c.id == cabinet)
                .values(
                    retired_at=at,
                    key_hex=None,
                    key_sealed=None,
                    prev_key_sealed=None,
                    prev_key_until=None,
                    online=False,
                )
            )
        self._held.pop(cabinet, None)
        return at

    def key(self, cabinet: str) -> bytes | None:
        """A cabinet's live key (what the centre signs with), or None for a stranger or a
        retired cabinet."""
        keys = self.key_set(cabinet)
        return keys.live if keys else None

    def key_set(self, cabinet: str) -> CabinetKeys | None:
        with self._read() as conn:
            r = conn.execute(
                sa.select(*self._key_columns()).where(t.cabinets.c.id == cabinet)
            ).first()
        return self._keys_of(r) if r is not None else None

    def verify_keys(self, cabinet: str, at: datetime | None = None) -> tuple[bytes, ...]:
        """The keys a cabinet's signature is checked with (what each HTTP request looks up):
        its live key, and during a rotation's grace period the one before; () for a stranger
        or a retired cabinet. An answer is signed with the key its request was signed with."""
        keys = self.key_set(cabinet)
        return keys.accepted(at) if keys else ()

    def key_sets(self) -> dict[str, CabinetKeys]:
        """Every cabinet in service with its keys (what an ingest worker keeps at hand)."""
        with self._read() as conn:
            got = conn.execute(sa.select(*self._key_columns())).all()
        out = {}
        for r in got:
            keys = self._keys_of(r)
            if keys is not None:
                out[r.id] = keys
        return out

    def keys(self) -> dict[str, bytes]:
        """Every cabinet in service and its live key."""
        return {cab: k.live for cab, k in self.key_sets().items()}

    def provisioned(self) -> list[str]:
        """The cabinets in service whose key is sealed here: the broker's logins."""
        c = t.cabinets.c
        with self._read() as conn:
            got = conn.execute(
                sa.select(c.id)
                .where(c.key_sealed.is_not(None), c.retired_at.is_(None))
                .order_by(c.id)
            ).scalars()
            return list(got)

    def sealed_samples(self, most: int = 3) -> list[tuple[str, str]]:
        """A few sealed keys (text, purpose): the service opens them at start to find a wrong
        master key before any cabinet does."""
        c = t.cabinets.c
        with self._read() as conn:
            got = conn.execute(
                sa.select(c.id, c.key_sealed)
                .where(c.key_sealed.is_not(None))
                .order_by(c.id)
                .limit(most)
            ).all()
        return [(sealed, key_purpose(cab)) for cab, sealed in got]

    @staticmethod
    def _cabinet_dict(r: Any) -> dict[str, Any]:
        return {
            "id": r.id,
            "name": r.name,
            "location": r.location,
            "route": r.route,
            "retired_at": r.retired_at,
            "last_contact": r.last_contact,
            "online": bool(r.online),
            "status_at": r.status_at,
            "version": r.version,
        }

    def _cabinet_query(self) -> Any:
        c = t.cabinets.c
        return sa.select(
            c.id,
            c.name,
            c.location,
            c.route,
            c.retired_at,
            c.last_contact,
            c.online,
            c.status_at,
            c.version,
        )

    def cabinets(self) -> list[dict[str, Any]]:
        """Every cabinet, retired ones too (``retired_at`` set)."""
        with self._read() as conn:
            got = conn.execute(self._cabinet_query().order_by(t.cabinets.c.id))
            return [self._cabinet_dict(r) for r in got]

    def cabinet(self, cabinet: str) -> dict[str, Any] | None:
        with self._read() as conn:
            r = conn.execute(self._cabinet_query().where(t.cabinets.c.id == cabinet)).first()
        return self._cabinet_dict(r) if r else None

    def touch(self, cabinet: str) -> None:
        with self._write() as conn:
            conn.execute(
                t.cabinets.update()
                .where(t.cabinets.c.id == cabinet)
                .values(last_contact=clock.now_iso())
            )

    def set_presence(self, cabinet: str, online: bool, at: str, version: str) -> None:
        """The cabinet's last status message (MQTT keeps them in order per topic: the last
        one wins; a will sent for a dead connection may carry an older ``at``)."""
        c = t.cabinets.c
        with self._write() as conn:
            conn.execute(
                t.cabinets.update()
                .where(c.id == cabinet)
                .values(
                    online=online,
                    status_at=at,
                    version=sa.func.coalesce(sa.func.nullif(version or "", ""), c.version),
                )
            )

    # -- records up -----------------------------------------------------------------------
    def store_batches(self, batches: Sequence[tuple[str, UpBatch, str]]) -> list[BatchAnswer]:
        """Store several decoded batches ``(cabinet, batch, body sha256 hex)`` in ONE
        transaction; one answer each, in order. Raises (nothing stored, nothing to ack) on a
        database error."""
        now = _now()
        stamp = clock.iso(now)
        with self._write() as conn:
            # Per cabinet, in one order: its row is locked until commit, so two transactions
            # for one cabinet (a sale and its adjustment in two batches) run one after the
            # other and each sees the other's rows; sorted, so two never wait on each other.
            for cab in sorted({b[0] for b in batches}):
                conn.execute(
                    t.cabinets.update().where(t.cabinets.c.id == cab).values(last_contact=stamp)
                )
            return [self._store_batch(conn, cab, b, digest, now) for cab, b, digest in batches]

    def _store_batch(
        self, conn: Connection, cabinet: str, batch: UpBatch, digest: str, now: datetime
    ) -> BatchAnswer:
        first: dict[str, Any] = {}  # id -> its first record here (an id twice is stored once)
        for r in batch.records:
            first.setdefault(r.id, r)
        # stored = fresh + already had: every well-formed id is safe here after commit
        answer = BatchAnswer(batch.batch, tuple(first), tuple(batch.rejected))
        b = t.batches.c
        # The batch row first: a second transaction with the same (cabinet, batch) waits here
        # for the first to commit, then reads its answer; nothing of a conflicting batch lands.
        claimed = conn.execute(
            self._insert(t.batches)
            .values(
                cabinet=cabinet,
                batch=batch.batch,
                digest=digest,
                answer=_dumps(answer.to_json()),
                records=len(batch.records),
                fresh=len(first),  # corrected below when some were stored before
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=[b.cabinet, b.batch])
            .returning(b.batch)
        ).first()
        if claimed is None:
            had = conn.execute(
                sa.select(b.digest, b.answer).where(b.cabinet == cabinet, b.batch == batch.batch)
            ).one()
            if had.digest != digest:
                return BatchAnswer(batch.batch, (), (), conflict=True)
            return BatchAnswer.from_json(json.loads(had.answer))
        fresh_ids: set[str] = set()
        if first:
            params = [
                {
                    "id": r.id,
                    "cabinet": cabinet,
                    "seq": r.seq,
                    "type": r.type,
                    "at": r.at,
                    "at_utc": rows.parse_time(r.at),
                    "body": _dumps(r.body),
                    "batch": batch.batch,
                    "received_at": now,
                }
                for r in first.values()
            ]
            # Every id stored once: the unique key decides, RETURNING names the fresh ones.
            ins = (
                self._insert(t.records)
                .on_conflict_do_nothing(index_elements=[t.records.c.id])
                .returning(t.records.c.id)
            )
            fresh_ids = set(conn.execute(ins, params).scalars())
        if len(fresh_ids) != len(first):
            conn.execute(
                t.batches.update()
                .where(b.cabinet == cabinet, b.batch == batch.batch)
                .values(fresh=len(fresh_ids))
            )
        fresh = [r for r in first.values() if r.id in fresh_ids]
        self._derive(conn, cabinet, fresh)
        return replace(answer, fresh=len(fresh))

    def _derive(self, conn: Connection, cabinet: str, fresh: Sequence[Any]) -> None:
        """Rows derived from freshly stored records: sales, lines, allotments, cabinet name."""
        sales: list[rows.SaleRow] = []
        lines: list[rows.SaleLineRow] = []
        aliases: dict[str, list[str]] = {}
        adjustments: list[rows.AdjustmentRow] = []
        for r in fresh:
            if r.type == "sale":
                s = rows.sale_row(r.id, cabinet, r.at, r.body)
                if s is not None:
                    sales.append(s)
                    lines += rows.sale_line_rows(s, r.body)
                    aliases[r.id] = rows.sale_aliases(r.id, r.body)
            elif r.type == "adjustment":
                a = rows.adjustment_row(r.id, cabinet, r.at, r.body)
                if a is not None:
                    adjustments.append(a)
            elif r.type == "telemetry":
                name, loc = r.body.get("name"), r.body.get("location")
                c = t.cabinets.c
                conn.execute(
                    t.cabinets.update()
                    .where(c.id == cabinet)
                    .values(
                        name=name if isinstance(name, str) else c.name,
                        location=loc if isinstance(loc, str) else c.location,
                    )
                )
        if sales:
            conn.execute(t.sales.insert(), [_row(s) for s in sales])
            if lines:
                conn.execute(t.sale_lines.insert(), [_row(ln) for ln in lines])
            al = t.sale_aliases.c
            conn.execute(
                self._insert(t.sale_aliases).on_conflict_do_nothing(
                    index_elements=[al.cabinet, al.alias]
                ),
                [
                    {"cabinet": cabinet, "alias": a, "sale_id": sid}
                    for sid, names in aliases.items()
                    for a in names
                ],
            )
        for a in adjustments:
            sale_id = conn.execute(
                sa.select(t.sale_aliases.c.sale_id).where(
                    t.sale_aliases.c.cabinet == cabinet, t.sale_aliases.c.alias == a.sale_ref
                )
            ).scalar()
            conn.execute(t.adjustments.insert().values(**_row(a), sale_id=None, allotted=False))
            if sale_id is not None:
                self._allot(conn, a, sale_id)
        if sales:  # adjustments that came before their sale
            ad, al = t.adjustments.c, t.sale_aliases.c
            waiting = conn.execute(
                sa.select(t.adjustments, al.sale_id.label("target"))
                .join_from(
                    t.adjustments,
                    t.sale_aliases,
                    sa.and_(al.cabinet == ad.cabinet, al.alias == ad.sale_ref),
                )
                .where(
                    ad.cabinet == cabinet,
                    ad.allotted == sa.false(),
                    al.sale_id.in_([s.record_id for s in sales]),
                )
                .order_by(ad.record_id)
            ).all()
            for w in waiting:
                a = rows.AdjustmentRow(
                    record_id=w.record_id,
                    cabinet=w.cabinet,
                    sale_ref=w.sale_ref,
                    amount_fen=w.amount_fen,
                    items=w.items,
                    reason=w.reason,
                    actor=w.actor,
                    at=rows.utc(w.at),
                )
                self._allot(conn, a, w.target)

    def _allot(self, conn: Connection, a: rows.AdjustmentRow, sale_id: str) -> None:
        sl = t.sale_lines.c
        got = conn.execute(
            sa.select(
                sl.sale_id,
                sl.line_no,
                sl.cabinet,
                sl.sku,
                sl.qty,
                sl.unit_price_fen,
                sl.amount_fen,
                sl.supplier,
                sl.cert_no,
                sl.closed_at,
            )
            .where(sl.sale_id == sale_id)
            .order_by(sl.line_no)
        ).all()
        lines = [rows.SaleLineRow(**r._asdict()) for r in got]
        out = rows.allot(a, sale_id, lines)
        if out:
            conn.execute(t.adjustment_lines.insert(), [_row(x) for x in out])
        conn.execute(
            t.adjustments.update()
            .where(t.adjustments.c.record_id == a.record_id)
            .values(sale_id=sale_id, allotted=True)
        )

    def stats(self) -> Stats:
        with self._read() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(t.records)).scalar()
            s = conn.execute(sa.select(sa.func.count()).select_from(t.sales)).scalar()
            d = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(t.batches.c.records - t.batches.c.fresh), 0))
            ).scalar()
        return Stats(int(n or 0), int(s or 0), int(d or 0))

    def records(self, cabinet: str | None = None, type: str | None = None) -> list[dict]:
        c = t.records.c
        q = sa.select(c.id, c.cabinet, c.seq, c.type, c.at, c.body)
        if cabinet:
            q = q.where(c.cabinet == cabinet)
        if type:
            q = q.where(c.type == type)
        with self._read() as conn:
            got = conn.execute(q.order_by(c.cabinet, c.seq, c.id)).all()
        return [
            {"id": i, "cabinet": cb, "seq": s, "type": ty, "at": a, "body": json.loads(b)}
            for i, cb, s, ty, a, b in got
        ]

    # -- downlinks ------------------------------------------------------------------------
    def _key(self, conn: Connection, cabinet: str, lock: bool = False) -> bytes:
        """The live key, to sign with; ``KeyError`` for a stranger or a retired cabinet."""
        q = sa.select(*self._key_columns()).where(t.cabinets.c.id == cabinet)
        r = conn.execute(q.with_for_update() if lock else q).first()
        keys = self._keys_of(r) if r is not None else None
        if keys is None:
            why = "retired" if r is not None and r.retired_at is not None else "unknown"
            raise KeyError(f"{why} cabinet {cabinet!r}")
        return keys.live

    def put_downlink(
        self, cabinet: str, kind: str, payload: Any, version: int | None = None
    ) -> dict:
        """Sign and keep a new version of ``kind`` (the next one when ``version`` is None);
        returns the signed message. ``ValueError`` when the contract refuses it: nothing is
        signed that every cabinet would refuse (``kiosk.contract.check_{kind}``)."""
        check = DOWN_CHECKS.get(kind)
        if check is None:
            raise ValueError(f"kind is one of {', '.join(DOWN_CHECKS)}")
        why = check(payload)
        if why:
            raise ValueError(f"{kind} refused: {why}")
        if kind == "catalog":  # a catalogue carries its own version (checked just above)
            if version is not None and version != payload["version"]:
                raise ValueError("the catalogue's own version differs from the message's")
            version = payload["version"]
        if version is not None and not (
            isinstance(version, int)
            and not isinstance(version, bool)
            and 1 <= version <= contract.VERSION_MAX
        ):
            raise ValueError(f"version {version!r} is not 1..2^53")
        d = t.downlinks.c
        with self._write() as conn:
            key = self._key(conn, cabinet, lock=True)  # one writer per cabinet picks versions
            if version is None:
                top = conn.execute(
                    sa.select(sa.func.max(d.version)).where(d.cabinet == cabinet, d.kind == kind)
                ).scalar()
                version = int(top or 0) + 1
            message = signing.sign_message(key, {"version": version, kind: payload})
            ins = self._insert(t.downlinks).values(
                cabinet=cabinet,
                kind=kind,
                version=version,
                message=_dumps(message),
                created_at=_now(),
            )
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[d.cabinet, d.kind, d.version],
                    set_={"message": ins.excluded.message, "created_at": ins.excluded.created_at},
                )
            )
        return message

    def latest_downlink(self, cabinet: str, kind: str, after: int = 0) -> dict | None:
        d = t.downlinks.c
        with self._read() as conn:
            m = conn.execute(
                sa.select(d.message)
                .where(d.cabinet == cabinet, d.kind == kind, d.version > after)
                .order_by(d.version.desc())
                .limit(1)
            ).scalar()
        return json.loads(m) if m else None

    def latest_catalog(self) -> dict | None:
        """The newest catalogue sent to any cabinet (for reports)."""
        d = t.downlinks.c
        with self._read() as conn:
            m = conn.execute(
                sa.select(d.message)
                .where(d.kind == "catalog")
                .order_by(d.version.desc(), d.created_at.desc())
                .limit(1)
            ).scalar()
        return json.loads(m)["catalog"] if m else None

    # -- commands -------------------------------------------------------------------------
    def _sign_command(self, cabinet: str, cmd: str, args: dict, ttl_s: float) -> dict:
        with self._read() as conn:
            key = self._key(conn, cabinet)
        return signing.sign_message(
            key,
            {
                "cmd_id": wire.uuid7(),
                "cmd": cmd,
                "args": args,
                "expires_at": wire.iso(time.time() + ttl_s),
            },
        )

    def add_command(self, cabinet: str, cmd: str, args: dict, ttl_s: float = 600) -> dict:
        message = self._sign_command(cabinet, cmd, args, ttl_s)
        self.add_signed_command(cabinet, message)
        return message

    def add_signed_command(self, cabinet: str, message: dict) -> None:
        """Queue a message as is (tests use this to send forged or expired commands)."""
        with self._write() as conn:
            conn.execute(
                t.commands.insert().values(
                    cmd_id=str(message.get("cmd_id", uuid.uuid4())),
                    cabinet=cabinet,
                    message=_dumps(message),
                    created_at=_now(),
                    published=False,
                )
            )

    def unpublished_commands(self) -> list[tuple[int, str, dict]]:
        c = t.commands.c
        with self._read() as conn:
            got = conn.execute(
                sa.select(c.seq, c.cabinet, c.message)
                .where(c.published == sa.false())
                .order_by(c.seq)
            ).all()
        return [(int(s), cab, json.loads(m)) for s, cab, m in got]

    def mark_published(self, seq: int) -> None:
        with self._write() as conn:
            conn.execute(t.commands.update().where(t.commands.c.seq == seq).values(published=True))

    def commands_after(self, cabinet: str, after: str | None) -> list[dict]:
        """Pending commands for HTTP polling: after ``after``, unanswered, not expired."""
        c, r = t.commands.c, t.records.c
        with self._read() as conn:
            start = 0
            if after:
                start = conn.execute(sa.select(c.seq).where(c.cmd_id == after)).scalar() or 0
            got = conn.execute(
                sa.select(c.message, c.created_at)
                .where(c.cabinet == cabinet, c.seq > start)
                .order_by(c.seq)
            ).all()
            answered: set[Any] = set()
            if got:
                # a result cannot arrive before its command was queued
                since = min(rows.utc(x.created_at) for x in got)
                answered = {
                    json.loads(b).get("cmd_id")
                    for b in conn.execute(
                        sa.select(r.body).where(
                            r.cabinet == cabinet, r.type == "cmd_result", r.received_at >= since
                        )
                    ).scalars()
                }
        out = []
        now = time.time()
        for m, _ in got:
            msg = json.loads(m)
            exp = wire.parse_time(msg.get("expires_at"))
            if msg.get("cmd_id") not in answered and (exp is None or exp > now):
                out.append(msg)
        return out

    # -- scan-to-open ---------------------------------------------------------------------
    def scan_to_open(
        self, cabinet: str, nonce: str, account: str, limit_fen: int, ttl_s: float
    ) -> dict | None:
        """A phone authorised ``nonce``: queue a signed ``session_authorized`` (the session is
        the nonce) and return it; None when the nonce was used here before (single use).

        The centre cannot tell a nonce the cabinet issued from a made-up one; the cabinet
        refuses those (``code_expired``)."""
        args = {"session": nonce, "account": account, "limit_fen": limit_fen}
        message = self._sign_command(cabinet, "session_authorized", args, ttl_s)
        now = _now()
        s = t.scans.c
        with self._write() as conn:
            first = conn.execute(
                self._insert(t.scans)
                .values(
                    cabinet=cabinet,
                    nonce=nonce,
                    account=account,
                    cmd_id=message["cmd_id"],
                    used_at=now,
                )
                .on_conflict_do_nothing(index_elements=[s.cabinet, s.nonce])
                .returning(s.nonce)
            ).first()
            if first is None:
                return None
            conn.execute(
                t.commands.insert().values(
                    cmd_id=message["cmd_id"],
                    cabinet=cabinet,
                    message=_dumps(message),
                    created_at=now,
                    published=False,
                )
            )
        return message

    def scan_used(self, cabinet: str, nonce: str) -> bool:
        s = t.scans.c
        with self._read() as conn:
            hit = conn.execute(
                sa.select(s.nonce).where(s.cabinet == cabinet, s.nonce == nonce)
            ).first()
        return hit is not None

    # -- payments -------------------------------------------------------------------------
    def add_authorization(
        self, cabinet: str, session: str, hold_fen: int, auth_id: str, provider_ref: str | None
    ) -> None:
        """Keep a hold the payment provider granted (the provider decides, not the store)."""
        p = t.payments.c
        with self._write() as conn:
            conn.execute(
                self._insert(t.payments)
                .values(
                    auth_id=auth_id,
                    cabinet=cabinet,
                    session=session,
                    hold_fen=hold_fen,
                    captured_fen=None,
                    state="held",
                    provider_ref=provider_ref,
                    created_at=_now(),
                )
                .on_conflict_do_nothing(index_elements=[p.auth_id])
            )

    def capture(self, cabinet: str, auth_id: str, amount_fen: int) -> tuple[int, dict]:
        """(HTTP status, answer); idempotent per ``auth_id``."""
        p = t.payments.c
        with self._write() as conn:
            row = conn.execute(
                sa.select(p.hold_fen, p.captured_fen)
                .where(p.auth_id == auth_id, p.cabinet == cabinet)
                .with_for_update()
            ).first()
            if row is None:
                return 404, {"error": "unknown auth_id", "detail": auth_id}
            hold, captured = row
            if captured is not None:
                if captured == amount_fen:
                    return 200, {"ok": True}
                return 409, {"error": "already captured", "detail": captured}
            if amount_fen > hold:
                return 400, {"error": "amount over the hold", "detail": hold}
            conn.execute(
                t.payments.update()
                .where(p.auth_id == auth_id)
                .values(
                    captured_fen=amount_fen, state="released" if amount_fen == 0 else "captured"
                )
            )
        return 200, {"ok": True}

    def payments(self) -> list[dict]:
        p = t.payments.c
        with self._read() as conn:
            got = conn.execute(
                sa.select(
                    p.auth_id,
                    p.cabinet,
                    p.session,
                    p.hold_fen,
                    p.captured_fen,
                    p.state,
                    p.provider_ref,
                ).order_by(p.created_at, p.auth_id)
            ).all()
        return [r._asdict() for r in got]

    # -- reports --------------------------------------------------------------------------
    def report_data(self, catalog: dict | None, timezone: str) -> report.ReportData:
        """The programme's figures over every cabinet, from sale_lines and adjustment_lines
        (summed in SQL) and a catalogue (``catalog``, else the newest sent): the same as the
        sum of the cabinets' own ``kiosk report``."""
        _zone(timezone)  # an unknown zone is a clear error before any SQL
        catalog = catalog or self.latest_catalog() or {}
        suppliers, categories, products, category_of = report.catalog_maps(catalog)
        sl, al, cab, rec = t.sale_lines.c, t.adjustment_lines.c, t.cabinets.c, t.records.c
        lines: list[report.Line] = []
        with self._read() as conn:
            for src, when, sold in (
                (t.sale_lines, sl.closed_at, True),
                (t.adjustment_lines, al.at, False),
            ):
                c = src.c
                day = self._day(when, timezone).label("day")
                q = (
                    sa.select(
                        c.cabinet,
                        sa.func.coalesce(cab.location, "").label("location"),
                        day,
                        c.sale_id,
                        c.sku,
                        c.supplier,
                        c.cert_no,
                        sa.func.sum(c.qty if sold else sa.literal(0)).label("qty"),
                        sa.func.sum(c.amount_fen).label("amount"),
                    )
                    .select_from(src.outerjoin(t.cabinets, cab.id == c.cabinet))
                    .group_by(c.cabinet, cab.location, day, c.sale_id, c.sku, c.supplier, c.cert_no)
                )
                for r in conn.execute(q):
                    lines.append(
                        report.Line(
                            r.cabinet,
                            r.location,
                            _as_date(r.day),
                            r.sale_id,
                            r.sku,
                            category_of.get(r.sku, "?"),
                            r.supplier,
                            int(r.qty),
                            int(r.amount),
                            bool(r.cert_no),
                            counts_as_sale=sold,
                        )
                    )
            rday = self._day(rec.at_utc, timezone)
            days: dict[str, set[date]] = {}
            for cb, d in conn.execute(
                sa.select(rec.cabinet, rday)
                .where(rec.at_utc.is_not(None))
                .group_by(rec.cabinet, rday)
            ):
                days.setdefault(cb, set()).add(_as_date(d))
            cabs = conn.execute(
                sa.select(cab.id, cab.name, cab.location, cab.last_contact).order_by(cab.id)
            ).all()
        return report.ReportData(
            lines=tuple(lines),
            suppliers=suppliers,
            categories=categories,
            products=products,
            cabinets=tuple(
                report.CabinetInfo(
                    c.id,
                    c.name or "",
                    c.location or "",
                    tuple(sorted(days.get(c.id, ()))),
                    c.last_contact,
                )
                for c in cabs
            ),
        )


def _as_date(v: Any) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v))
