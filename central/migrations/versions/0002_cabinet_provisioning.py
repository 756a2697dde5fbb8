"""Cabinets provisioned by the centre: keys sealed under the master key, a second key for a
rotation's grace period, a route, and retirement (credentials gone, records kept).

``key_hex`` becomes optional: only cabinets given with ``--cabinet ID=KEYFILE`` (tests,
``--simulate``) keep a key in clear, and those are held in memory by the service.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot alter a column's nullability in place (a copy of the table).
    with op.batch_alter_table("cabinets") as b:
        b.alter_column("key_hex", existing_type=sa.Text, nullable=True)
        b.add_column(sa.Column("key_sealed", sa.Text))
        b.add_column(sa.Column("prev_key_sealed", sa.Text))
        b.add_column(sa.Column("prev_key_until", sa.Text))  # RFC 3339 UTC: grace ends
        b.add_column(sa.Column("route", sa.Text))
        b.add_column(sa.Column("retired_at", sa.Text))  # RFC 3339 UTC; NULL: in service
    op.create_index("cabinets_route", "cabinets", ["route"])


def downgrade() -> None:
    op.drop_index("cabinets_route", "cabinets")
    with op.batch_alter_table("cabinets") as b:
        for name in ("retired_at", "route", "prev_key_until", "prev_key_sealed", "key_sealed"):
            b.drop_column(name)
        b.alter_column("key_hex", existing_type=sa.Text, nullable=False)
