"""The unit files as systemd itself judges them: ``verify`` silent, ``security`` under target."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
VENV_KIOSK = "/opt/kiosk/venv/bin/kiosk"
MAX_EXPOSURE = {"kiosk.service": 5.0, "kiosk-sync.service": 3.0}

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


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_units_run_the_venv_with_the_cabinet_config_under_a_watchdog(unit: str) -> None:
    keys: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
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
