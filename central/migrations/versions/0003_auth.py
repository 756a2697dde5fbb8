"""Users, login sessions, API tokens and the audit log; the fleet API's read model (events and
lanes folded from records, sale reviews, who published and who sent what); an index on records
for "the newest record of a type" per cabinet.

Revision ID: 0003_auth
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_auth"
down_revision = "0002"
branch_labels = None
depends_on = None

# Written out (not metadata.create_all): a revision is history and must not change when
# central/schema_auth.py does.
Text, BigInt, Int, Bool = sa.Text, sa.BigInteger, sa.Integer, sa.Boolean


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_index("records_cabinet_type_seq", "records", ["cabinet", "type", "seq"])
    op.create_table(
        "users",
        sa.Column("name", Text, primary_key=True),
        sa.Column("role", Text, nullable=False),
        sa.Column("password_hash", Text, nullable=False),
        sa.Column("cabinets", Text, nullable=False, server_default="[]"),
        sa.Column("routes", Text, nullable=False, server_default="[]"),
        sa.Column("failed_logins", Int, nullable=False, server_default="0"),
        sa.Column("locked_until", _utc()),
        sa.Column("disabled", Bool, nullable=False, server_default=sa.false()),
        sa.Column("created_at", _utc(), nullable=False),
    )
    op.create_table(
        "login_sessions",
        sa.Column("id_hash", Text, primary_key=True),
        sa.Column("user", Text, sa.ForeignKey("users.name"), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("address", Text, nullable=False),
    )
    op.create_index("login_sessions_user", "login_sessions", ["user"])
    op.create_table(
        "api_tokens",
        sa.Column("name", Text, primary_key=True),
        sa.Column("role", Text, nullable=False),
        sa.Column("cabinets", Text, nullable=False, server_default="[]"),
        sa.Column("routes", Text, nullable=False, server_default="[]"),
        sa.Column("token_hash", Text, nullable=False, unique=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("created_by", Text, nullable=False),
        sa.Column("revoked_at", _utc()),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigInt().with_variant(Int, "sqlite"), primary_key=True),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", Text, nullable=False),
        sa.Column("role", Text),
        sa.Column("action", Text, nullable=False),
        sa.Column("target", Text),
        sa.Column("outcome", Text, nullable=False),
        sa.Column("address", Text, nullable=False),
        sa.Column("detail", Text, nullable=False, server_default="{}"),
    )
    op.create_index("audit_log_at", "audit_log", ["at"])
    op.create_index("audit_log_actor", "audit_log", ["actor"])
    op.create_table(
        "fleet_events",
        sa.Column("record_id", Text, sa.ForeignKey("records.id"), primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("seq", BigInt, nullable=False),
        sa.Column("at", Text, nullable=False),
        sa.Column("kind", Text, nullable=False),
        sa.Column("severity", Text, nullable=False),
        sa.Column("device", Text),
        sa.Column("detail", Text, nullable=False),
        sa.Column("acked_at", _utc()),
        sa.Column("acked_by", Text),
        sa.Column("ack_note", Text),
    )
    op.create_index("fleet_events_cabinet_severity", "fleet_events", ["cabinet", "severity"])
    op.create_table(
        "fleet_lanes",
        sa.Column("cabinet", Text, primary_key=True),
        sa.Column("shelf", Text, primary_key=True),
        sa.Column("sku", Text, primary_key=True),
        sa.Column("count", BigInt, nullable=False),
        sa.Column("seq", BigInt, nullable=False),
        sa.Column("at", Text, nullable=False),
        sa.Column("expires_on", Text),
        sa.Column("expires_seq", BigInt),
        sa.Column("restocked_at", Text),
        sa.Column("restock_seq", BigInt),
    )
    op.create_table(
        "fleet_lanes_folded",
        sa.Column("record_id", Text, sa.ForeignKey("records.id"), primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
    )
    op.create_table("fleet_fold_locks", sa.Column("cabinet", Text, primary_key=True))
    op.create_table(
        "sale_reviews",
        sa.Column("sale_id", Text, sa.ForeignKey("sales.record_id"), primary_key=True),
        sa.Column("cabinet", Text, nullable=False),
        sa.Column("reviewed_by", Text, nullable=False),
        sa.Column("reviewed_at", _utc(), nullable=False),
        sa.Column("note", Text, nullable=False),
    )
    op.create_table(
        "publications",
        sa.Column("cabinet", Text, primary_key=True),
        sa.Column("kind", Text, primary_key=True),
        sa.Column("version", BigInt, primary_key=True, autoincrement=False),
        sa.Column("published_by", Text, nullable=False),
        sa.Column("published_at", _utc(), nullable=False),
    )
    op.create_table(
        "command_issuers",
        sa.Column("cmd_id", Text, primary_key=True),
        sa.Column("issued_by", Text, nullable=False),
        sa.Column("issued_at", _utc(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "command_issuers",
        "publications",
        "sale_reviews",
        "fleet_fold_locks",
        "fleet_lanes_folded",
        "fleet_lanes",
        "fleet_events",
        "audit_log",
        "api_tokens",
        "login_sessions",
        "users",
    ):
        op.drop_table(table)
    op.drop_index("records_cabinet_type_seq", "records")
