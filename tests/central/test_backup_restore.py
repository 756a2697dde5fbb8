"""A province's disaster drill, on SQLite and PostgreSQL: back up a running centre while a
cabinet's sales flow in, lose the centre, restore the backup somewhere new, and have the
cabinet send everything again. The restored centre ends with every sale exactly once (the
resent ones counted as duplicates), including those stored after the backup point.

Real parts: mosquitto, the central service (Store + MQTT ingest) on a real SQLite file or a
PostgreSQL 15 database, ``kiosk sync`` as a process, pg_dump / pg_restore.
"""

from __future__ import annotations

import argparse
import itertools
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from central import backup_cli
from central import cli as central_cli
from central import schema as t
from central.keyring import new_master_key
from central.service import CentralService, ServiceError
from central.store import Store
from tests.sync.conftest import (
    CABINET,
    Broker,
    SyncProc,
    add_sales,
    cabinet_counts,
    wait_for,
)

PRICE_FEN = 4500
_restored = itertools.count(1)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``kiosk central backup|restore ...`` as ``central.cli.main`` runs it: exit code, out, err."""
    p = central_cli.build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    if "backup" not in sub.choices:  # until central/cli.py adds them (test_central_docs checks)
        backup_cli.add_cli(sub)
    args = p.parse_args(list(argv))
    try:
        code = int(args.handler(args) or 0)
    except central_cli.UsageError as e:
        print(f"kiosk central: {e}", file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


def new_place(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Somewhere the backup was not made: a new SQLite file, or a new empty PG database."""
    if "://" not in db_url:
        (tmp_path / "elsewhere").mkdir()
        return str(tmp_path / "elsewhere" / "central.db")
    return request.getfixturevalue("pg_cluster").create_database(f"restored{next(_restored)}")


def provision(db: str, tmp_path: Path, keyfile: Path) -> Path:
    """``kiosk central cabinet add``: the cabinet's key sealed in the database under a new
    master key; the cabinet gets the key file. Returns the master key's file."""
    master = new_master_key(tmp_path / "etc" / "master.key")
    out = tmp_path / "issued"
    code = central_cli.main(
        [
            "cabinet", "add", CABINET, "--name", "Drill", "--location", "Lab",
            "--out", str(out), "--db", db, "--master-key", str(master),
            "--broker-dir", str(tmp_path / "broker"),
        ]
    )  # fmt: skip
    assert code == 0
    keyfile.write_bytes((out / f"{CABINET}.key").read_bytes())
    return master


def centre(db: str, broker: Broker, master: Path) -> CentralService:
    c = CentralService(db, mqtt_url=broker.url, master_key=master).start()
    assert c.wait_mqtt(), "the centre's MQTT clients did not connect"
    return c


def sales_at(c: CentralService) -> int:
    return c.store.stats().sales


def resend_everything(cabinet_db: Path) -> int:
    """What docs/central.md tells a cabinet to do after a restore: delivered records back to
    pending (the agent stopped meanwhile)."""
    conn = sqlite3.connect(cabinet_db)
    with conn:
        n = conn.execute(
            "UPDATE outbox SET state = 'pending', batch = NULL, delivered_at = NULL "
            "WHERE state = 'delivered'"
        ).rowcount
    conn.close()
    return n


def cabinet_sale_ids(cabinet_db: Path) -> set[str]:
    conn = sqlite3.connect(cabinet_db)
    ids = {r[0] for r in conn.execute("SELECT id FROM outbox WHERE type = 'sale'")}
    conn.close()
    return ids


def money_and_lines(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.sale_lines.c.amount_fen), 0))
        ).one()
    return int(row[0]), int(row[1])


def test_a_restored_centre_takes_the_cabinets_resend_without_doubling(
    db_url: str,
    tmp_path: Path,
    broker: Broker,
    cabinet_db: Path,
    keyfile: Path,
    sync_proc: Callable[..., SyncProc],
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backup_file = tmp_path / "centre.backup"
    master = provision(db_url, tmp_path, keyfile)
    capsys.readouterr()  # what `cabinet add` printed
    first = centre(db_url, broker, master)
    try:
        add_sales(cabinet_db, 10, 0, PRICE_FEN)
        agent = sync_proc(mqtt=broker.url)
        wait_for(lambda: sales_at(first) == 10, 20, "the first 10 sales at the centre")
        # Backed up while the agent delivers the next 10 (the backup may hold some of them).
        add_sales(cabinet_db, 10, 10, PRICE_FEN)
        code, out, err = cli(capsys, "backup", "--db", db_url, "--out", str(backup_file))
        assert code == 0, err
        # ...and 10 more after the backup point: only the cabinet's resend can bring these.
        add_sales(cabinet_db, 10, 20, PRICE_FEN)
        wait_for(lambda: sales_at(first) == 30, 20, "all 30 sales at the first centre")
        wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 20, "all acked")
        agent.stop()
    finally:
        first.stop()
    assert out.startswith("backup: ") and str(backup_file) in out
    in_backup = int(out.split(" records, ")[1].split(" sales")[0])
    assert 10 <= in_backup <= 20, out

    # The centre is gone; its backup is restored somewhere new.
    place = new_place(db_url, tmp_path, request)
    code, out, err = cli(capsys, "restore", "--from", str(backup_file), "--db", place)
    assert code == 0, err
    assert f" {in_backup} sales" in out, out

    # The cabinet's key is in the backup, sealed: only the same master key opens it.
    with pytest.raises(ServiceError, match="master key"):
        CentralService(place, master_key=new_master_key(tmp_path / "other.key"))
    second = centre(place, broker, master)
    try:
        restored = second.store.stats()
        assert restored.sales == in_backup
        assert resend_everything(cabinet_db) >= 30
        sync_proc(mqtt=broker.url)
        wait_for(lambda: sales_at(second) == 30, 20, "the resent sales at the restored centre")
        wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 20, "all acked")
        got = second.store.stats()
        sales = second.store.records(CABINET, "sale")
        lines, money = money_and_lines(second.store)
    finally:
        second.stop()
    assert {r["id"] for r in sales} == cabinet_sale_ids(cabinet_db)
    assert len(sales) == got.sales == 30
    assert (lines, money) == (30, 30 * PRICE_FEN)  # the programme's figures: nothing twice
    # Every sale the backup held came again and was counted as a duplicate, not stored.
    assert got.duplicates - restored.duplicates >= in_backup


def test_nothing_is_overwritten(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup_file = tmp_path / "centre.backup"
    code, _, err = cli(capsys, "backup", "--db", db_url, "--out", str(backup_file))
    assert code == 0, err
    before = backup_file.read_bytes()
    code, _, err = cli(capsys, "backup", "--db", db_url, "--out", str(backup_file))
    assert code == 2 and "exists" in err and len(err.strip().splitlines()) == 1, err
    assert backup_file.read_bytes() == before
    # Restoring over the centre's own database (a file there, tables in it) is refused.
    code, _, err = cli(capsys, "restore", "--from", str(backup_file), "--db", db_url)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "new file" in err or "empty database" in err
    # A backup of one backend does not restore into the other.
    other = (
        "postgresql://nobody@127.0.0.1:1/none" if "://" not in db_url else str(tmp_path / "x.db")
    )
    code, _, err = cli(capsys, "restore", "--from", str(backup_file), "--db", other)
    assert code == 2 and "restore it into" in err, err
    # Not a backup at all.
    junk = tmp_path / "junk"
    junk.write_text("hello\n")
    code, _, err = cli(capsys, "restore", "--from", str(junk), "--db", str(tmp_path / "y.db"))
    assert code == 2 and "not a backup" in err, err
    assert not (tmp_path / "y.db").exists()
