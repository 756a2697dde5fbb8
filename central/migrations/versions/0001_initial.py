"""The centre's first schema: cabinets, records, batches, sales and their lines,
adjustments and their allotment, downlinks, commands, payments, scans.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Tables are written out here (not metadata.create_all): a revision is history and must not
# change when central/schema.py does.
Text, BigInt, Int, Bool = sa.Text, sa.BigInteger, sa.Integer, sa.Boolean


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cabinets",
        sa.Column("id", Text, primary_key=True),
        sa.Column("key_hex", Text, nullable=False),
        sa.Column("name", Text, nullable=False, server_default=""),
        sa.Column("location", Text, nullable=False, server_default=""),
        sa.Column("last_contact", Text),
        sa.Column("online", Bool, nullable=False, server_default=sa.false()),
        sa.Column("status_at", Text),
        sa.Column("version", Text, nullable=False, server_default=""),
    )
    op.create_table(
        "records",
        sa.Column("id", Text, primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("seq", BigInt, nullable=False),
        sa.Column("type", Text, nullable=False),
        sa.Column("at", Text, nullable=False),
        sa.Column("at_utc", _utc()),
        sa.Column("body", Text, nullable=False),
        sa.Column("batch", Text, nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
    )
    op.create_index("records_cabinet_seq", "records", ["cabinet", "seq"])
    op.create_index("records_cabinet_type", "records", ["cabinet", "type"])
    op.create_table(
        "batches",
        sa.Column("cabinet", Text, primary_key=True),
        sa.Column("batch", Text, primary_key=True),
        sa.Column("digest", Text, nullable=False),
        sa.Column("answer", Text, nullable=False),
        sa.Column("records", Int, nullable=False),
        sa.Column("fresh", Int, nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
    )
    op.create_table(
        "sales",
        sa.Column("record_id", Text, sa.ForeignKey("records.id"), primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("sale_no", Text),
        sa.Column("session", Text),
        sa.Column("door", Text),
        sa.Column("closed_at", _utc(), nullable=False),
        sa.Column("total_fen", BigInt, nullable=False),
        sa.Column("method", Text),
        sa.Column("status", Text),
        sa.Column("account", Text),
        sa.Column("confidence", Text),
        sa.Column("catalog_version", BigInt),
    )
    op.create_index("sales_cabinet_closed", "sales", ["cabinet", "closed_at"])
    op.create_table(
        "sale_aliases",
        sa.Column("cabinet", Text, primary_key=True),
        sa.Column("alias", Text, primary_key=True),
        sa.Column("sale_id", Text, sa.ForeignKey("sales.record_id"), nullable=False),
    )
    op.create_table(
        "sale_lines",
        sa.Column("sale_id", Text, sa.ForeignKey("sales.record_id"), primary_key=True),
        sa.Column("line_no", Int, primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("sku", Text, nullable=False),
        sa.Column("qty", BigInt, nullable=False),
        sa.Column("unit_price_fen", BigInt, nullable=False),
        sa.Column("amount_fen", BigInt, nullable=False),
        sa.Column("supplier", Text),
        sa.Column("cert_no", Text, nullable=False),
        sa.Column("closed_at", _utc(), nullable=False),
    )
    op.create_index("sale_lines_cabinet", "sale_lines", ["cabinet"])
    op.create_table(
        "adjustments",
        sa.Column("record_id", Text, sa.ForeignKey("records.id"), primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("sale_ref", Text, nullable=False),
        sa.Column("sale_id", Text, sa.ForeignKey("sales.record_id")),
        sa.Column("amount_fen", BigInt, nullable=False),
        sa.Column("items", Text, nullable=False),
        sa.Column("reason", Text),
        sa.Column("actor", Text),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("allotted", Bool, nullable=False, server_default=sa.false()),
    )
    op.create_index("adjustments_pending", "adjustments", ["cabinet", "sale_ref"])
    op.create_table(
        "adjustment_lines",
        sa.Column("adjustment_id", Text, sa.ForeignKey("adjustments.record_id"), primary_key=True),
        sa.Column("line_no", Int, primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("sale_id", Text, sa.ForeignKey("sales.record_id"), nullable=False),
        sa.Column("sku", Text, nullable=False),
        sa.Column("supplier", Text),
        sa.Column("cert_no", Text, nullable=False),
        sa.Column("amount_fen", BigInt, nullable=False),
        sa.Column("at", _utc(), nullable=False),
    )
    op.create_index("adjustment_lines_cabinet", "adjustment_lines", ["cabinet"])
    op.create_table(
        "downlinks",
        sa.Column("cabinet", Text, primary_key=True),
        sa.Column("kind", Text, primary_key=True),
        sa.Column("version", BigInt, primary_key=True, autoincrement=False),
        sa.Column("message", Text, nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
    )
    op.create_table(
        "commands",
        # SQLite: INTEGER PRIMARY KEY is the rowid (autoincrement); PostgreSQL: BIGSERIAL
        sa.Column("seq", BigInt().with_variant(Int, "sqlite"), primary_key=True),
        sa.Column("cmd_id", Text, nullable=False, unique=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("message", Text, nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("published", Bool, nullable=False, server_default=sa.false()),
    )
    op.create_index("commands_cabinet_seq", "commands", ["cabinet", "seq"])
    op.create_table(
        "payments",
        sa.Column("auth_id", Text, primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("session", Text, nullable=False),
        sa.Column("hold_fen", BigInt, nullable=False),
        sa.Column("captured_fen", BigInt),
        sa.Column("state", Text, nullable=False),
        sa.Column("provider_ref", Text),
        sa.Column("created_at", _utc(), nullable=False),
    )
    op.create_table(
        "scans",
        sa.Column("cabinet", Text, primary_key=True),
        sa.Column("nonce", Text, primary_key=True),
        sa.Column("account", Text, nullable=False),
        sa.Column("cmd_id", Text, nullable=False),
        sa.Column("used_at", _utc(), nullable=False),
    )


def downgrade() -> None:
    for name in (
        "scans",
        "payments",
        "commands",
        "downlinks",
        "adjustment_lines",
        "adjustments",
        "sale_lines",
        "sale_aliases",
        "sales",
        "batches",
        "records",
        "cabinets",
    ):
        op.drop_table(name)
