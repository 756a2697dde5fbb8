"""Tables of the centre's users, tokens, audit log and the fleet API's read model (Step 9), on
the one MetaData of ``central.schema``. ``migrations/versions/0003_auth.py`` creates them.

- ``users``, ``login_sessions``, ``api_tokens``: ``central.auth``. Passwords are argon2 hashes;
  session ids and tokens are stored only as their SHA-256 (a copy of the database opens
  nothing).
- ``audit_log``: who did what, when, from where, and how it ended (``central.auth.Auth.audit``).
- ``fleet_events``: every ``event`` record parsed once, with the acknowledgement of an alarm
  (``central.alarms``); ``fleet_lanes`` (+ ``fleet_lanes_folded``): the last known count of each
  lane from ``inventory`` records (``central.fleet_view``); ``fleet_fold_locks``: one row per
  cabinet, locked while its records are folded (PostgreSQL; SQLite has one writer anyway).
- ``sale_reviews``, ``publications``, ``command_issuers``: what a person did through the API
  that the records do not say (a sale looked at, who published a version, who sent a command).
- ``records_cabinet_type_seq``: an index on ``records`` so "the newest telemetry of a cabinet"
  is one index probe, not a scan of a year of telemetry.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    false,
)

from central.schema import metadata, records


def _utc() -> DateTime:
    return DateTime(timezone=True)


Index("records_cabinet_type_seq", records.c.cabinet, records.c.type, records.c.seq)

users = Table(
    "users",
    metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),  # viewer | operator | admin
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("cabinets", Text, nullable=False, server_default="[]"),  # JSON list: scope
    Column("routes", Text, nullable=False, server_default="[]"),  # JSON list: scope
    Column("failed_logins", Integer, nullable=False, server_default="0"),  # since the last good
    Column("locked_until", _utc()),  # too many wrong passwords: refused until then
    Column("disabled", Boolean, nullable=False, server_default=false()),  # `user lock`
    Column("created_at", _utc(), nullable=False),
)

login_sessions = Table(
    "login_sessions",
    metadata,
    Column("id_hash", Text, primary_key=True),  # sha256 hex of the session id (the cookie)
    Column("user", Text, ForeignKey("users.name"), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("expires_at", _utc(), nullable=False),
    Column("address", Text, nullable=False),
    Index("login_sessions_user", "user"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("cabinets", Text, nullable=False, server_default="[]"),
    Column("routes", Text, nullable=False, server_default="[]"),
    Column("token_hash", Text, nullable=False, unique=True),  # sha256 hex of the token
    Column("created_at", _utc(), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("revoked_at", _utc()),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", _utc(), nullable=False),
    Column("actor", Text, nullable=False),  # a user, token:NAME, cli:OSUSER, or "-" unknown
    Column("role", Text),
    Column("action", Text, nullable=False),
    Column("target", Text),  # a cabinet, user, token, alarm, sale ...
    Column("outcome", Text, nullable=False),  # ok | denied | refused | failed
    Column("address", Text, nullable=False),  # the client's address, or "cli"
    Column("detail", Text, nullable=False, server_default="{}"),  # JSON object
    Index("audit_log_at", "at"),
    Index("audit_log_actor", "actor"),
)

fleet_events = Table(
    "fleet_events",
    metadata,
    Column("record_id", Text, ForeignKey("records.id"), primary_key=True),
    Column("cabinet", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", Text, nullable=False),  # as the cabinet sent it
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),  # info | warning | alarm ("alarm" when absent)
    Column("device", Text),
    Column("detail", Text, nullable=False),  # JSON: the body's detail (or the body's rest)
    Column("acked_at", _utc()),
    Column("acked_by", Text),
    Column("ack_note", Text),
    Index("fleet_events_cabinet_severity", "cabinet", "severity"),
)

fleet_lanes = Table(
    "fleet_lanes",
    metadata,
    Column("cabinet", Text, primary_key=True),
    Column("shelf", Text, primary_key=True),
    Column("sku", Text, primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),  # of the inventory record the count came from
    Column("at", Text, nullable=False),
    Column("expires_on", Text),  # the newest one a restock recorded
    Column("expires_seq", BigInteger),
    Column("restocked_at", Text),  # `at` of the newest restock that counted this lane
    Column("restock_seq", BigInteger),
)

fleet_lanes_folded = Table(
    "fleet_lanes_folded",
    metadata,
    Column("record_id", Text, ForeignKey("records.id"), primary_key=True),
    Column("cabinet", Text, nullable=False),
)

fleet_fold_locks = Table(
    "fleet_fold_locks",
    metadata,
    Column("cabinet", Text, primary_key=True),
)

sale_reviews = Table(
    "sale_reviews",
    metadata,
    Column("sale_id", Text, ForeignKey("sales.record_id"), primary_key=True),
    Column("cabinet", Text, nullable=False),
    Column("reviewed_by", Text, nullable=False),
    Column("reviewed_at", _utc(), nullable=False),
    Column("note", Text, nullable=False),
)

publications = Table(
    "publications",
    metadata,
    Column("cabinet", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("published_by", Text, nullable=False),
    Column("published_at", _utc(), nullable=False),
)

command_issuers = Table(
    "command_issuers",
    metadata,
    Column("cmd_id", Text, primary_key=True),
    Column("issued_by", Text, nullable=False),
    Column("issued_at", _utc(), nullable=False),
)
