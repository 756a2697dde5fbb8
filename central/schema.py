"""The centre's database: every table, in one SQLAlchemy Core MetaData.

The same tables on SQLite and PostgreSQL 15. Money and sequence numbers are BigInteger; JSON is
kept as text (exactly what was parsed, dumped once) so both backends store it alike. Times the
cabinets sent stay text as sent (``at``); times the centre compares or groups by day are also
kept as DateTime (UTC). ``migrations/versions/0001_initial.py`` creates these same tables.
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
    MetaData,
    Table,
    Text,
    false,
)

metadata = MetaData()

cabinets = Table(
    "cabinets",
    metadata,
    Column("id", Text, primary_key=True),
    # In clear only for cabinets given with --cabinet ID=KEYFILE (tests, --simulate); a
    # provisioned cabinet's key is sealed under the master key (central.keyring).
    Column("key_hex", Text),
    Column("key_sealed", Text),
    Column("prev_key_sealed", Text),  # the key before a rotation, accepted until ...
    Column("prev_key_until", Text),  # ... this RFC 3339 UTC time
    Column("route", Text),  # the operator's round: restock lists, alarm hooks
    Column("retired_at", Text),  # RFC 3339 UTC; NULL while in service
    Column("name", Text, nullable=False, server_default=""),
    Column("location", Text, nullable=False, server_default=""),
    Column("last_contact", Text),  # RFC 3339 UTC (clock.now_iso), when it last sent anything
    Column("online", Boolean, nullable=False, server_default=false()),
    Column("status_at", Text),  # the `at` of its last status message
    Column("version", Text, nullable=False, server_default=""),
    Index("cabinets_route", "route"),
)

records = Table(
    "records",
    metadata,
    Column("id", Text, primary_key=True),  # the cabinet's record id: stored once, ever
    Column("cabinet", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("at", Text, nullable=False),  # as the cabinet sent it
    Column("at_utc", DateTime(timezone=True)),  # `at` parsed (reports group it by day)
    Column("body", Text, nullable=False),  # JSON object
    Column("batch", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("records_cabinet_seq", "cabinet", "seq"),
    Index("records_cabinet_type", "cabinet", "type"),
)

# One row per (cabinet, batch id): the body's digest and the answer given, so a batch sent
# again gets the same answer. `records - fresh` are the duplicates it carried; stats sum them
# (no shared counter row for concurrent writers to queue on).
batches = Table(
    "batches",
    metadata,
    Column("cabinet", Text, primary_key=True),
    Column("batch", Text, primary_key=True),
    Column("digest", Text, nullable=False),
    Column("answer", Text, nullable=False),  # JSON {"batch","stored","rejected"}
    Column("records", Integer, nullable=False),
    Column("fresh", Integer, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

sales = Table(
    "sales",
    metadata,
    Column("record_id", Text, ForeignKey("records.id"), primary_key=True),
    Column("cabinet", Text, nullable=False),
    Column("sale_no", Text),  # the cabinet's own sale id (body "id")
    Column("session", Text),
    Column("door", Text),
    Column("closed_at", DateTime(timezone=True), nullable=False),  # body closed_at, else `at`
    Column("total_fen", BigInteger, nullable=False),
    Column("method", Text),
    Column("status", Text),
    Column("account", Text),
    Column("confidence", Text),  # as sent (a number), text so no float rounding creeps in
    Column("catalog_version", BigInteger),
    Index("sales_cabinet_closed", "cabinet", "closed_at"),
)

# The names an adjustment may give its sale (kiosk/report.py from_central's alias): the sale
# record's id, the sale body's id, its "sale" and its session. First sale to claim one keeps it.
sale_aliases = Table(
    "sale_aliases",
    metadata,
    Column("cabinet", Text, primary_key=True),
    Column("alias", Text, primary_key=True),
    Column("sale_id", Text, ForeignKey("sales.record_id"), nullable=False),
)

sale_lines = Table(
    "sale_lines",
    metadata,
    Column("sale_id", Text, ForeignKey("sales.record_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),  # index in the sale body's items
    Column("cabinet", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("unit_price_fen", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),  # qty * unit_price_fen
    Column("supplier", Text),  # "?" when the item named none (as kiosk.report)
    Column("cert_no", Text, nullable=False),  # "" when not certified
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Index("sale_lines_cabinet", "cabinet"),
)

adjustments = Table(
    "adjustments",
    metadata,
    Column("record_id", Text, ForeignKey("records.id"), primary_key=True),
    Column("cabinet", Text, nullable=False),
    Column("sale_ref", Text, nullable=False),  # as sent: record id, sale id or session
    Column("sale_id", Text, ForeignKey("sales.record_id")),  # resolved; NULL until it arrives
    Column("amount_fen", BigInteger, nullable=False),  # money back (positive)
    Column("items", Text, nullable=False),  # JSON as sent ([] when none)
    Column("reason", Text),
    Column("actor", Text),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("allotted", Boolean, nullable=False, server_default=false()),
    Index("adjustments_pending", "cabinet", "sale_ref"),
)

adjustment_lines = Table(
    "adjustment_lines",
    metadata,
    Column("adjustment_id", Text, ForeignKey("adjustments.record_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("cabinet", Text, nullable=False),
    Column("sale_id", Text, ForeignKey("sales.record_id"), nullable=False),
    Column("sku", Text, nullable=False),
    Column("supplier", Text),
    Column("cert_no", Text, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),  # negative: money back
    Column("at", DateTime(timezone=True), nullable=False),
    Index("adjustment_lines_cabinet", "cabinet"),
)

downlinks = Table(
    "downlinks",
    metadata,
    Column("cabinet", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("message", Text, nullable=False),  # the signed message, JSON
    Column("created_at", DateTime(timezone=True), nullable=False),
)

commands = Table(
    "commands",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("cmd_id", Text, nullable=False, unique=True),
    Column("cabinet", Text, nullable=False),
    Column("message", Text, nullable=False),  # the signed message, JSON
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published", Boolean, nullable=False, server_default=false()),
    Index("commands_cabinet_seq", "cabinet", "seq"),
)

payments = Table(
    "payments",
    metadata,
    Column("auth_id", Text, primary_key=True),
    Column("cabinet", Text, nullable=False),
    Column("session", Text, nullable=False),
    Column("hold_fen", BigInteger, nullable=False),
    Column("captured_fen", BigInteger),
    Column("state", Text, nullable=False),  # held | captured | released
    Column("provider_ref", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

scans = Table(
    "scans",
    metadata,
    Column("cabinet", Text, primary_key=True),
    Column("nonce", Text, primary_key=True),
    Column("account", Text, nullable=False),
    Column("cmd_id", Text, nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=False),
)

# Step 9's tables live in modules of their own, on this MetaData (imported last: they need it).
from central import schema_alarm_hooks, schema_auth, schema_staff  # noqa: E402, F401
