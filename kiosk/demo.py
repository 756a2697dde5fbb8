"""``kiosk demo``: the project doing something real, end to end, with nothing set up by hand.

The core's part: a fresh database from ``examples/cabinet.toml``, the sample catalogue
imported, the cabinet's product list printed, a demo staff card and a demo operator. Each stage
gets the shared ``Demo``. The running cabinet (simulated devices, broker, central simulator,
controller, touchscreen, sync agent) is started by ``simulators.demo`` around these stages.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sqlite_utils import Database

from kiosk import auth, catalog, clock, config, db, money, operators, signing

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULT_CONFIG = EXAMPLES / "cabinet.toml"
# The demo's people: a staff card that buys on account, an operator (card + PIN).
STAFF_CARD = "04A1B2C3"
STAFF_NAME = "演示员工"
OPERATOR_CARD = "0A0B0C0D"
OPERATOR_NAME = "演示运维"
OPERATOR_PIN = "2468"


@dataclass
class Demo:
    """What the stages share: the configuration, the open database, where to print."""

    cfg: config.Config
    db_path: Path
    out: TextIO
    database: Database | None = None
    notes: list[str] = field(default_factory=list)

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    @property
    def dbh(self) -> Database:
        assert self.database is not None, "the database stage has not run"
        return self.database


def _fresh_database(demo: Demo) -> None:
    """Every demo run starts a new cabinet: yesterday's demo database is removed first."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{demo.db_path}{suffix}").unlink(missing_ok=True)
    demo.database = db.connect(demo.db_path)
    db.init(demo.database, demo.cfg)
    demo.say(f"database  {demo.db_path}  (schema version {db.schema_version(demo.dbh)})")


def _import_catalog(demo: Demo) -> None:
    path = demo.cfg.simulator.catalog or EXAMPLES / "catalog.json"
    cat = catalog.load_catalog_file(path)
    catalog.apply_catalog(demo.dbh, cat, source=str(path))
    demo.say(f"catalogue {path.name}: version {cat.version}, {len(cat.products)} products")


def _product_list(demo: Demo) -> None:
    listed = {p.product.sku: p for p in catalog.list_products(demo.dbh)}
    stock = demo.dbh.execute(
        "SELECT i.shelf, i.sku, i.count, g.door FROM inventory AS i"
        " JOIN planogram AS g USING (shelf, sku) ORDER BY g.door, i.shelf, i.sku"
    ).fetchall()
    demo.say()
    demo.say(f"{demo.cfg.cabinet.name or demo.cfg.cabinet.id} ({demo.cfg.cabinet.id})")
    header = ("门/层", "商品", "价格", "库存", "供应商", "帮扶户数")
    rows = []
    supported: dict[str, int] = {}
    for shelf, sku, count, _door in stock:
        p = listed.get(sku)
        if p is None:
            rows.append((shelf, f"{sku} (不在目录)", "-", str(count), "-", "-"))
            continue
        supported[p.supplier_zh] = p.households
        rows.append(
            (
                shelf,
                p.product.zh,
                money.yuan_sign(p.product.price_fen),
                str(count),
                p.supplier_zh,
                str(p.households),
            )
        )
    for line in table(header, rows, right={2, 3, 5}):
        demo.say(line)
    demo.say()
    demo.say(
        f"{len(rows)} lanes, {len(supported)} suppliers supporting "
        f"{sum(supported.values())} households"
    )


def _demo_people(demo: Demo) -> None:
    """Without a key file there are no card hashes to store: the stage says so and skips."""
    if demo.cfg.central.key_file is None:
        demo.say("no [central] key_file: no demo staff card or operator")
        return
    key = signing.load_key(demo.cfg.central.key_file)
    limit = demo.cfg.limits.card_offline_limit_fen
    with db.transaction(demo.dbh):
        auth.import_accounts(
            demo.dbh.conn,
            key,
            [auth.AccountRow(STAFF_CARD, STAFF_NAME, limit, "active")],
            clock.now_iso(),
        )
        operators.add(
            demo.dbh.conn,
            OPERATOR_NAME,
            signing.card_account(key, OPERATOR_CARD),
            OPERATOR_PIN,
            clock.now_iso(),
        )
    demo.say(
        f"staff card {STAFF_CARD} ({STAFF_NAME}, {money.yuan_sign(limit)} a day); "
        f"operator card {OPERATOR_CARD}, PIN {OPERATOR_PIN}"
    )


Stage = Callable[[Demo], None]
STAGES: list[tuple[str, Stage]] = [
    ("database", _fresh_database),
    ("catalogue", _import_catalog),
    ("product list", _product_list),
    ("demo people", _demo_people),
]


def run(config_path: Path = DEFAULT_CONFIG, out: TextIO = sys.stdout) -> int:
    cfg = config.load(config_path)
    demo = Demo(cfg=cfg, db_path=cfg.database, out=out)
    try:
        for _name, stage in STAGES:
            stage(demo)
    finally:
        if demo.database is not None:
            demo.database.close()
    return 0


# -- a table that lines up with Chinese text (wide characters take two columns) --------------
def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, cols: int, right: bool) -> str:
    gap = " " * max(0, cols - width(text))
    return gap + text if right else text + gap


def table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    cols = [max(width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(_pad(v, cols[i], i in right) for i, v in enumerate(r)).rstrip()  # noqa: E731
    return [fmt(header), "  ".join("-" * c for c in cols), *(fmt(r) for r in rows)]
