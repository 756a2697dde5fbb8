"""The centre's report: ``kiosk central report --by month|supplier|category|location|cabinet``.

The figures are ``kiosk.report``'s (one computation for the cabinets' own report and the
centre's); this module adds what only the centre has:

- ``--by month``: one row per calendar month of the period in the report's time zone, every
  month from the first to the last, empty ones included (a month without sales is a figure
  too). A refund counts in the month it was given, as in ``kiosk.report``.
- ``--by`` chooses the breakdowns shown (repeat it for several); without it, the five of
  ``kiosk.report``.

Households are counted once per supplier and period: each row (a month, a cabinet, ...) counts
every supplier that sold in it once, and the total counts each supplier once over the whole
period, however many months, cabinets or products it sold in. So the rows' households do not
add up to the total's when a supplier sold in several of them: that is the rule, not a slip.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from datetime import date, datetime

from kiosk import report

BY = ("month", *report.BREAKDOWNS)


def parse_period(date_from: str | None, date_to: str | None) -> tuple[date | None, date | None]:
    """``--from``/``--to`` (YYYY-MM-DD, both included, either open); ``ValueError`` saying why."""
    try:
        start, end = (
            datetime.strptime(t, "%Y-%m-%d").date() if t else None for t in (date_from, date_to)
        )
    except ValueError:
        raise ValueError("dates are YYYY-MM-DD") from None
    if start and end and start > end:
        raise ValueError("--from is after --to")
    return start, end


def month_of(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def _months(first: date, last: date) -> list[str]:
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def by_month(
    data: report.ReportData, date_from: date | None, date_to: date | None
) -> tuple[report.Row, ...]:
    """One row per calendar month of the period, oldest first; each is ``kiosk.report``'s
    total over that month's lines (so households are counted once per supplier and month)."""
    lines = [
        ln
        for ln in data.lines
        if (date_from is None or ln.day >= date_from) and (date_to is None or ln.day <= date_to)
    ]
    if not lines and (date_from is None or date_to is None):
        return ()
    first = date_from or min(ln.day for ln in lines)
    last = date_to or max(ln.day for ln in lines)
    grouped: dict[str, list[report.Line]] = {m: [] for m in _months(first, last)}
    for ln in lines:
        grouped[month_of(ln.day)].append(ln)
    rows = []
    for m, month_lines in grouped.items():
        total = report.compute(replace(data, lines=tuple(month_lines)), None, None).total
        rows.append(replace(total, key=m, name=m))
    return tuple(rows)


def figures(
    data: report.ReportData,
    date_from: date | None,
    date_to: date | None,
    by: tuple[str, ...] = (),
) -> report.Figures:
    """``kiosk.report.compute``'s figures with only the breakdowns ``by`` (in that order;
    empty: ``kiosk.report``'s five), ``month`` among them when asked."""
    f = report.compute(data, date_from, date_to)
    chosen = by or report.BREAKDOWNS
    return replace(
        f, by={b: by_month(data, date_from, date_to) if b == "month" else f.by[b] for b in chosen}
    )


def add_by_arg(c: argparse.ArgumentParser) -> None:
    """``--by`` on ``kiosk central report`` (repeatable)."""
    c.add_argument(
        "--by",
        action="append",
        choices=BY,
        default=[],
        help="a breakdown to show (repeat for several; default: all but month)",
    )


def cli(data: report.ReportData, args: argparse.Namespace) -> int:
    """``kiosk central report``: ``kiosk.report.cli`` with ``--by``."""
    try:
        start, end = parse_period(args.date_from, args.date_to)
    except ValueError as e:
        print(f"kiosk central report: {e}", file=sys.stderr)
        return 2
    by = tuple(dict.fromkeys(getattr(args, "by", None) or ()))
    f = figures(data, start, end, by)
    if args.json:
        print(
            json.dumps(
                {
                    "summary": report.summary(f),
                    "total": asdict(f.total),
                    "by": {b: [asdict(r) for r in rows] for b, rows in f.by.items()},
                    "cabinets_reporting": [c.id for c in f.cabinets_reporting],
                },
                ensure_ascii=False,
            )
        )
    else:
        print(report.table(f))
        print()
        print(report.summary(f))
    if args.csv:
        for p in report.write_csv(f, args.csv):
            print(f"wrote {p}")
    if getattr(args, "chart", None):
        # the chart draws by category and by supplier, whichever breakdowns were chosen
        print(f"wrote {report.chart(report.compute(data, start, end), args.chart)}")
    return 0
