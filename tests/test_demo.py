"""``kiosk demo`` on a copy of the examples (the real ones stay untouched)."""

from __future__ import annotations

import io
import shutil

from kiosk import db, demo


def test_demo_prints_the_product_list_and_starts_fresh_each_time(tmp_path, example_config):
    for name in ("cabinet.toml", "catalog.json", "cabinet.key"):
        shutil.copy(example_config.parent / name, tmp_path / name)
    for _ in range(2):  # a second run must not trip over the first one's catalogue version
        out = io.StringIO()
        assert demo.run(tmp_path / "cabinet.toml", out=out) == 0
    text = out.getvalue()
    assert "生态大米 5kg" in text
    assert "¥45.00" in text
    assert "忠锐农特产" in text
    assert "14 lanes, 4 suppliers supporting 455 households" in text
    status = db.status(db.connect(tmp_path / "run" / "kiosk.db"))
    assert status["tables"]["catalog_versions"] == 1
    assert status["tables"]["products"] == 18


def test_width_counts_chinese_as_two_columns():
    assert demo.width("大米 5kg") == 8
