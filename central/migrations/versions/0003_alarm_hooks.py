"""Alarm hooks: webhooks per route or cabinet, the scan's cursor, the alarms found, the grouped
messages and their deliveries (``central/schema_alarm_hooks.py``); an index on ``records`` by
(type, received_at) for the scan.

Revision ID: 0003_alarm_hooks
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_alarm_hooks"
down_revision = "0002"
branch_labels = None
depends_on = None

# Written out (not metadata.create_all): a revision is history and must not change when
# central/schema_alarm_hooks.py does.
Text, BigInt, Int, Bool = sa.Text, sa.BigInteger, sa.Integer, sa.Boolean


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_index("records_type_received", "records", ["type", "received_at"])
    op.create_table(
        "alarm_hooks",
        sa.Column("id", Int, primary_key=True),
        sa.Column("url", Text, nullable=False),
        sa.Column("scope", Text, nullable=False),
        sa.Column("target", Text),
        sa.Column("format", Text, nullable=False),
        sa.Column("enabled", Bool, nullable=False, server_default=sa.true()),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("last_ok_at", _utc()),
        sa.Column("last_error", Text),
        sa.Column("last_error_at", _utc()),
    )
    op.create_table(
        "alarm_hook_cursor",
        sa.Column("name", Text, primary_key=True),
        sa.Column("scanned_at", _utc(), nullable=False),
    )
    op.create_table(
        "alarm_messages",
        sa.Column("id", Text, primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("late", Bool, nullable=False, server_default=sa.false()),
        sa.Column("created_at", _utc(), nullable=False),
    )
    op.create_index("alarm_messages_created", "alarm_messages", ["created_at"])
    op.create_table(
        "alarm_outbox",
        sa.Column("record_id", Text, sa.ForeignKey("records.id"), primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("seq", BigInt, nullable=False),
        sa.Column("at", Text, nullable=False),
        sa.Column("at_utc", _utc()),
        sa.Column("kind", Text, nullable=False),
        sa.Column("device", Text),
        sa.Column("detail", Text, nullable=False),
        sa.Column("found_at", _utc(), nullable=False),
        sa.Column("late", Bool, nullable=False, server_default=sa.false()),
        sa.Column("message", Text, sa.ForeignKey("alarm_messages.id")),
    )
    op.create_index("alarm_outbox_message", "alarm_outbox", ["message"])
    op.create_table(
        "alarm_deliveries",
        sa.Column("message", Text, sa.ForeignKey("alarm_messages.id"), primary_key=True),
        sa.Column("hook", Int, sa.ForeignKey("alarm_hooks.id"), primary_key=True),
        sa.Column("state", Text, nullable=False),
        sa.Column("attempts", Int, nullable=False, server_default="0"),
        sa.Column("next_try_at", _utc(), nullable=False),
        sa.Column("last_error", Text),
        sa.Column("sent_at", _utc()),
    )
    op.create_index("alarm_deliveries_due", "alarm_deliveries", ["state", "next_try_at"])


def downgrade() -> None:
    op.drop_index("alarm_deliveries_due", "alarm_deliveries")
    op.drop_table("alarm_deliveries")
    op.drop_index("alarm_outbox_message", "alarm_outbox")
    op.drop_table("alarm_outbox")
    op.drop_index("alarm_messages_created", "alarm_messages")
    op.drop_table("alarm_messages")
    op.drop_table("alarm_hook_cursor")
    op.drop_table("alarm_hooks")
    op.drop_index("records_type_received", "records")
