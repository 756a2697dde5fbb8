"""One line per event, ``key=value``, to stdout (journald keeps it under systemd).

    ts=2026-11-28T09:30:00.123Z level=info event=door_opened door=D1 session=0193...

``log(event, **fields)`` writes one; ``setup(level)`` (called once by each CLI command) routes
the standard ``logging`` module through the same format, so library warnings look alike.

Nothing secret reaches a line: fields whose name mentions a card, uid, code, pin, key, secret
or token are masked, and any value that looks like a card UID (8 or 14 hex digits), a payment
code (18 digits) or a raw key (64 hex digits) is masked wherever it appears, message text
included. Name reason codes ``reason=``, not ``code=``: a ``code`` field is always masked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

MASK = "***"
_SECRET_WORDS = frozenset({"card", "uid", "code", "codes", "pin", "key", "secret", "token"})
# HTTP and process status numbers are not secrets, though their names end in "code".
_NOT_SECRET = frozenset({"status_code", "exit_code", "http_code"})
_WORD_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])")
# A hex run bounded by anything but letters, digits and '-' (so UUID segments are left alone).
_HEX_RUN = re.compile(
    r"(?<![0-9A-Za-z-])(?:[0-9A-Fa-f]{64}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{8})(?![0-9A-Za-z-])"
)
_PAYMENT = re.compile(r"(?<![0-9])[0-9]{18}(?![0-9])")
_NEEDS_QUOTES = re.compile(r'[\s="\\]')
_SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
_FIELDS = "kiosk_fields"  # attribute on a LogRecord carrying log()'s fields

_logger = logging.getLogger("kiosk")


def is_secret_key(name: str) -> bool:
    if name.lower() in _NOT_SECRET:
        return False
    return any(w.lower() in _SECRET_WORDS for w in _WORD_SPLIT.split(name) if w)


def redact_text(text: str) -> str:
    """Mask card UIDs, payment codes and raw keys inside free text."""
    return _PAYMENT.sub(MASK, _HEX_RUN.sub(MASK, text))


def redact(value: Any) -> Any:
    """A copy of ``value``: secret-named keys masked at any depth, secret-looking text masked."""
    if isinstance(value, Mapping):
        return {str(k): MASK if is_secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return redact_text(str(value)) if len(str(abs(value))) in (8, 14, 18) else value
    return value


def _render(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def quote(text: str) -> str:
    """Quote a value that holds spaces, '=', quotes or nothing; escape so it stays one line."""
    if text and not _NEEDS_QUOTES.search(text):
        return text
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def format_line(ts: str, level: str, event: str, fields: Mapping[str, Any]) -> str:
    parts = [f"ts={ts}", f"level={level}", f"event={quote(redact_text(event))}"]
    for key, value in fields.items():
        shown = MASK if is_secret_key(key) else _render(redact(value))
        parts.append(f"{key}={quote(shown)}")
    return " ".join(parts)


def _iso(created: float) -> str:
    ms = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


class KeyValueFormatter(logging.Formatter):
    """Formats ``log()`` records and plain ``logging`` records alike, redacted."""

    def __init__(self, syslog_prefix: bool = False):
        super().__init__()
        self.syslog_prefix = syslog_prefix

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        fields = getattr(record, _FIELDS, None)
        if fields is None:  # a record from the logging module: its message becomes a field
            event = "log"
            fields = {"logger": record.name, "msg": record.getMessage()}
        else:
            event = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            fields = {**fields, "exc": f"{type(exc).__name__}: {exc}"}
            if level in ("error", "critical", "debug"):
                fields["trace"] = self.formatException(record.exc_info)
        line = format_line(_iso(record.created), level, event, fields)
        if self.syslog_prefix:  # journald reads the priority from a "<N>" prefix
            line = f"<{_SYSLOG_PRIORITY.get(level, 6)}>{line}"
        return line


def _stdout_is_journal(stream: TextIO) -> bool:
    """True when systemd connected this stream to journald (``$JOURNAL_STREAM`` = dev:inode)."""
    want = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return want == f"{st.st_dev}:{st.st_ino}"


def setup(level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log record (ours and libraries') to ``stream`` (stdout), one line each."""
    stream = sys.stdout if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter(syslog_prefix=_stdout_is_journal(stream)))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_kiosk", False):
            root.removeHandler(old)
    handler._kiosk = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    # Chatty libraries: their debug lines are noise on a cabinet.
    for name in ("pymodbus", "paho", "urllib3"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))


def log(event: str, **fields: Any) -> None:
    """One info line: ``log("door_opened", door="D1", session=sid)``."""
    _emit(logging.INFO, event, fields)


def debug(event: str, **fields: Any) -> None:
    _emit(logging.DEBUG, event, fields)


def warning(event: str, **fields: Any) -> None:
    _emit(logging.WARNING, event, fields)


def error(event: str, **fields: Any) -> None:
    """An error line; inside ``except`` the exception's type and text are added."""
    exc = sys.exc_info()
    _emit(logging.ERROR, event, fields, exc if exc[0] is not None else None)


def _emit(level: int, event: str, fields: dict[str, Any], exc_info: Any = None) -> None:
    if _logger.isEnabledFor(level):
        _logger.log(level, event, exc_info=exc_info, extra={_FIELDS: fields}, stacklevel=3)
