from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from kiosk import logs


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """What ``kiosk.logs`` writes, from debug up; quiet again afterwards."""
    buf = io.StringIO()
    logs.setup("debug", stream=buf)
    yield buf
    logs.setup("warning", stream=io.StringIO())
