"""``kiosk doctor`` against a simulated cabinet, a real broker and a real central simulator."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk import config, db, doctor
from tests.conftest import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MOSQUITTO = Path("/usr/sbin/mosquitto")

try:
    from simulators.cabinet import SimulatedCabinet
except ImportError:  # the simulator is another helper's work: its tests wait for it
    SimulatedCabinet = None  # type: ignore[assignment,misc]

needs_sim = pytest.mark.skipif(SimulatedCabinet is None, reason="simulators.cabinet not built")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not MOSQUITTO.exists():
        pytest.skip("mosquitto not installed")
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen(
        [str(MOSQUITTO), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from central.service import CentralService

    key = bytes.fromhex((EXAMPLES / "cabinet.key").read_text().strip())
    folder = tmp_path_factory.mktemp("central")
    server = CentralService(folder / "central.db", {"QH-0001": key}).start()
    try:
        yield server.http_url
    finally:
        server.stop()


def write_cabinet(folder: Path, mqtt: str, http: str) -> Path:
    """The example cabinet in ``folder`` (its run/ paths then live there), with a fresh
    database, central pointed at the test's broker and simulator."""
    folder.mkdir(exist_ok=True)
    for name in ("catalog.json", "cabinet.key"):
        shutil.copy(EXAMPLES / name, folder / name)
    text = (EXAMPLES / "cabinet.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^mqtt = ".*"$', f'mqtt = "{mqtt}"', text)
    text = re.sub(r'(?m)^http = ".*"$', f'http = "{http}"', text)
    (folder / "run").mkdir(exist_ok=True)
    path = folder / "cabinet.toml"
    path.write_text(text, encoding="utf-8")
    db.open_db(folder / "run" / "kiosk.db").conn.close()
    return path


def run_doctor(*args: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-m", "kiosk", "doctor", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.stderr == "", done.stderr
    return done.returncode, done.stdout.splitlines()


def line_for(lines: list[str], name: str) -> str:
    (line,) = [x for x in lines if re.match(rf"^(ok|FAIL) +{re.escape(name)}  ", x)]
    return line


@needs_sim
def test_all_ok_against_the_simulated_cabinet(tmp_path: Path, broker: str, central: str) -> None:
    path = write_cabinet(tmp_path, broker, central)
    with SimulatedCabinet(config.load(path)):
        code, lines = run_doctor("--config", str(path))
    cfg = config.load(path)
    names = (
        ["config"]
        + [f"door {d.id}" for d in cfg.doors]
        + [f"shelf {s.id}" for s in cfg.shelves]
        + ["scanner", "database", "disk", "clock", "central http", "central mqtt"]
    )
    for name in names:
        assert line_for(lines, name).startswith("ok "), "\n".join(lines)
    assert code == 0, "\n".join(lines)
    assert "latched" in line_for(lines, "door D1")
    assert f"schema version {db.SCHEMA_VERSION}" in line_for(lines, "database")


@needs_sim
def test_a_missing_scanner_is_named_and_fails_the_run(
    tmp_path: Path, broker: str, central: str
) -> None:
    sim = write_cabinet(tmp_path / "sim", broker, central)
    # The same cabinet (same run/ paths), but its scanner is on a port that is not there.
    gone = tmp_path / "dev" / "ttyACM-unplugged"
    text = sim.read_text(encoding="utf-8").replace('url = "run/', f'url = "{sim.parent}/run/')
    path = tmp_path / "cabinet.toml"
    path.write_text(
        re.sub(r'(?ms)^(\[scanner\].*?^)url = "[^"]*"$', rf'\g<1>url = "{gone}"', text).replace(
            'path = "run/', f'path = "{sim.parent}/run/'
        ),
        encoding="utf-8",
    )
    with SimulatedCabinet(config.load(sim)):
        code, lines = run_doctor("--config", str(path))
    assert code == 1
    scanner = line_for(lines, "scanner")
    assert scanner.startswith("FAIL ") and str(gone) in scanner and "no such device" in scanner
    assert [x for x in lines if x.startswith("FAIL")] == [scanner]  # only that line


@needs_sim
def test_a_silent_transmitter_is_named(tmp_path: Path, broker: str, central: str) -> None:
    from simulators.faults import parse_fault

    path = write_cabinet(tmp_path, broker, central)
    with SimulatedCabinet(config.load(path)) as sim:
        sim.fault("D1-S2", parse_fault(["silent"]))
        code, lines = run_doctor("--config", str(path))
    assert code == 1
    (failed,) = [x for x in lines if x.startswith("FAIL")]
    assert re.match(r"^FAIL shelf D1-S2 +slave 2 on \S+/run/scales: no answer", failed), failed
    assert line_for(lines, "shelf D1-S1").startswith("ok ")


@needs_sim
def test_a_silent_lock_board_is_named(tmp_path: Path, broker: str, central: str) -> None:
    from simulators.faults import parse_fault

    path = write_cabinet(tmp_path, broker, central)
    with SimulatedCabinet(config.load(path)) as sim:
        sim.fault("D2", parse_fault(["silent"]))
        code, lines = run_doctor("--config", str(path))
    assert code == 1
    (failed,) = [x for x in lines if x.startswith("FAIL")]
    assert re.match(r"^FAIL door D2 +kerong_cu board 0 lock 1 on \S+/run/locks-cu: ", failed)
    assert line_for(lines, "door D1").startswith("ok ")


def test_without_any_hardware_every_device_line_names_its_port(tmp_path: Path) -> None:
    path = write_cabinet(tmp_path, "mqtt://127.0.0.1:1", "http://127.0.0.1:1")
    code, lines = run_doctor("--config", str(path), "--db", str(tmp_path / "nowhere.db"))
    assert code == 1
    assert line_for(lines, "config").startswith("ok ")
    assert str(tmp_path / "run" / "locks-8a80") in line_for(lines, "door D1")
    assert str(tmp_path / "run" / "scales") in line_for(lines, "shelf D2-S4")
    assert line_for(lines, "database").startswith("FAIL ")
    assert "nowhere.db" in line_for(lines, "database")
    assert line_for(lines, "central mqtt").startswith("FAIL ")


def test_a_bad_configuration_is_the_only_line(tmp_path: Path) -> None:
    path = tmp_path / "cabinet.toml"
    path.write_text('[cabinet]\nid = "QH-0001"\n')
    code, lines = run_doctor("--config", str(path))
    assert code == 1
    (line,) = lines
    assert line.startswith("FAIL config  cabinet.toml: ")


# -- the checks one by one -----------------------------------------------------------------
def test_database_check_reads_version_and_catches_damage(tmp_path: Path) -> None:
    good = tmp_path / "kiosk.db"
    db.open_db(good).conn.close()
    c = doctor.check_database(good, expected_version=db.SCHEMA_VERSION)
    assert c.ok and f"schema version {db.SCHEMA_VERSION}" in c.detail
    behind = doctor.check_database(good, expected_version=db.SCHEMA_VERSION + 1)
    assert not behind.ok and "kiosk db migrate" in behind.detail

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.close()
    assert "no schema" in doctor.check_database(empty).detail

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 300)
    bad = doctor.check_database(junk)
    assert not bad.ok and "junk.db" in bad.detail


def test_disk_check_against_the_threshold(tmp_path: Path) -> None:
    assert doctor.check_disk(tmp_path / "kiosk.db", low_mb=1).ok
    low = doctor.check_disk(tmp_path / "not" / "yet" / "kiosk.db", low_mb=10**12)
    assert not low.ok and "MB free" in low.detail


def test_clock_check() -> None:
    assert not doctor.check_clock(datetime(1970, 1, 1, tzinfo=UTC)).ok
    assert not doctor.check_clock(datetime(2026, 11, 28, tzinfo=UTC), synced=False).ok
    assert "unknown" in doctor.check_clock(datetime(2026, 11, 28, tzinfo=UTC)).detail
    assert doctor.ntp_synchronized(lambda argv: "yes\n") is True
    assert doctor.ntp_synchronized(lambda argv: None) is None


def test_central_checks_against_real_listeners(broker: str, central: str) -> None:
    assert doctor.check_http(central).ok
    assert doctor.check_mqtt(broker).ok
    closed = f"http://127.0.0.1:{free_port()}"
    assert not doctor.check_http(closed, timeout_s=1).ok
    assert not doctor.check_mqtt(f"mqtt://127.0.0.1:{free_port()}", timeout_s=1).ok
    assert not doctor.check_mqtt("http://example.invalid").ok


def test_a_hanging_probe_is_reported_not_waited_for() -> None:
    t0 = time.monotonic()
    with pytest.raises(doctor.ProbeTimeout):
        doctor.within(0.2, lambda: time.sleep(5))
    assert time.monotonic() - t0 < 1


def test_lines_line_up() -> None:
    rows = [doctor.Check("config", True, "fine"), doctor.Check("door D1", False, "gone")]
    assert doctor.format_checks(rows) == ["ok   config   fine", "FAIL door D1  gone"]


# -- the broker's TLS and the cabinet's login ------------------------------------------------
def test_tls_and_login_are_separate_lines(tmp_path: Path) -> None:
    """Against mosquitto as ``kiosk central cabinet add`` provisions it (TLS, one login per
    cabinet): each line names its own trouble."""
    from central.broker_files import username
    from tests.central.test_broker_tls import make_ca, provisioned

    with provisioned(tmp_path / "centre", ("QH-0001",)) as p:
        url, ca, user = p.cabinet_url, p.ca, username("QH-0001")
        secret = p.out / "QH-0001.mqtt-password"
        central = config.Central(
            mqtt=url, ca_file=ca, mqtt_username=user, mqtt_password_file=secret
        )
        rows = doctor.check_central_mqtt(central)
        assert [r.name for r in rows] == ["central mqtt", "central tls", "central login"]
        assert all(r.ok for r in rows), rows
        assert "verified by ca_file ca.crt" in rows[1].detail
        assert rows[2].detail == "kiosk-QH-0001 accepted"

        other_ca, _, _ = make_ca(tmp_path / "other", "other-ca")  # not the broker's CA
        tls = doctor.check_mqtt_tls(url, other_ca)
        assert not tls.ok and "not verified by ca_file" in tls.detail
        [_, tls_row, login_row] = doctor.check_central_mqtt(
            config.Central(mqtt=url, ca_file=other_ca, mqtt_username=user)
        )
        assert not tls_row.ok and not login_row.ok and "not tried" in login_row.detail

        wrong = tmp_path / "wrong-password"
        wrong.write_text("not it\n")
        refused = doctor.check_mqtt_login(url, ca, user, wrong)
        assert not refused.ok and refused.detail.startswith("kiosk-QH-0001 refused: ")
        assert "mqtt_password_file" in refused.detail
        anonymous = doctor.check_mqtt_login(url, ca)
        assert not anonymous.ok and "anonymous login refused" in anonymous.detail
        missing = doctor.check_mqtt_login(url, ca, user, tmp_path / "nowhere")
        assert not missing.ok and "nowhere" in missing.detail

    # Plain MQTT is fine on loopback (tests, a broker on the cabinet), never across a network.
    assert doctor.check_mqtt_tls("mqtt://127.0.0.1:1883").ok
    far = doctor.check_mqtt_tls("mqtt://192.0.2.7:1883")
    assert not far.ok and "not encrypted" in far.detail
