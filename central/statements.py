"""``kiosk central statements --month YYYY-MM``: what to charge each staff account for a month,
the file an employer's payroll imports.

Rules:
- A statement lists every ``deferred`` sale (``payment.status``: a staff card or a
  scan-to-open session, which someone must charge) closed in the month, and every refund
  given in the month against such a sale (even when the sale was in an earlier month: the
  money goes back in the month it was given). The month is a calendar month in the report's
  time zone (Asia/Shanghai unless told).
- A sale is charged what the cabinet recorded as its ``total_fen``; a refund gives back its
  ``amount_fen``. The total to deduct is sales minus refunds.
- A staff card's account differs per cabinet (``signing.card_account`` with each cabinet's
  key): the registry (``central.staff.owners``) names the person, so one person has one
  statement across cabinets. An account the registry does not know (a scan-to-open platform
  account, a card no longer registered, a cabinet whose key is gone) is listed under the
  account as the sale named it.
- Statements are ordered by employer, name and account; each one's lines by time.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from central import schema as t
from central import staff
from central.export import refund_name
from central.ingest_rows import utc

if TYPE_CHECKING:
    from central.keyring import Keyring
    from central.store import Store

FORMATS = ("csv", "xlsx")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True)
class Entry:
    at: datetime  # UTC
    cabinet: str
    location: str
    method: str  # card | scan_to_open | ...
    kind: str  # sale | refund
    sale: str  # the sale (the cabinet's sale id, else its record id); a refund's: the one refunded
    refund: str  # a refund's adjustment (the cabinet's id, else its record id); "" for a sale
    amount_fen: int  # positive: to deduct; negative: given back


@dataclass(frozen=True)
class Statement:
    account: str  # the staff card's id in the registry, else the account as the sale named it
    registered: bool
    name: str
    employee_no: str
    employer: str
    department: str
    entries: tuple[Entry, ...]

    @property
    def sales_fen(self) -> int:
        return sum(e.amount_fen for e in self.entries if e.kind == "sale")

    @property
    def refunds_fen(self) -> int:
        return -sum(e.amount_fen for e in self.entries if e.kind == "refund")

    @property
    def total_fen(self) -> int:
        """What to deduct."""
        return sum(e.amount_fen for e in self.entries)


@dataclass(frozen=True)
class Statements:
    month: str
    timezone: str
    statements: tuple[Statement, ...]

    @property
    def total_fen(self) -> int:
        return sum(s.total_fen for s in self.statements)


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a calendar month ``YYYY-MM`` in ``timezone``; ``ValueError``."""
    m = _MONTH.fullmatch(month or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month {month!r} is not YYYY-MM")
    y, mo = int(m.group(1)), int(m.group(2))
    zone = ZoneInfo(timezone)
    nxt = (y + 1, 1) if mo == 12 else (y, mo + 1)
    return (
        datetime.combine(date(y, mo, 1), time(), zone).astimezone(UTC),
        datetime.combine(date(*nxt, 1), time(), zone).astimezone(UTC),
    )


def compute(
    store: Store,
    keyring: Keyring | None,
    month: str,
    timezone: str = "Asia/Shanghai",
    employer: str | None = None,
) -> Statements:
    """The month's statements (``employer``: only that employer's registered staff)."""
    start, end = month_bounds(month, timezone)
    s, a, cab = t.sales.c, t.adjustments.c, t.cabinets.c
    sale_name = sa.func.coalesce(s.sale_no, s.record_id).label("sale_name")
    location = sa.func.coalesce(cab.location, "").label("location")
    deferred = s.status == "deferred"
    sales_q = (
        sa.select(s.closed_at.label("at"), s.cabinet, location, s.method, s.account)
        .add_columns(s.total_fen, sale_name)
        .select_from(t.sales.outerjoin(t.cabinets, cab.id == s.cabinet))
        .where(deferred, s.closed_at >= start, s.closed_at < end)
    )
    refunds_q = (
        sa.select(
            a.at, s.cabinet, location, s.method, s.account, a.amount_fen, sale_name, a.record_id
        )
        .add_columns(t.records.c.body)
        .select_from(
            t.adjustments.join(t.sales, s.record_id == a.sale_id)
            .join(t.records, t.records.c.id == a.record_id)
            .outerjoin(t.cabinets, cab.id == s.cabinet)
        )
        .where(deferred, a.at >= start, a.at < end)
    )
    # (cabinet, account as the sale named it) -> entries
    found: dict[tuple[str, str], list[Entry]] = defaultdict(list)

    def add(r: Any, kind: str, amount: int, refund: str) -> None:
        e = Entry(
            utc(r.at), r.cabinet, r.location, r.method or "", kind, r.sale_name, refund, amount
        )
        found[(r.cabinet, r.account or "")].append(e)

    with store.engine.connect() as conn, conn.begin():
        for r in conn.execute(sales_q):
            add(r, "sale", int(r.total_fen), "")
        for r in conn.execute(refunds_q):
            add(r, "refund", -int(r.amount_fen), refund_name(r.record_id, r.body))
    who = staff.owners(store, keyring, sorted({cab for cab, _ in found}))
    people: dict[str, tuple[staff.StaffCard | None, list[Entry]]] = {}
    for (cab, account), entries in found.items():
        card = who.get((cab, account))
        key = f"card:{card.id}" if card else f"account:{account}"
        people.setdefault(key, (card, []))[1].extend(entries)
    out = []
    for key, (card, entries) in people.items():
        if employer is not None and (card is None or card.employer != employer):
            continue
        entries.sort(key=lambda e: (e.at, e.kind != "sale", e.sale, e.refund))
        out.append(
            Statement(
                account=card.id if card else key.split(":", 1)[1],
                registered=card is not None,
                name=card.name if card else "",
                employee_no=(card.employee_no or "") if card else "",
                employer=(card.employer or "") if card else "",
                department=(card.department or "") if card else "",
                entries=tuple(entries),
            )
        )
    # registered staff by employer and name first; unknown accounts after them
    out.sort(key=lambda x: (not x.registered, x.employer, x.name, x.account))
    return Statements(month, timezone, tuple(out))


# -- files ------------------------------------------------------------------------------------
def yuan(fen: int) -> Decimal:
    """Exact yuan with two decimals (``str``: ``"-45.00"``)."""
    return Decimal(fen).scaleb(-2)


COLUMNS = (
    "account",
    "name",
    "employee_no",
    "employer",
    "department",
    "date",
    "time",
    "cabinet",
    "location",
    "method",
    "kind",  # sale | refund | total (the account's total to deduct, after its lines)
    "sale",
    "refund",
    "amount_fen",
    "amount_yuan",
)
TOTAL_COLUMNS = (
    "account",
    "name",
    "employee_no",
    "employer",
    "department",
    "sales",
    "refunds",
    "sales_fen",
    "refunds_fen",
    "total_fen",
    "total_yuan",
)


def lines(st: Statements) -> list[list[Any]]:
    """Each account's sales and refunds, then its total (``kind`` ``total``)."""
    zone = ZoneInfo(st.timezone)
    out: list[list[Any]] = []
    for s in st.statements:
        who = [s.account, s.name, s.employee_no, s.employer, s.department]
        for e in s.entries:
            local = e.at.astimezone(zone)
            out.append(
                [
                    *who,
                    local.date().isoformat(),
                    local.strftime("%H:%M:%S"),
                    e.cabinet,
                    e.location,
                    e.method,
                    e.kind,
                    e.sale,
                    e.refund,
                    e.amount_fen,
                    yuan(e.amount_fen),
                ]
            )
        out.append([*who, "", "", "", "", "", "total", "", "", s.total_fen, yuan(s.total_fen)])
    return out


def total_lines(st: Statements) -> list[list[Any]]:
    """One line per account: what to deduct."""
    return [
        [
            s.account,
            s.name,
            s.employee_no,
            s.employer,
            s.department,
            sum(1 for e in s.entries if e.kind == "sale"),
            sum(1 for e in s.entries if e.kind == "refund"),
            s.sales_fen,
            s.refunds_fen,
            s.total_fen,
            yuan(s.total_fen),
        ]
        for s in st.statements
    ]


def write_csv(st: Statements, path: str | Path, totals_only: bool = False) -> Path:
    """Every line with each account's total (or, ``totals_only``, one line per account);
    UTF-8 with a byte order mark (Excel reads the names right)."""
    p = Path(path)
    with p.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        if totals_only:
            w.writerow(TOTAL_COLUMNS)
            w.writerows(total_lines(st))
        else:
            w.writerow(COLUMNS)
            w.writerows(lines(st))
    return p


def write_xlsx(st: Statements, path: str | Path) -> Path:
    """Two sheets: ``statement`` (every line, each account's total) and ``totals`` (one line
    per account: what payroll deducts)."""
    from openpyxl import Workbook

    p = Path(path)
    wb = Workbook(write_only=True)
    for name, header, rows in (
        ("statement", COLUMNS, lines(st)),
        ("totals", TOTAL_COLUMNS, total_lines(st)),
    ):
        ws = wb.create_sheet(name)
        ws.append(list(header))
        for row in rows:
            ws.append([_money_cell(ws, v) if isinstance(v, Decimal) else v for v in row])
    wb.save(p)
    return p


def _money_cell(ws: Any, v: Decimal) -> Any:
    from openpyxl.cell import WriteOnlyCell

    c = WriteOnlyCell(ws, value=v)
    c.number_format = "0.00"
    return c


def write(st: Statements, path: str | Path, fmt: str, totals_only: bool = False) -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"the format is one of {', '.join(FORMATS)}")
    return write_csv(st, path, totals_only) if fmt == "csv" else write_xlsx(st, path)
