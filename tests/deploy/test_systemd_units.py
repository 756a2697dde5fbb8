"""The unit files as systemd itself judges them: ``verify`` silent, ``security`` under target;
the central units' command lines as the real ``kiosk central`` parser reads them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
VENV_KIOSK = "/opt/kiosk/venv/bin/kiosk"
CABINET_UNITS = {"kiosk.service": 5.0, "kiosk-sync.service": 3.0}
CENTRAL_UNITS = {"kiosk-central.service": 2.0, "kiosk-central-ingest@.service": 2.0}
MAX_EXPOSURE = {**CABINET_UNITS, **CENTRAL_UNITS}
MOSQUITTO_UNIT = Path("/lib/systemd/system/mosquitto.service")  # Debian's, when installed

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def staged(unit: str, tmp_path: Path, kiosk: Path | None = None) -> Path:
    """A copy of the unit whose ExecStart points at a stub ``kiosk`` that exists here."""
    if kiosk is None:
        kiosk = tmp_path / "venv" / "bin" / "kiosk"
        kiosk.parent.mkdir(parents=True, exist_ok=True)
        kiosk.write_text("#!/bin/sh\nexit 0\n")
        kiosk.chmod(0o755)
    text = (SYSTEMD / unit).read_text()
    assert VENV_KIOSK in text
    out = tmp_path / unit
    out.write_text(text.replace(VENV_KIOSK, str(kiosk)))
    return out


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=30, check=False
    )


@needs_analyze
@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_verify_prints_nothing(unit: str, tmp_path: Path) -> None:
    done = analyze("verify", str(staged(unit, tmp_path)))
    assert (done.stdout + done.stderr) == "", done.stdout + done.stderr
    assert done.returncode == 0


@needs_analyze
def test_verify_speaks_up_when_the_venv_is_missing(tmp_path: Path) -> None:
    # The check above means something only if verify does complain about a broken unit.
    unit = staged("kiosk-sync.service", tmp_path, kiosk=tmp_path / "nowhere" / "kiosk")
    done = analyze("verify", str(unit))
    assert "not executable" in done.stdout + done.stderr


@needs_analyze
@pytest.mark.parametrize(("unit", "limit"), sorted(MAX_EXPOSURE.items()))
def test_security_exposure_under_target(unit: str, limit: float, tmp_path: Path) -> None:
    done = analyze("security", "--offline=yes", "--no-pager", str(staged(unit, tmp_path)))
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert m, done.stdout + done.stderr
    assert float(m.group(1)) <= limit, done.stdout


def unit_keys(unit: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


@pytest.mark.parametrize("unit", sorted(CABINET_UNITS))
def test_units_run_the_venv_with_the_cabinet_config_under_a_watchdog(unit: str) -> None:
    keys = unit_keys(unit)
    command = "run" if unit == "kiosk.service" else "sync"
    assert keys["ExecStart"] == [f"{VENV_KIOSK} {command} --config /etc/kiosk/cabinet.toml"]
    assert keys["Type"] == ["notify"]
    assert keys["Restart"] == ["always"]
    assert int(keys["WatchdogSec"][0]) > 0
    assert keys["User"] == ["kiosk"]
    assert keys["StateDirectory"][0].split()[0] == "kiosk"
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert keys[hardening] == ["yes"]
    assert keys["ProtectSystem"] == ["strict"]


def test_controller_reaches_serial_ports_and_sync_reaches_no_device() -> None:
    controller = (SYSTEMD / "kiosk.service").read_text()
    sync = (SYSTEMD / "kiosk-sync.service").read_text()
    assert re.search(r"^SupplementaryGroups=.*\bdialout\b", controller, re.M)
    assert re.search(r"^Environment=SDL_VIDEODRIVER=kmsdrm$", controller, re.M)
    assert re.search(r"^Environment=KIVY_HOME=/var/lib/kiosk/", controller, re.M)
    assert re.search(r"^PrivateDevices=yes$", sync, re.M)


def test_udev_rules_name_every_device_on_one_line_each() -> None:
    rules = [
        line
        for line in (SYSTEMD / "99-kiosk.rules").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    names = set()
    for rule in rules:
        pairs = [p.strip() for p in rule.split(",")]
        for p in pairs:  # every element is KEY==value, KEY+=value or KEY=value, quoted
            assert re.fullmatch(r'[A-Z_]+(\{[A-Za-z_]+\})?(==|!=|\+=|=)"[^"]*"', p), p
        assert 'SUBSYSTEM=="tty"' in pairs
        assert 'GROUP="dialout"' in pairs
        names.update(re.findall(r'SYMLINK\+="([^"]+)"', rule))
    assert {"kiosk-locks", "kiosk-scales", "kiosk-scanner"} <= names


# -- the central platform's units -------------------------------------------------------------
# What /etc/kiosk-central/central.env holds (docs/central.md shows the file).
CENTRAL_ENV = {
    "KIOSK_CENTRAL_DB": "postgresql://kiosk_central:pw@db.internal:5432/kiosk_central",
    "KIOSK_CENTRAL_HTTP": "127.0.0.1:8080",
    "KIOSK_CENTRAL_MQTT": "mqtts://mqtt.internal:8884",
    "KIOSK_CENTRAL_OPTS": "--ca-file /etc/kiosk-central/ca.crt",
}


def exec_argv(unit: str) -> list[str]:
    """ExecStart as systemd runs it with CENTRAL_ENV: ``${X}`` one word, ``$X`` split."""
    (line,) = unit_keys(unit)["ExecStart"]
    argv: list[str] = []
    for word in line.split():
        m = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", word)
        if m and m.group(1):
            argv.append(CENTRAL_ENV[m.group(1)])
        elif m:
            argv += CENTRAL_ENV[m.group(2)].split()
        else:
            argv.append(word)
    return argv


@pytest.mark.parametrize(
    ("unit", "handler"),
    [("kiosk-central.service", "serve"), ("kiosk-central-ingest@.service", "ingest")],
)
def test_central_units_command_lines_parse_as_the_service_reads_them(
    unit: str, handler: str
) -> None:
    from central.cli import build_parser

    argv = exec_argv(unit)
    assert argv[:2] == [VENV_KIOSK, "central"]
    args = build_parser().parse_args(argv[2:])  # an unknown option exits here
    assert args.handler.__name__ == handler
    assert args.db == CENTRAL_ENV["KIOSK_CENTRAL_DB"]
    assert args.mqtt == CENTRAL_ENV["KIOSK_CENTRAL_MQTT"]
    assert args.master_key == "/etc/kiosk-central/master.key"
    assert args.ca_file == "/etc/kiosk-central/ca.crt"
    if handler == "serve":
        assert args.http == CENTRAL_ENV["KIOSK_CENTRAL_HTTP"]
        assert not args.simulate
    else:  # every worker in one shared-subscription group, whatever its instance number
        assert args.group == "ingest"


@pytest.mark.parametrize("unit", sorted(CENTRAL_UNITS))
def test_central_units_are_hardened_with_room_for_many_connections(unit: str) -> None:
    keys = unit_keys(unit)
    assert keys["EnvironmentFile"] == ["/etc/kiosk-central/central.env"]
    assert keys["Type"] == ["exec"]  # the service does not speak sd_notify
    assert keys["Restart"] == ["always"]
    assert keys["User"] == ["kiosk-central"]
    assert keys["StateDirectory"] == ["kiosk-central"]
    assert int(keys["LimitNOFILE"][0]) >= 65536
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert keys[hardening] == ["yes"]
    assert keys["ProtectSystem"] == ["strict"]
    assert keys["CapabilityBoundingSet"] == [""]


def test_docs_show_every_variable_the_central_units_use() -> None:
    docs = (ROOT / "docs" / "central.md").read_text(encoding="utf-8")
    used = set()
    for unit in CENTRAL_UNITS:
        used |= set(re.findall(r"\$\{?(\w+)\}?", unit_keys(unit)["ExecStart"][0]))
    assert used == set(CENTRAL_ENV)
    for name in used:
        assert re.search(rf"^{name}=", docs, re.M), f"{name} is not in docs/central.md"


@needs_analyze
def test_broker_drop_in_verifies_and_lifts_the_open_files_limit(tmp_path: Path) -> None:
    text = (SYSTEMD / "mosquitto-kiosk.conf").read_text()
    limit = re.search(r"^LimitNOFILE=(\d+)$", text, re.M)
    assert limit and int(limit.group(1)) >= 65536
    # Staged as systemd finds a drop-in: beside Debian's unit (or a stand-in) in NAME.d/.
    unit = tmp_path / "mosquitto.service"
    if MOSQUITTO_UNIT.exists():
        unit.write_text(MOSQUITTO_UNIT.read_text())
    else:
        unit.write_text("[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n")
    (tmp_path / "mosquitto.service.d").mkdir()
    (tmp_path / "mosquitto.service.d" / "kiosk.conf").write_text(text)
    done = analyze("verify", str(unit))
    assert (done.stdout + done.stderr) == "", done.stdout + done.stderr


@needs_analyze
def test_verify_reads_the_drop_in(tmp_path: Path) -> None:
    # The check above means something only if verify reads NAME.d/ beside the unit.
    unit = tmp_path / "stand-in.service"
    unit.write_text("[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n")
    (tmp_path / "stand-in.service.d").mkdir()
    (tmp_path / "stand-in.service.d" / "x.conf").write_text("[Service]\nNoSuchKey=1\n")
    done = analyze("verify", str(unit))
    assert "NoSuchKey" in done.stdout + done.stderr
