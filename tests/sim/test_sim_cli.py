"""``kiosk sim`` as a subprocess: the first JSON line, the links, a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.control import ControlClient

pytestmark = pytest.mark.timeout(30)


def test_kiosk_sim_prints_its_devices_and_removes_links_on_sigterm(sim_config_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "sim", "--config", str(sim_config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        run = sim_config_path.parent / "run"
        assert first["locks"] == {"D1": str(run / "locks-8a80"), "D2": str(run / "locks-cu")}
        assert first["scales"] == str(run / "scales") and first["scanner"] == str(run / "scanner")
        for url in (*first["locks"].values(), first["scales"], first["scanner"]):
            assert os.path.islink(url) and os.readlink(url).startswith("/dev/pts/")
        with ControlClient(first["control"]) as c:
            assert c.state()["doors"]["D1"]["latched"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert not any(os.path.lexists(u) for u in (first["scales"], first["scanner"]))


def test_kiosk_sim_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[cabinet]\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "kiosk", "sim", "--config", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "cabinet.id: missing" in done.stderr
