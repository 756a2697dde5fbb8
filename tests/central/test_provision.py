"""Provisioning without a broker: keys sealed at rest, rotated with a grace period, retired
with the records kept; the files ``kiosk central cabinet add`` writes; the master key checked
at start (missing or wrong: one line, exit 2)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from central import broker_files
from central.broker_files import CENTRE_USER, BrokerFiles, check_password, mqtt_password
from central.keyring import DEFAULT_PATH, Keyring, load_master_key, new_master_key
from central.mqtt_url import parse_mqtt_url
from central.service import CentralService, ServiceError, with_login
from central.store import Store
from kiosk import clock, config, contract, signing, wire
from tests.central.test_broker_tls import central
from tests.sync.conftest import ROOT, sale_body

KEY = bytes(range(32))


def _cabinet_rows(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM cabinets"))]


def _store_sale(store: Store, cabinet: str) -> str:
    rid = f"{cabinet}-r1"
    rec = wire.record_json(wire.Record(rid, 1, "sale", wire.now_iso(), json.dumps(sale_body(1))))
    raw = wire.batch_json(wire.uuid7(), [rec])
    digest = hashlib.sha256(raw).hexdigest()
    [answer] = store.store_batches([(cabinet, contract.decode_batch(raw), digest)])
    assert answer.stored == (rid,)
    return rid


def test_a_key_sealed_rotated_and_retired(store: Store) -> None:
    store.keyring = Keyring(os.urandom(32))
    new = bytes(range(100, 132))
    store.provision_cabinet("QH-0001", KEY, "人民医院专柜", "琼海", "R1")
    [row] = _cabinet_rows(store)
    assert row["key_hex"] is None and KEY.hex() not in str(row)  # sealed: nowhere in clear
    assert store.key("QH-0001") == KEY and store.verify_keys("QH-0001") == (KEY,)
    assert store.cabinet("QH-0001")["route"] == "R1"
    with pytest.raises(ValueError, match="already provisioned"):
        store.provision_cabinet("QH-0001", new)
    with pytest.raises(ValueError, match="is provisioned"):
        store.hold_keys({"QH-0001": KEY})  # --cabinet cannot override a sealed key

    now = clock.now()
    until = store.rotate_key("QH-0001", new, grace_s=3600, now=now)
    assert until == now + timedelta(hours=1)
    assert store.verify_keys("QH-0001", at=now) == (new, KEY)  # both, the new one first
    assert store.verify_keys("QH-0001", at=now + timedelta(hours=1)) == (new,)  # grace over
    assert store.key("QH-0001") == new  # what the centre signs with
    message = store.put_downlink("QH-0001", "config", {"door_open_alarm_s": 90})
    assert signing.verify_message(new, message)

    rid = _store_sale(store, "QH-0001")
    store.retire_cabinet("QH-0001")
    assert store.verify_keys("QH-0001") == () and store.key("QH-0001") is None
    assert store.keys() == {} and store.provisioned() == []
    assert [r["id"] for r in store.records("QH-0001")] == [rid]  # the records are kept
    assert store.cabinet("QH-0001")["retired_at"] is not None
    [row] = _cabinet_rows(store)
    assert row["key_sealed"] is None and row["prev_key_sealed"] is None
    with pytest.raises(KeyError, match="retired cabinet"):
        store.put_downlink("QH-0001", "config", {"door_open_alarm_s": 90})
    with pytest.raises(ValueError, match="retired"):
        store.provision_cabinet("QH-0001", KEY)  # its id is never given to another
    with pytest.raises(KeyError):
        store.rotate_key("QH-0001", KEY, 0)


def test_keys_given_on_the_command_line_are_held_in_memory_only(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    with CentralService(db, {"QH-0001": KEY}) as service:
        assert service.store.key("QH-0001") == KEY
    store = Store(db)
    try:
        [row] = _cabinet_rows(store)
        assert row["id"] == "QH-0001" and row["key_hex"] is None and row["key_sealed"] is None
        assert store.key("QH-0001") is None  # another process does not know it
    finally:
        store.close()


def test_cabinet_add_writes_the_cabinets_files_and_the_brokers(tmp_path: Path) -> None:
    master = new_master_key(tmp_path / "master.key")
    out, broker = tmp_path / "out", BrokerFiles(tmp_path / "broker")
    common = ["--db", str(tmp_path / "c.db"), "--master-key", str(master)]
    common += ["--broker-dir", str(broker.folder)]

    def add(cab: str, *more: str) -> tuple[int, str, str]:
        argv = ["cabinet", "add", cab, "--name", "人民医院", "--location", "琼海", *more]
        return central(*argv, "--out", str(out), *common)

    code, section, err = add("QH-0001", "--route", "R1", "--cabinet-mqtt", "mqtts://b:8883")
    assert code == 0, err
    assert "systemctl reload mosquitto" in err  # no --broker-pid-file: says what to run
    assert add("QH-0002")[0] == 0
    for name in ("QH-0001.key", "QH-0001.mqtt-password"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600

    # The printed section is the cabinet's [central]: its configuration loads with it.
    cab = tmp_path / "cabinet"
    cab.mkdir()
    text = (ROOT / "examples" / "cabinet.toml").read_text(encoding="utf-8")
    head, _, rest = text.partition("[central]")
    toml = head + section.split("\n", 1)[1] + rest[rest.index("\n[") :]
    (cab / "cabinet.toml").write_text(toml, encoding="utf-8")
    for name in ("QH-0001.key", "QH-0001.mqtt-password"):
        shutil.copy(out / name, cab / name)
    cfg = config.load(cab / "cabinet.toml")
    assert cfg.central.mqtt == "mqtts://b:8883" and cfg.central.mqtt_username == "kiosk-QH-0001"
    assert cfg.central.mqtt_password_file == cab / "QH-0001.mqtt-password"
    assert cfg.central.key_file == cab / "QH-0001.key" and cfg.central.ca_file == cab / "ca.crt"

    # The broker's files: each login's password checks; each cabinet only its own topics.
    password = (out / "QH-0001.mqtt-password").read_text().strip()
    users = dict(line.split(":", 1) for line in broker.cabinets_passwd.read_text().splitlines())
    assert sorted(users) == ["kiosk-QH-0001", "kiosk-QH-0002"]
    assert check_password(users["kiosk-QH-0001"], password)
    assert not check_password(users["kiosk-QH-0002"], password)
    [(user, line)] = [x.split(":", 1) for x in broker.centre_passwd.read_text().splitlines()]
    assert user == CENTRE_USER
    assert check_password(line, mqtt_password(load_master_key(master), CENTRE_USER))
    acl = broker.cabinets_acl.read_text()
    block = acl[acl.index("user kiosk-QH-0001") :].split("\n\n")[0].splitlines()
    assert block == [
        "user kiosk-QH-0001",
        "topic write kiosk/v1/QH-0001/up",
        "topic write kiosk/v1/QH-0001/status",
        "topic read kiosk/v1/QH-0001/ack",
        "topic read kiosk/v1/QH-0001/down/#",
    ]

    code, _, err = central("cabinet", "retire", "QH-0002", *common)
    assert code == 0, err
    assert "kiosk-QH-0002" not in broker.cabinets_passwd.read_text()
    assert "QH-0002" not in broker.cabinets_acl.read_text()
    code, listing, _ = central("cabinet", "list", *common[:4])
    assert re.search(r"QH-0001\tin service\tbroker login", listing)
    assert re.search(r"QH-0002\tretired \S+\tno broker login", listing)


BAD = [
    (["cabinet", "add", "QH 9", "--name", "n", "--location", "l"], "is not a cabinet id"),
    (["cabinet", "add", "QH-0001", "--name", "n", "--location", "l"], "already provisioned"),
    (["cabinet", "add", "QH-0002", "--name", "n", "--location", "l"], "was retired"),
    (["cabinet", "add", "QH-0003", "--name", "n\nx", "--location", "l"], "on one line"),
    (["cabinet", "rotate-key", "QH-0009"], "no cabinet 'QH-0009' in service"),
    (["cabinet", "rotate-key", "QH-0001", "--grace-days", "-1"], "not negative"),
    (["cabinet", "retire", "QH-0002"], "retired already"),
    (["cabinet", "retire", "QH-0009"], "no cabinet 'QH-0009'"),
]


def test_bad_provisioning_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    master = new_master_key(tmp_path / "master.key")
    common = ["--db", str(tmp_path / "c.db"), "--master-key", str(master)]
    common += ["--broker-dir", str(tmp_path / "broker")]
    out = ["--out", str(tmp_path / "out")]
    for cab in ("QH-0001", "QH-0002"):
        assert (
            central("cabinet", "add", cab, "--name", "n", "--location", "l", *common, *out)[0] == 0
        )
    assert central("cabinet", "retire", "QH-0002", *common)[0] == 0
    store = Store(tmp_path / "c.db")
    before = _cabinet_rows(store)
    broker = {p: p.read_bytes() for p in (tmp_path / "broker").iterdir()}
    for argv, why in BAD:
        more = ["--out", str(tmp_path / "out2")] if argv[1] != "retire" else []
        code, printed, err = central(*argv, *common, *more)
        assert code == 2 and printed == "", argv
        assert len(err.splitlines()) == 1 and why in err, err
        assert _cabinet_rows(store) == before
        assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").iterdir())
        assert {p: p.read_bytes() for p in (tmp_path / "broker").iterdir()} == broker
    store.close()


def test_a_missing_or_wrong_master_key_stops_everything_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    master = new_master_key(tmp_path / "master.key")
    base = ["--db", str(db), "--broker-dir", str(tmp_path / "broker")]
    add = ["cabinet", "add", "QH-0001", "--name", "n", "--location", "l", "--out", str(tmp_path)]
    assert central(*add, *base, "--master-key", str(master))[0] == 0
    wrong = tmp_path / "wrong.key"
    wrong.write_text(os.urandom(32).hex() + "\n")

    # The service, as the operator starts it: exit 2, one line naming the file.
    serve = [sys.executable, "-m", "kiosk", "central", "--db", str(db), "--http", "127.0.0.1:0"]
    cases = [(["--master-key", str(wrong)], "does not open with this master key")]
    if not DEFAULT_PATH.exists():  # sealed keys and no --master-key: the default path is read
        cases.append(([], f"{DEFAULT_PATH}: no such file"))
    for more, why in cases:
        done = subprocess.run([*serve, *more], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stdout == ""
        [line] = done.stderr.splitlines()
        assert line.startswith("kiosk central: master key ") and why in line, line

    # In process, the same (a ServiceError); and a wrong key seals nothing new.
    with pytest.raises(ServiceError, match="does not open"):
        CentralService(db, master_key=wrong)
    with pytest.raises(ServiceError, match=r"none\.key: no such file .*master-key new"):
        CentralService(db, master_key=tmp_path / "none.key")
    code, _, err = central(*add[:2], "QH-0002", *add[3:], *base, "--master-key", str(wrong))
    assert code == 2 and "does not open" in err
    store = Store(db)
    assert [r["id"] for r in store.cabinets()] == ["QH-0001"]
    store.close()
    # The right one: the service starts, knows the cabinet, and logs in as the centre.
    with CentralService(db, master_key=master) as service:
        assert service.store.key("QH-0001") is not None
    assert broker_files.username("QH-0001") == "kiosk-QH-0001"


def test_the_centres_broker_login() -> None:
    master = os.urandom(32)
    derived = mqtt_password(master, CENTRE_USER)
    assert derived != mqtt_password(os.urandom(32), CENTRE_USER)  # another centre, another
    assert derived != mqtt_password(master, "kiosk-QH-0001")
    url = with_login("mqtts://broker:8884", master_key=master)
    assert parse_mqtt_url(url) == parse_mqtt_url(f"mqtts://{CENTRE_USER}:{derived}@broker:8884")
    given = parse_mqtt_url(with_login("mqtt://[::1]:1883", ("svc", "p@ss:/w"), master))
    assert (given.host, given.username, given.password) == ("::1", "svc", "p@ss:/w")
    assert with_login("mqtt://u:p@h:1") == "mqtt://u:p@h:1"  # the URL's own login stays
    assert with_login("mqtt://h:1") == "mqtt://h:1"  # no master key, no login: anonymous
    code, _, err = central("ingest", "--db", "x.db", "--mqtt", "mqtt://h:1", "--mqtt-username", "u")
    assert code == 2 and err.splitlines() == [
        "kiosk central: --mqtt-username and --mqtt-password-file go together"
    ]


def test_staff_cards_are_sent_again_hashed_with_a_new_or_rotated_key(tmp_path: Path) -> None:
    """A cabinet knows a staff card by its hash under the cabinet's own key: after a rotation,
    and for a cabinet added after the cards, the accounts list is made with the new key."""
    from central import staff

    master = new_master_key(tmp_path / "master.key")
    out = tmp_path / "out"
    common = ["--db", str(tmp_path / "c.db"), "--master-key", str(master), "--out", str(out)]
    common += ["--broker-dir", str(tmp_path / "broker")]
    add = ["cabinet", "add", "QH-0001", "--name", "n", "--location", "l"]
    assert central(*add, *common)[0] == 0
    cards = tmp_path / "cards.csv"
    cards.write_text("card,name,offline_limit_fen,status\n04a1b2c3d4,王丽,20000,active\n")
    store = Store(tmp_path / "c.db")
    try:
        staff.import_csv(store, Keyring.from_file(master), cards)
        assert central("cabinet", "rotate-key", "QH-0001", *common)[0] == 0
        assert central(*add[:2], "QH-0002", *add[3:], *common)[0] == 0
        for cab in ("QH-0001", "QH-0002"):
            key = signing.load_key(out / f"{cab}.key")
            sent = store.latest_downlink(cab, "accounts")
            assert sent is not None and signing.verify_message(key, sent)
            assert [a["account"] for a in sent["accounts"]] == [
                signing.card_account(key, "04a1b2c3d4")
            ]
    finally:
        store.close()
