"""Staff card accounts: the cards (UIDs sealed under the master key) and the per-cabinet
accounts sent down for each.

Revision ID: 0003_staff
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_staff"
down_revision = "0002"
branch_labels = None
depends_on = None

# Written out (not metadata.create_all): a revision is history and must not change when
# central/schema_staff.py does.


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "staff_cards",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("uid_sealed", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("employee_no", sa.Text),
        sa.Column("employer", sa.Text),
        sa.Column("department", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("offline_limit_fen", sa.BigInteger),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
    )
    op.create_index("staff_cards_employer", "staff_cards", ["employer"])
    op.create_table(
        "staff_card_accounts",
        sa.Column("cabinet", sa.Text, primary_key=True),
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("card_id", sa.Text, sa.ForeignKey("staff_cards.id"), nullable=False),
        sa.Column("sent_at", _utc(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("staff_card_accounts")
    op.drop_index("staff_cards_employer", "staff_cards")
    op.drop_table("staff_cards")
