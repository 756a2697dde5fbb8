"""``kiosk demo`` without a display: every part as a real process, a scripted sale, exit 0.

Broker (mosquitto, else amqtt), central simulator, simulated cabinet on ptys, controller with
the touchscreen rendered offscreen, sync agent: what a newcomer's ``make demo`` runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from simulators.demo import MOSQUITTO

pytestmark = pytest.mark.skipif(
    not MOSQUITTO.exists(),
    reason="no MQTT v5 broker: /usr/sbin/mosquitto is not installed",
)
STEPS = ["01-idle.png", "02-authorise.png", "03-door-open.png", "04-settling.png", "05-receipt.png"]


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


@pytest.mark.timeout(90)
def test_headless_demo_sells_reports_to_the_centre_and_cleans_up(tmp_path):
    run_dir, shots = tmp_path / "run", tmp_path / "shots"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    argv = [sys.executable, "-m", "kiosk", "demo", "--timeout", "60"]
    res = subprocess.run(
        [*argv, "--run-dir", str(run_dir), "--out", str(shots)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=85,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    out = res.stdout
    # the product list comes first, then the receipt of the two products taken
    assert out.index("14 lanes, 4 suppliers supporting 455 households") < out.index("receipt")
    receipt = out[out.index("receipt") :]
    assert re.search(r"野生蜂蜜 500g\s+1\s+¥68.00\s+¥68.00", receipt)
    assert re.search(r"黄灯笼辣椒酱 200g\s+1\s+¥18.00\s+¥18.00", receipt)
    assert re.search(r"合计 total\s+¥86.00", receipt)
    assert "households supported: 350" in receipt
    # the sale reached the central simulator, once
    stats = json.loads(re.search(r"central simulator received: (\{.*\})", out).group(1))
    assert stats["sales"] == 1 and stats["duplicates"] == 0 and stats["records"] >= 1
    # one screenshot per step, each a whole painted screen
    names = sorted(p.name for p in shots.glob("*.png"))
    assert names[: len(STEPS)] == STEPS, names
    for name in STEPS:
        with Image.open(shots / name) as img:
            assert img.size == (1280, 800)
            colors = img.convert("RGB").getcolors(maxcolors=1 << 16)  # None: more than that
            assert colors is None or len(colors) > 20, f"{name} is (nearly) blank"
    # nothing it started is left running
    assert processes_mentioning(str(run_dir)) == []
