"""Tables of the centre's alarm hooks (Step 9), on the one MetaData of ``central.schema``.
``migrations/versions/0003_alarm_hooks.py`` creates them; ``central.alarm_hooks`` uses them.

- ``alarm_hooks``: where alarms go off site (a URL, a scope: every cabinet, one route or one
  cabinet, a message format) and how its last delivery went.
- ``alarm_hook_cursor``: one row, how far the scan of ``records`` has got (a time: records
  carry nothing that only grows, so the scan looks back a margin from it; see alarm_hooks).
- ``alarm_outbox``: each alarm record found, once (keyed by record id), and the message it went
  out in (NULL while it waits to be grouped with its cabinet's other alarms).
- ``alarm_messages``: one grouped message per cabinet and burst; ``alarm_deliveries``: one row
  per message and hook, with its tries and the time of the next one.
- ``records_type_received``: an index on ``records`` so the scan reads the last minutes of
  events, not a year of records.
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
    true,
)

from central.schema import metadata, records


def _utc() -> DateTime:
    return DateTime(timezone=True)


Index("records_type_received", records.c.type, records.c.received_at)

alarm_hooks = Table(
    "alarm_hooks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False),
    Column("scope", Text, nullable=False),  # all | route | cabinet
    Column("target", Text),  # the route or the cabinet id; NULL for "all"
    Column("format", Text, nullable=False),  # json | wecom | dingtalk
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_at", _utc(), nullable=False),
    Column("last_ok_at", _utc()),
    Column("last_error", Text),
    Column("last_error_at", _utc()),
)

alarm_hook_cursor = Table(
    "alarm_hook_cursor",
    metadata,
    Column("name", Text, primary_key=True),
    Column("scanned_at", _utc(), nullable=False),  # the runner's clock when a scan began
)

alarm_messages = Table(
    "alarm_messages",
    metadata,
    Column("id", Text, primary_key=True),  # uuid7; sent with the message, for deduplication
    Column("cabinet", Text, nullable=False),
    Column("late", Boolean, nullable=False, server_default=false()),
    Column("created_at", _utc(), nullable=False),
    Index("alarm_messages_created", "created_at"),
)

alarm_outbox = Table(
    "alarm_outbox",
    metadata,
    Column("record_id", Text, ForeignKey("records.id"), primary_key=True),
    Column("cabinet", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", Text, nullable=False),  # as the cabinet sent it
    Column("at_utc", _utc()),
    Column("kind", Text, nullable=False),
    Column("device", Text),
    Column("detail", Text, nullable=False),  # JSON object
    Column("found_at", _utc(), nullable=False),
    Column("late", Boolean, nullable=False, server_default=false()),
    Column("message", Text, ForeignKey("alarm_messages.id")),  # NULL: not grouped yet
    Index("alarm_outbox_message", "message"),
)

alarm_deliveries = Table(
    "alarm_deliveries",
    metadata,
    Column("message", Text, ForeignKey("alarm_messages.id"), primary_key=True),
    Column("hook", Integer, ForeignKey("alarm_hooks.id"), primary_key=True),
    Column("state", Text, nullable=False),  # pending | sent | failed (gave up)
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_try_at", _utc(), nullable=False),
    Column("last_error", Text),
    Column("sent_at", _utc()),
    Index("alarm_deliveries_due", "state", "next_try_at"),
)
