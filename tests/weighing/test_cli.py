"""`kiosk weigh` and `kiosk planogram check` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.weighing.streams import HONEY, TEA, Shelf, scenario

ROOT = Path(__file__).resolve().parents[2]


def kiosk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_weigh_writes_one_result_line_per_scenario(tmp_path):
    sc = scenario([Shelf("D1-S1", [(HONEY, 4), (TEA, 6)], [(4.0, -735.0)])])
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({**sc, "id": "a"}) + "\n\n" + json.dumps({**sc, "id": "b"}) + "\n")
    out = tmp_path / "out.jsonl"
    p = kiosk("weigh", "--in", str(src), "--out", str(out))
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["a", "b"]
    assert lines[0]["taken"] == {"honey": 1}
    assert set(lines[0]) == {
        "id",
        "taken",
        "misplaced",
        "foreign",
        "fault",
        "uncertain",
        "confidence",
        "decided_s",
    }


def test_weigh_rejects_a_broken_file(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "x"}\n')
    p = kiosk("weigh", "--in", str(src), "--out", str(tmp_path / "o.jsonl"))
    assert p.returncode == 2 and "in.jsonl:1" in p.stderr


def test_planogram_check_names_the_colliding_products(example_config, example_catalog):
    p = kiosk(
        "planogram", "check", "--config", str(example_config), "--catalog", str(example_catalog)
    )
    assert p.returncode == 1, p.stderr
    assert "zr-rice-5kg" in p.stdout and "zr-rice-2.5kg" in p.stdout
    assert "shelves checked" in p.stdout
