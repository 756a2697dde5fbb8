"""Catalogue files: every problem listed with its path, applied whole or not at all, versions
only move forward, prices kept in history so a sale is priced as of its session's start."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from kiosk import catalog, cli, db

FIELDS = {
    "sku", "zh", "en", "category", "supplier", "cert_no", "price_fen", "unit_g", "unit_sd_g",
    "shelf_life_days", "fragile",
}  # fmt: skip


@pytest.fixture
def sample(example_catalog) -> dict:
    return json.loads(example_catalog.read_text(encoding="utf-8"))


def write(tmp_path: Path, obj: dict, name: str = "catalog.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def snapshot(database) -> dict[str, list]:
    return {
        t: database.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall()
        for t in ("categories", "suppliers", "products", "price_history", "catalog_versions")
    }


def test_the_sample_parses(sample):
    cat = catalog.parse_catalog(sample)
    assert cat.version == 1
    assert len(cat.products) == 18
    rice = next(p for p in cat.products if p.sku == "zr-rice-5kg")
    assert (rice.price_fen, rice.unit_g, rice.supplier, rice.fragile) == (
        4500,
        5020,
        "zr-agri",
        False,
    )


def test_import_then_list_json_has_every_field_of_the_file(
    sample, example_catalog, db_path, capsys
):
    assert cli.main(["catalog", "import", str(example_catalog), "--db", str(db_path)]) == 0
    capsys.readouterr()
    assert cli.main(["catalog", "list", "--db", str(db_path), "--json"]) == 0
    listed = {p["sku"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed.keys() == {p["sku"] for p in sample["products"]}
    for p in sample["products"]:
        assert {k: listed[p["sku"]][k] for k in FIELDS} == p
    assert listed["zr-rice-5kg"]["supplier_zh"] == "忠锐农特产"
    assert listed["zr-rice-5kg"]["households"] == 212


def _edit(sample: dict, path: str, value) -> dict:
    """Set ``products[3].price_fen`` style paths (indexes from 1) in a copy; DELETE removes."""
    doc = copy.deepcopy(sample)
    *parents, last = path.replace("]", "").replace("[", ".").split(".")
    node = doc
    for key in parents:
        node = node[int(key) - 1] if key.isdigit() else node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


DELETE = object()
BAD = [
    ("products.3.price_fen", 0, "products[3].price_fen: 0 is outside 1..9999999"),
    ("products.3.price_fen", 10_000_000, "products[3].price_fen: 10000000 is outside 1..9999999"),
    ("products.3.price_fen", 45.5, "products[3].price_fen: must be an integer, not 45.5"),
    ("products.1.unit_g", 0, "products[1].unit_g: 0 must be greater than 0"),
    ("products.1.unit_sd_g", -1, "products[1].unit_sd_g: -1 must not be negative"),
    ("products.2.cert_no", "", "products[2].cert_no: must not be empty"),
    ("products.2.cert_no", DELETE, "products[2].cert_no: missing"),
    ("products.2.shelf_life_days", 1.5, "products[2].shelf_life_days: must be an integer, not 1.5"),
    ("products.2.fragile", "yes", "products[2].fragile: must be true or false, not 'yes'"),
    ("products.4.category", "toys", "products[4].category: 'toys' is not in categories"),
    ("products.4.supplier", "acme", "products[4].supplier: 'acme' is not in suppliers"),
    ("products.2.sku", "zr-rice-5kg", "products[2].sku: 'zr-rice-5kg' is already products[1]"),
    ("suppliers.1.households", -3, "suppliers[1].households: -3 must be at least 0"),
    ("version", 0, "version: 0 must be at least 1"),
    ("version", DELETE, "version: missing"),
    ("schema", "kiosk.catalog/9", "schema: 'kiosk.catalog/9' is not 'kiosk.catalog/1'"),
    ("products", [], "products: must be a non-empty list"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[b[2] for b in BAD])
def test_each_bad_catalogue_has_its_exact_message(sample, path, value, message):
    with pytest.raises(catalog.CatalogError) as e:
        catalog.parse_catalog(_edit(sample, path, value))
    assert e.value.problems == [message]


def test_a_null_shelf_life_is_allowed(sample):
    cat = catalog.parse_catalog(_edit(sample, "products.1.shelf_life_days", None))
    assert cat.products[0].shelf_life_days is None


def test_every_problem_is_listed_with_the_file_name(sample, tmp_path):
    doc = _edit(sample, "products.3.price_fen", 0)
    doc = _edit(doc, "products.5.unit_g", -2)
    doc = _edit(doc, "products.7.supplier", "nobody")
    with pytest.raises(catalog.CatalogError) as e:
        catalog.load_catalog_file(write(tmp_path, doc, "bad.json"))
    assert e.value.problems == [
        "bad.json: products[3].price_fen: 0 is outside 1..9999999",
        "bad.json: products[5].unit_g: -2 must be greater than 0",
        "bad.json: products[7].supplier: 'nobody' is not in suppliers",
    ]


def test_not_json(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(catalog.CatalogError, match=r"c\.json: not valid JSON"):
        catalog.load_catalog_file(path)


def test_a_bad_file_changes_nothing_and_exits_2(sample, example_catalog, tmp_path, db_path, capsys):
    assert cli.main(["catalog", "import", str(example_catalog), "--db", str(db_path)]) == 0
    database = db.connect(db_path)
    before = snapshot(database)
    doc = _edit(_edit(sample, "version", 2), "products.3.price_fen", 0)
    doc = _edit(doc, "products.1.price_fen", 9999)  # a valid change in the same bad file
    capsys.readouterr()
    assert cli.main(["catalog", "import", str(write(tmp_path, doc)), "--db", str(db_path)]) == 2
    assert (
        capsys.readouterr().err == "catalog.json: products[3].price_fen: 0 is outside 1..9999999\n"
    )
    assert snapshot(database) == before


def test_a_version_not_newer_is_refused(sample, kdb):
    catalog.apply_catalog(kdb, catalog.parse_catalog(_edit(sample, "version", 5)), "test")
    before = snapshot(kdb)
    for version in (5, 4):
        newer_prices = _edit(_edit(sample, "version", version), "products.1.price_fen", 1)
        with pytest.raises(catalog.CatalogError, match="not newer than the version in force"):
            catalog.apply_catalog(kdb, catalog.parse_catalog(newer_prices), "test")
    assert snapshot(kdb) == before
    assert catalog.current_version(kdb) == 5


def test_a_failure_while_applying_rolls_everything_back(sample, kdb):
    catalog.apply_catalog(kdb, catalog.parse_catalog(sample), "test")
    before = snapshot(kdb)
    kdb.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON catalog_versions BEGIN"
        " SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(Exception, match="disk full"):
        doc = _edit(_edit(sample, "version", 2), "products.1.price_fen", 1)
        catalog.apply_catalog(kdb, catalog.parse_catalog(doc), "test")
    assert snapshot(kdb) == before


def test_a_new_version_replaces_products_and_keeps_price_history(sample, kdb):
    catalog.apply_catalog(kdb, catalog.parse_catalog(sample), "file")
    v1_time = kdb.execute("SELECT applied_at FROM catalog_versions").fetchone()[0]
    doc = _edit(sample, "version", 2)
    doc = _edit(doc, "products.1.price_fen", 4800)  # zr-rice-5kg dearer
    dropped = doc["products"].pop()["sku"]
    doc["categories"] = [c for c in doc["categories"] if c["id"] != "crafts-green"]
    doc["products"] = [p for p in doc["products"] if p["category"] != "crafts-green"]
    catalog.apply_catalog(kdb, catalog.parse_catalog(doc), "central")

    skus = {p.sku for p in catalog.products(kdb)}
    assert dropped not in skus
    assert skus == {p["sku"] for p in doc["products"]}
    assert "crafts-green" not in {r[0] for r in kdb.execute("SELECT id FROM categories")}
    assert catalog.get_product(kdb, "zr-rice-5kg").price_fen == 4800
    assert catalog.current_version(kdb) == 2
    rows = kdb.execute("SELECT price_fen, catalog_version FROM price_history WHERE sku = ?",
                       ("zr-rice-5kg",)).fetchall()  # fmt: skip
    assert sorted(rows) == [(4500, 1), (4800, 2)]
    # unchanged prices get no new row
    assert kdb.execute("SELECT count(*) FROM price_history").fetchone()[0] == 18 + 1
    assert catalog.price_at(kdb, "zr-rice-5kg", v1_time) == 4500
    assert catalog.price_at(kdb, "zr-rice-5kg", "2999-01-01T00:00:00Z") == 4800


def test_price_at_uses_the_newest_row_valid_by_then(sample, kdb):
    catalog.apply_catalog(kdb, catalog.parse_catalog(sample), "file")
    catalog.set_price(kdb, "hs-honey-500g", 7200, valid_from="2030-01-01T00:00:00.000Z")
    assert catalog.price_at(kdb, "hs-honey-500g", "2029-12-31T23:59:59.999Z") == 6800
    assert catalog.price_at(kdb, "hs-honey-500g", "2030-01-01T00:00:00Z") == 7200
    # another offset, same moment: 08:00 in Shanghai is midnight UTC
    assert catalog.price_at(kdb, "hs-honey-500g", "2030-01-01T08:00:00+08:00") == 7200
    with pytest.raises(LookupError):
        catalog.price_at(kdb, "hs-honey-500g", "2000-01-01T00:00:00Z")
    with pytest.raises(catalog.CatalogError, match="not a product"):
        catalog.set_price(kdb, "nothing", 100)


def test_apply_inside_a_callers_transaction_rolls_back_with_it(sample, kdb):
    with pytest.raises(RuntimeError), db.transaction(kdb):
        catalog.apply_catalog(kdb, catalog.parse_catalog(sample), "central")
        raise RuntimeError("the inbound row could not be marked")
    assert catalog.current_version(kdb) is None
    assert catalog.products(kdb) == []
