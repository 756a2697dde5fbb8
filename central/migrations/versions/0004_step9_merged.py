"""Step 9's three branches made one: users and the fleet API's tables (0003_auth), staff
cards (0003_staff) and alarm hooks (0003_alarm_hooks) were written side by side on 0002; a
database upgraded to this revision has all three, and later revisions build on this one.

Revision ID: 0004
Revises: 0003_alarm_hooks, 0003_auth, 0003_staff
Create Date: 2026-12-03
"""

from __future__ import annotations

revision = "0004"
down_revision = ("0003_alarm_hooks", "0003_auth", "0003_staff")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
