"""Fixtures of the driver tests: a real pty linked at a path in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from drv_ptys import PtyPort


@pytest.fixture
def pty_port(tmp_path: Path) -> Iterator[PtyPort]:
    port = PtyPort(tmp_path / "device")
    yield port
    port.unplug()
