"""The database: pragmas, migrations (from every version, and failing ones), outbox, init,
status and the CSV export round trip. Real SQLite files in tmp_path."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import uuid

import pytest

from kiosk import catalog, cli, clock, config, db, ids


def pragma(database, name: str):
    return database.execute(f"PRAGMA {name}").fetchone()[0]


def test_pragmas_in_force_on_a_fresh_connection(db_path):
    db.open_db(db_path).close()
    fresh = db.connect(db_path)
    assert pragma(fresh, "journal_mode") == "wal"
    assert pragma(fresh, "synchronous") == 2  # FULL
    assert pragma(fresh, "foreign_keys") == 1
    assert pragma(fresh, "busy_timeout") == 5000


def test_foreign_keys_are_enforced_after_migrating(kdb):
    with pytest.raises(sqlite3.IntegrityError), db.transaction(kdb):
        kdb.execute(
            "INSERT INTO sale_items (sale, sku, qty, unit_price_fen, cert_no, supplier)"
            " VALUES ('no-such-sale', 'x', 1, 100, 'c', 's')"
        )


def test_migrate_from_empty_creates_every_table_of_the_schema(kdb):
    assert db.schema_version(kdb) == db.SCHEMA_VERSION == 3
    tables = set(db.user_tables(kdb))
    assert {"products", "price_history", "planogram", "inventory", "unit_weights"} <= tables
    assert {"sessions", "sales", "sale_items", "outbox", "inbound", "events"} <= tables
    assert {"accounts", "operators", "audit", "calibrations", "settings"} <= tables
    cols = [c.name for c in kdb["outbox"].columns]
    assert cols == ["seq", "id", "type", "at", "body", "state", "batch", "delivered_at", "why"]


def test_migrate_twice_changes_nothing(kdb):
    before = kdb.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert db.migrate(kdb) == 3
    assert kdb.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == before


def _put_data_of(database, version: int) -> None:
    """A row in a table of each migration already applied."""
    with db.transaction(database):
        if version >= 1:
            database.execute(
                "INSERT INTO inventory (shelf, sku, count, updated_at) VALUES ('S1','a',3,'t')"
            )
        if version >= 2:
            db.outbox_append(database, "event", {"v": version})
        if version >= 3:
            database.execute("INSERT INTO settings (key, value) VALUES ('k', 'v')")


@pytest.mark.parametrize("start", [0, 1, 2])
def test_migrate_from_every_earlier_version_keeps_data(db_path, start):
    old = db.connect(db_path)
    assert db.migrate(old, db.STEPS[:start]) == start
    _put_data_of(old, start)
    old.close()

    new = db.connect(db_path)
    assert db.migrate(new) == 3
    if start >= 1:
        assert new.execute("SELECT count FROM inventory").fetchall() == [(3,)]
    if start >= 2:
        assert json.loads(new.execute("SELECT body FROM outbox").fetchone()[0]) == {"v": 2}
    with db.transaction(new):  # the newest tables work
        db.outbox_append(new, "event", {})
        db.set_setting(new, "after", "migration")


def _broken(database) -> None:
    database.execute("CREATE TABLE half_done (x)")
    database.execute("ALTER TABLE products ADD COLUMN colour TEXT")
    database.execute("SELECT * FROM no_such_table")


def test_a_failing_migration_rolls_back_and_the_previous_schema_works(kdb):
    with pytest.raises(db.MigrationError, match="'broken' failed: no such table"):
        db.migrate(kdb, [*db.STEPS, ("broken", _broken)])
    assert db.schema_version(kdb) == 3
    assert "half_done" not in kdb.table_names()
    assert "colour" not in {c.name for c in kdb["products"].columns}
    assert not kdb.conn.in_transaction
    assert pragma(kdb, "foreign_keys") == 1
    with db.transaction(kdb):
        assert db.outbox_append(kdb, "event", {})[1] == 1


def test_a_migration_that_breaks_a_foreign_key_is_refused(kdb):
    def orphan(database) -> None:
        database.execute(
            "INSERT INTO sale_items (sale, sku, qty, unit_price_fen, cert_no, supplier)"
            " VALUES ('ghost', 'x', 1, 1, 'c', 's')"
        )

    with pytest.raises(db.MigrationError, match="broken foreign keys in sale_items"):
        db.migrate(kdb, [*db.STEPS, ("orphan", orphan)])
    assert kdb.execute("SELECT count(*) FROM sale_items").fetchone()[0] == 0
    assert db.schema_version(kdb) == 3


def test_outbox_seq_has_no_gap_after_a_rollback(kdb):
    with db.transaction(kdb):
        first = db.outbox_append(kdb, "sale", {"total_fen": 4500, "supplier": "忠锐农特产"})
    with pytest.raises(RuntimeError), db.transaction(kdb):
        db.outbox_append(kdb, "sale", {"total_fen": 1})
        raise RuntimeError("power cut before the receipt")
    with db.transaction(kdb):
        third = db.outbox_append(kdb, "event", {})
    assert (first[1], third[1]) == (1, 2)
    assert first[0] < third[0]  # uuid7 sorts by time
    body = kdb.execute("SELECT body FROM outbox WHERE seq = 1").fetchone()[0]
    assert body == '{"supplier":"忠锐农特产","total_fen":4500}'
    assert [r[0] for r in kdb.execute("SELECT state FROM outbox")] == ["pending", "pending"]


def test_outbox_append_outside_a_transaction_is_refused(kdb):
    with pytest.raises(RuntimeError, match="inside"):
        db.outbox_append(kdb, "event", {})


def test_a_nested_transaction_rolls_back_alone(kdb):
    with db.transaction(kdb):
        db.set_setting(kdb, "outer", "1")
        with pytest.raises(ValueError), db.transaction(kdb):
            db.set_setting(kdb, "inner", "1")
            raise ValueError
    assert db.get_setting(kdb, "outer") == "1"
    assert db.get_setting(kdb, "inner") is None


def test_a_second_writer_waits_for_the_first(db_path, kdb):
    other = db.connect(db_path)
    other.conn.execute("PRAGMA busy_timeout=50")  # keep the test short
    with db.transaction(kdb):
        db.set_setting(kdb, "a", "1")
        with pytest.raises(sqlite3.OperationalError, match="locked"), db.transaction(other):
            pass
    with db.transaction(other):
        db.set_setting(other, "b", "2")
    assert db.get_setting(kdb, "b") == "2"


def test_init_seeds_lanes_once_then_the_database_wins(db_path, example_config, capsys):
    args = ["db", "init", "--db", str(db_path), "--config", str(example_config)]
    assert cli.main(args) == 0
    database = db.connect(db_path)
    cfg = config.load(example_config)
    lanes = sum(len(s.lanes) for s in cfg.shelves)
    assert database.execute("SELECT count(*) FROM planogram").fetchone()[0] == lanes
    assert db.get_setting(database, "cabinet_id") == "QH-0001"
    assert db.get_setting(database, "timezone") == "Asia/Shanghai"
    assert db.get_setting(database, "key_file") == str(example_config.parent / "cabinet.key")
    with db.transaction(database):  # a restock after the first init
        database.execute("UPDATE inventory SET count = 99 WHERE sku = 'zr-rice-5kg'")
    assert cli.main(args) == 0
    assert "seeded before" in capsys.readouterr().out
    count = database.execute("SELECT count FROM inventory WHERE sku = 'zr-rice-5kg'")
    assert count.fetchone()[0] == 99
    assert database.execute("SELECT count(*) FROM planogram").fetchone()[0] == lanes


def test_status_json(db_path, example_config, example_catalog, capsys):
    cli.main(["db", "init", "--db", str(db_path), "--config", str(example_config)])
    cli.main(["catalog", "import", str(example_catalog), "--db", str(db_path)])
    capsys.readouterr()
    assert cli.main(["db", "status", "--db", str(db_path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["schema_version"], s["journal_mode"], s["synchronous"]) == (3, "wal", "full")
    assert s["tables"]["products"] == 18
    assert s["tables"]["planogram"] == 14
    assert s["tables"]["sales"] == 0


def test_status_of_a_missing_database_exits_2(tmp_path, capsys):
    assert cli.main(["db", "status", "--db", str(tmp_path / "none.db"), "--json"]) == 2
    assert "no such database" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_export_round_trip(db_path, tmp_path, example_config, example_catalog):
    database = db.connect(db_path)
    db.init(database, config.load(example_config))
    catalog.apply_catalog(database, catalog.load_catalog_file(example_catalog), "test")
    with db.transaction(database):
        database.execute(
            "INSERT INTO sessions (id, door, kind, method, state, started_at, baseline_json)"
            " VALUES ('s1', 'D1', 'sale', 'card', 'finished', '2026-01-01T00:00:00.000Z', '{}')"
        )
        database.execute(
            "INSERT INTO sales (id, session, door, opened_at, closed_at, total_fen, method,"
            " payment_status, confidence, review, created_at) VALUES ('x1', 's1', 'D1', 'a',"
            " 'b', 4500, 'card', 'captured', 0.5, 0, 'c')"
        )
        database.execute(
            "INSERT INTO sale_items VALUES ('x1', 'zr-rice-5kg', 1, 4500, 'FP-1', '忠锐')"
        )
        db.outbox_append(database, "sale", {"id": "x1", "note": 'a "quoted", comma'})
        db.set_setting(database, "empty", "")
        db.set_setting(database, "null", None)
        db.set_setting(database, "lines", 'one\ntwo, "three"')
    assert cli.main(["db", "export", "--db", str(db_path), "--csv", str(tmp_path / "csv")]) == 0
    files = sorted(p.stem for p in (tmp_path / "csv").glob("*.csv"))
    assert files == sorted(db.user_tables(database))

    with (tmp_path / "csv" / "products.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))  # what a spreadsheet sees
    assert len(rows) == 18
    assert {"sku": "zr-rice-5kg", "zh": "生态大米 5kg", "price_fen": "4500"}.items() <= next(
        r for r in rows if r["sku"] == "zr-rice-5kg"
    ).items()

    copy = db.open_db(tmp_path / "copy.db")
    db.import_csv(copy, tmp_path / "csv")
    for table in db.user_tables(database):
        q = f'SELECT * FROM "{table}" ORDER BY 1, 2'
        assert copy.execute(q).fetchall() == database.execute(q).fetchall(), table


def test_ids_are_uuid7_and_sort_in_creation_order():
    made = [ids.uuid7() for _ in range(2000)]  # many fall in one millisecond
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {uuid.UUID(m).version for m in made} == {7}


def test_times_are_fixed_width_utc_text():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", clock.now_iso())
    assert clock.normalize("2026-01-01T08:00:00+08:00") == "2026-01-01T00:00:00.000Z"
    with pytest.raises(ValueError):
        clock.parse("2026-01-01 noon")
