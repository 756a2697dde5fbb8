"""Fixtures of the simulator tests; the reusable cabinet fixtures are in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk import config
from kiosk.config import Config


@pytest.fixture
def example_cfg(sim_config_path: Path) -> Config:
    """examples/cabinet.toml loaded from tmp_path (nothing started)."""
    return config.load(sim_config_path)
