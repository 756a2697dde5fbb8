"""Tables of the centre's staff card accounts (Step 9), on the one MetaData of
``central.schema``. ``migrations/versions/0003_staff.py`` creates them.

- ``staff_cards``: one row per staff card (``central.staff``). The card's UID is never stored
  in clear: ``uid_sealed`` is it sealed under the master key (``central.keyring``, purpose
  ``card-uid:<id>``, so a sealed UID copied into another row does not open).
- ``staff_card_accounts``: each per-cabinet account (``kiosk.signing.card_account``) ever sent
  down to a cabinet, and its card: statements name the person behind a sale without the master
  key, and still after the cabinet's key was rotated or the cabinet retired.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Table, Text

from central.schema import metadata


def _utc() -> DateTime:
    return DateTime(timezone=True)


staff_cards = Table(
    "staff_cards",
    metadata,
    Column("id", Text, primary_key=True),  # the centre's own id for the card (12 hex digits)
    Column("uid_sealed", Text, nullable=False),  # the card UID (upper case), sealed
    Column("name", Text, nullable=False),
    Column("employee_no", Text),  # the employer's payroll number, optional
    Column("employer", Text),
    Column("department", Text),
    Column("status", Text, nullable=False),  # active | blocked
    Column("offline_limit_fen", BigInteger),  # NULL: the cabinet's default
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
    Index("staff_cards_employer", "employer"),
)

staff_card_accounts = Table(
    "staff_card_accounts",
    metadata,
    Column("cabinet", Text, primary_key=True),
    Column("account", Text, primary_key=True),  # 32 hex digits: the card under that cabinet's key
    Column("card_id", Text, ForeignKey("staff_cards.id"), nullable=False),
    Column("sent_at", _utc(), nullable=False),  # first sent down in an accounts list
)
