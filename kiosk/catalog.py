"""The product catalogue: the file format, its validation, and applying it to the database.

The same format arrives as a file (``kiosk catalog import``) and from the centre (the sync
agent calls ``parse_catalog`` then ``apply_catalog``). Validation lists every problem with its
path (list indexes count from 1, as in the configuration); applying is all or nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from kiosk import clock, contract
from kiosk.db import transaction
from kiosk.ids import uuid7
from kiosk.problems import Problems

SCHEMA = contract.CATALOG_SCHEMA
PRICE_RANGE = contract.CATALOG_PRICE  # fen: 0.01 .. 99,999.99 yuan
MAX_FILE_BYTES = 20_000_000  # a file may hold a large catalogue; messages down stop at 2 MB


class CatalogError(Problems):
    """A catalogue that cannot be applied; ``problems`` lists every reason."""


@dataclass(frozen=True)
class Category:
    id: str
    zh: str
    en: str


@dataclass(frozen=True)
class Supplier:
    id: str
    zh: str
    kind: str  # "enterprise", "cooperative", ...
    county: str
    town: str
    households: int  # poverty-alleviation households the supplier supports


@dataclass(frozen=True)
class Product:
    sku: str
    zh: str
    en: str
    category: str
    supplier: str
    cert_no: str
    price_fen: int
    unit_g: float
    unit_sd_g: float
    shelf_life_days: int | None
    fragile: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Catalog:
    version: int
    categories: tuple[Category, ...]
    suppliers: tuple[Supplier, ...]
    products: tuple[Product, ...]
    note: str = ""


@dataclass(frozen=True)
class ListedProduct:
    """A product in force, joined with what the screen and receipts show about it."""

    product: Product
    category_zh: str
    supplier_zh: str
    supplier_county: str
    supplier_town: str
    households: int
    catalog_version: int

    def to_dict(self) -> dict[str, Any]:
        d = self.product.to_dict()
        d.update(
            category_zh=self.category_zh,
            supplier_zh=self.supplier_zh,
            supplier_county=self.supplier_county,
            supplier_town=self.supplier_town,
            households=self.households,
            catalog_version=self.catalog_version,
        )
        return d


# -- validation: the contract's (kiosk.contract), shared with the centre ------------------------
def parse_catalog(obj: Any) -> Catalog:
    """Check a parsed catalogue document; raise ``CatalogError`` listing every problem.

    Unknown keys are refused, at every level, like in everything the centre sends down.
    """
    problems = contract.catalog_problems(obj)
    if problems:
        raise CatalogError(problems)
    return Catalog(
        version=obj["version"],
        categories=tuple(Category(**c) for c in obj["categories"]),
        suppliers=tuple(Supplier(**s) for s in obj["suppliers"]),
        products=tuple(
            Product(**{"shelf_life_days": None, "fragile": False, **p}) for p in obj["products"]
        ),
        note=obj.get("note", ""),
    )


def load_catalog_file(path: str | Path) -> Catalog:
    """Read and check a catalogue file (strict JSON: ``contract.loads``); problems are prefixed
    with the file's name."""
    path = Path(path)
    try:
        obj = contract.loads(path.read_bytes(), MAX_FILE_BYTES)
    except OSError as e:
        raise CatalogError([f"{path.name}: cannot read: {e.strerror}"]) from e
    except contract.ContractError as e:
        raise CatalogError([f"{path.name}: not valid JSON: {e}"]) from e
    try:
        return parse_catalog(obj)
    except CatalogError as e:
        raise CatalogError([f"{path.name}: {p}" for p in e.problems]) from None


# -- the database side ------------------------------------------------------------------------
def current_version(db: Database) -> int | None:
    """The catalogue version in force, or None before the first import."""
    row = db.execute("SELECT max(version) FROM catalog_versions").fetchone()
    return row[0]


def apply_catalog(db: Database, catalog: Catalog, source: str) -> int:
    """Make ``catalog`` the one in force, in one transaction (a savepoint inside a caller's).

    Refuses (``CatalogError``) a version not newer than the current one. Products missing from
    the new catalogue leave ``products``; every new or changed price gets a ``price_history``
    row valid from now, so sales of sessions started earlier keep their price.
    ``source`` says where it came from (a file path, ``central``...).
    """
    at = clock.now_iso()
    with transaction(db):
        current = current_version(db)
        if current is not None and catalog.version <= current:
            raise CatalogError(
                [f"version: {catalog.version} is not newer than the version in force ({current})"]
            )
        c = db.conn
        skus = [p.sku for p in catalog.products]
        marks = ",".join("?" for _ in skus)
        c.execute(f"DELETE FROM products WHERE sku NOT IN ({marks})", skus)
        c.executemany(
            "INSERT INTO categories (id, zh, en) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE"
            " SET zh = excluded.zh, en = excluded.en",
            [(k.id, k.zh, k.en) for k in catalog.categories],
        )
        c.executemany(
            "INSERT INTO suppliers (id, zh, kind, county, town, households)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET zh = excluded.zh,"
            " kind = excluded.kind, county = excluded.county, town = excluded.town,"
            " households = excluded.households",
            [(s.id, s.zh, s.kind, s.county, s.town, s.households) for s in catalog.suppliers],
        )
        last_price = dict(
            c.execute(
                "SELECT sku, price_fen FROM price_history AS h WHERE id = (SELECT id FROM"
                " price_history WHERE sku = h.sku ORDER BY valid_from DESC, id DESC LIMIT 1)"
            ).fetchall()
        )
        for p in catalog.products:
            c.execute(
                "INSERT INTO products (sku, zh, en, category, supplier, cert_no, price_fen,"
                " unit_g, unit_sd_g, shelf_life_days, fragile, catalog_version)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sku) DO UPDATE SET"
                " zh = excluded.zh, en = excluded.en, category = excluded.category,"
                " supplier = excluded.supplier, cert_no = excluded.cert_no,"
                " price_fen = excluded.price_fen, unit_g = excluded.unit_g,"
                " unit_sd_g = excluded.unit_sd_g, shelf_life_days = excluded.shelf_life_days,"
                " fragile = excluded.fragile, catalog_version = excluded.catalog_version",
                (
                    p.sku,
                    p.zh,
                    p.en,
                    p.category,
                    p.supplier,
                    p.cert_no,
                    p.price_fen,
                    p.unit_g,
                    p.unit_sd_g,
                    p.shelf_life_days,
                    int(p.fragile),
                    catalog.version,
                ),
            )
            if last_price.get(p.sku) != p.price_fen:
                c.execute(
                    "INSERT INTO price_history (id, sku, price_fen, catalog_version, valid_from)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (uuid7(), p.sku, p.price_fen, catalog.version, at),
                )
        # Categories and suppliers the new catalogue dropped (nothing references them now).
        for table, ids in (
            ("categories", [k.id for k in catalog.categories]),
            ("suppliers", [s.id for s in catalog.suppliers]),
        ):
            marks = ",".join("?" for _ in ids)
            c.execute(f"DELETE FROM {table} WHERE id NOT IN ({marks})", ids)
        c.execute(
            "INSERT INTO catalog_versions (version, applied_at, source, note) VALUES (?, ?, ?, ?)",
            (catalog.version, at, source, catalog.note),
        )
    return catalog.version


def _product(row: tuple) -> Product:
    sku, zh, en, category, supplier, cert_no, price, unit_g, sd_g, life, fragile = row
    return Product(
        sku, zh, en, category, supplier, cert_no, price, unit_g, sd_g, life, bool(fragile)
    )


_PRODUCT_COLS = (
    "p.sku, p.zh, p.en, p.category, p.supplier, p.cert_no, p.price_fen, p.unit_g,"
    " p.unit_sd_g, p.shelf_life_days, p.fragile"
)


def products(db: Database) -> list[Product]:
    """The products in force, by sku."""
    rows = db.execute(f"SELECT {_PRODUCT_COLS} FROM products AS p ORDER BY p.sku").fetchall()
    return [_product(r) for r in rows]


def get_product(db: Database, sku: str) -> Product | None:
    row = db.execute(
        f"SELECT {_PRODUCT_COLS} FROM products AS p WHERE p.sku = ?", (sku,)
    ).fetchone()
    return None if row is None else _product(row)


def list_products(db: Database) -> list[ListedProduct]:
    """The products in force with their category and supplier names, by sku."""
    rows = db.execute(
        f"SELECT {_PRODUCT_COLS}, c.zh, s.zh, s.county, s.town, s.households,"
        " p.catalog_version FROM products AS p JOIN categories AS c ON c.id = p.category"
        " JOIN suppliers AS s ON s.id = p.supplier ORDER BY p.sku"
    ).fetchall()
    return [ListedProduct(_product(r[:11]), *r[11:]) for r in rows]


def suppliers(db: Database) -> list[Supplier]:
    rows = db.execute(
        "SELECT id, zh, kind, county, town, households FROM suppliers ORDER BY id"
    ).fetchall()
    return [Supplier(*r) for r in rows]


def price_at(db: Database, sku: str, at_iso: str) -> int:
    """The price of ``sku`` in force at ``at_iso``: the newest price_history row valid by then.

    Raises ``LookupError`` when the product had no price yet at that time.
    """
    at = clock.normalize(at_iso)  # stored times are fixed-width text: compare like with like
    row = db.execute(
        "SELECT price_fen FROM price_history WHERE sku = ? AND valid_from <= ?"
        " ORDER BY valid_from DESC, id DESC LIMIT 1",
        (sku, at),
    ).fetchone()
    if row is None:
        raise LookupError(f"{sku!r} had no price at {at}")
    return row[0]


def set_price(db: Database, sku: str, price_fen: int, valid_from: str | None = None) -> None:
    """Change one product's price (the centre's ``set_price`` command), from now on.

    Prices of sessions already started are not touched: their ``started_at`` is earlier.
    """
    if why := contract.check_catalog_price(price_fen):
        raise CatalogError([f"price_fen: {why}"])
    at = clock.normalize(valid_from) if valid_from else clock.now_iso()
    with transaction(db):
        row = db.conn.execute("SELECT catalog_version FROM products WHERE sku = ?", (sku,))
        found = row.fetchone()
        if found is None:
            raise CatalogError([f"sku: {sku!r} is not a product in force"])
        db.conn.execute("UPDATE products SET price_fen = ? WHERE sku = ?", (price_fen, sku))
        db.conn.execute(
            "INSERT INTO price_history (id, sku, price_fen, catalog_version, valid_from)"
            " VALUES (?, ?, ?, ?, ?)",
            (uuid7(), sku, price_fen, found[0], at),
        )
