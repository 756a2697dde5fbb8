"""The one decoder of the contract between a cabinet and the centre (docs/integration.md).

Strict JSON (``loads``) and the range of every field, for both ends: the centre decodes every
batch with ``decode_batch`` and checks what it signs and sends down with ``check_config``,
``check_catalog``, ``check_accounts`` and ``check_command_args``; the cabinet reads acks with
``decode_ack``, and everything that comes down, and catalogue files, with the same checks.
``RANGES`` is the table of those ranges, rendered into integration.md ("Ranges").

Unknown keys are refused in what goes down (and in files) and ignored, but kept, in what comes
up: a newer cabinet may send more than this centre knows. Every record the cabinet code writes
into its outbox passes ``check_body`` (tests/central/test_contract_outbox.py drives that code):
an older cabinet must never lose a record to a newer centre. Pure: no I/O.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from kiosk import wire

MAX_DEPTH = 32  # nesting of arrays and objects; the contract's deepest message needs 6
MAX_BYTES = 2_000_000  # a message down, an ack
# kiosk.config lets a cabinet send batches of up to 10,000 records and 1 MB: the centre must
# take whatever a cabinet may be configured to send, or that cabinet's queue would stall. The
# HTTP body limit and the MQTT ingest's packet limit are this one number.
MAX_BATCH_RECORDS = 10_000
MAX_BATCH_BYTES = 1 << 20
MAX_ACK_IDS = 10_000
INT_LIMIT = 2**63  # an integer beyond this in magnitude is refused while parsing
SEQ_MAX = 2**53  # seq and versions: exact in a JavaScript number and in a double
VERSION_MAX = 2**53
ID_MAX = 64
MAX_ITEMS = 200  # lines of a sale or adjustment
QTY_MAX = 999
UNIT_PRICE_MAX_FEN = 10_000_000  # 100,000 yuan: no single farm product costs more
TOTAL_MAX_FEN = 1_000_000_000  # a sale's total, an adjustment's amount
CATALOG_PRICE = (1, 9_999_999)  # fen: 0.01 .. 99,999.99 yuan
UNIT_G_MAX = 100_000.0  # grams: a packed unit weighs at most 100 kg
UNIT_SD_G_MAX = 10_000.0
SHELF_LIFE_MAX_DAYS = 36_500
HOUSEHOLDS_MAX = 10_000_000
ACCOUNTS_MAX = 100_000
CATALOG_ENTRIES_MAX = 10_000
OFFLINE_LIMIT_MAX_FEN = 1_000_000
MAX_TTL_S = 7 * 24 * 3600  # a command valid for longer than a week is a mistake
YEARS = (2000, 2100)
SEVERITIES = ("info", "warning", "alarm")
SKU_RULE = "[a-z0-9][a-z0-9.-]{0,63}"
CATALOG_SCHEMA = "kiosk.catalog/1"

_SKU = re.compile(SKU_RULE)
_ACCOUNT = re.compile(r"[0-9a-f]{32}")
# Unix seconds of 2000-01-01T00:00:00Z and 2101-01-01T00:00:00Z.
_T_FIRST, _T_END = 946_684_800.0, 4_133_980_800.0


class ContractError(wire.WireError):
    """A message outside the contract; ``str(e)`` is the reason, short, in English.

    A ``ValueError`` (through ``wire.WireError``), so code that catches those catches this.
    """


# -- strict JSON ------------------------------------------------------------------------------
# The raw bytes are scanned once, before parsing, with bytes methods (C speed): strings are
# dropped and what is left is the structure, brackets and colons. Its depth is checked before
# json's C scanner recurses into it; its colons count the keys, which the parsed objects must
# all still have (a key given twice collapses into one): only then are the objects parsed again
# pair by pair to name the key. A custom parse_int is costly (a Python call per integer), so it
# is used only when 19 digits in a row (2^63 has 19) appear somewhere.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}:')
_STRING = re.compile(rb'"[^"]*"')
_BRACES = bytes.maketrans(b"{}", b"[]")
_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
_LONG_NUMBER = b"0" * 19
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _structure(raw: bytes) -> tuple[bool, int]:
    """(deeper than MAX_DEPTH, number of keys) of JSON text; exact for valid JSON."""
    if b"\\" in raw:  # escaped backslashes and quotes first, so every quote left is real
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Adjacent quotes pair up left to right: an empty string, or two strings and the gap
    # between them, which holds no bracket or colon either; the regex takes what is left.
    s = raw.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in s:
        s = _STRING.sub(b"", s)
    keys = s.count(b":")
    s = s.replace(b":", b"").translate(_BRACES)
    for _ in range(MAX_DEPTH):
        if not s:
            return False, keys
        n = len(s)
        s = s.replace(b"[]", b"")
        if len(s) == n:  # unbalanced, so not JSON: json says so, unless it would recurse deep
            return s.count(b"[") > MAX_DEPTH, keys
    return bool(s), keys


class _NonFinite:
    """Stands for NaN/Infinity while a batch is parsed: its record is rejected, not the batch."""

    def __repr__(self) -> str:
        return "NaN"


_NONFINITE = _NonFinite()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise ContractError(f"duplicated key {_show(k)}")
            seen.add(k)
    return d


def _int(s: str) -> int:
    # 2**63 has 19 digits; a longer one is refused before int() spends time on it.
    if len(s) < 19:
        return int(s)
    if len(s) <= 20:
        v = int(s)
        if -INT_LIMIT <= v <= INT_LIMIT:
            return v
    raise ContractError("integer out of range (beyond 2^63)")


def _strict_constant(name: str) -> Any:
    raise ContractError(f"{name} is not JSON")


def _strict_float(s: str) -> float:
    v = float(s)
    if v in (math.inf, -math.inf):
        raise ContractError("number out of range (overflows to Infinity)")
    return v


def _text_of(data: bytes | bytearray | memoryview | str, max_bytes: int) -> tuple[str, bytes]:
    if isinstance(data, str):
        if len(data) > max_bytes:
            raise ContractError(f"over {max_bytes} bytes")
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise ContractError("lone surrogate in the text") from None
        if len(raw) > max_bytes:
            raise ContractError(f"over {max_bytes} bytes")
        return data, raw
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > max_bytes:
            raise ContractError(f"over {max_bytes} bytes")
        try:  # strict: a surrogate encoded in UTF-8 is not UTF-8 either
            return raw.decode("utf-8"), raw
        except UnicodeDecodeError:
            raise ContractError("not UTF-8") from None
    raise ContractError("JSON comes as bytes or text")


def _parse(data: Any, max_bytes: int, marks: list[str] | None) -> tuple[Any, bytes]:
    """Strict JSON and its UTF-8 bytes; with ``marks``, NaN/Infinity become ``_NONFINITE``
    and are noted there."""
    text, raw = _text_of(data, max_bytes)
    too_deep, keys = _structure(raw)
    if too_deep:
        raise ContractError(f"nested deeper than {MAX_DEPTH}")

    if marks is None:
        constant: Callable[[str], Any] = _strict_constant
        to_float: Callable[[str], Any] = _strict_float
    else:

        def constant(name: str) -> Any:
            marks.append(name)
            return _NONFINITE

        def to_float(s: str) -> Any:
            v = float(s)
            if v in (math.inf, -math.inf):
                marks.append(s)
                return _NONFINITE
            return v

    seen = [0]

    def count_keys(d: dict[str, Any]) -> dict[str, Any]:
        seen[0] += len(d)
        return d

    long_numbers = _LONG_NUMBER in raw.translate(_DIGITS)
    try:
        value = json.loads(
            text,
            object_hook=count_keys,
            parse_int=_int if long_numbers else None,
            parse_float=to_float,
            parse_constant=constant,
        )
        if seen[0] != keys:  # a key twice: parsed again, pair by pair, to name it
            json.loads(
                text, object_pairs_hook=_object, parse_float=to_float, parse_constant=constant
            )
    except ContractError:
        raise
    except RecursionError:  # cannot happen after _structure; kept as the last guard
        raise ContractError(f"nested deeper than {MAX_DEPTH}") from None
    except ValueError as e:
        raise ContractError(f"not JSON: {_short(str(e), 80)}") from None
    # Escapes pair surrogates while parsing; only a \ud800..\udfff escape can leave one alone.
    if b"\\u" in raw and _SURROGATE_ESCAPE.search(raw) and _has_surrogate(value):
        raise ContractError("lone surrogate in the text")
    return value, raw


def loads(data: bytes | str, max_bytes: int = MAX_BYTES) -> Any:
    """Strict JSON: ``ContractError`` for duplicated keys at any depth, NaN or Infinity,
    nesting deeper than ``MAX_DEPTH``, lone surrogates (raw or escaped), text that is not
    UTF-8, more than ``max_bytes``, and integers beyond 2^63 in magnitude."""
    return _parse(data, max_bytes, None)[0]


def _walk(value: Any) -> Iterable[Any]:
    """Every value and key inside ``value``, without recursion."""
    stack = [value]
    while stack:
        v = stack.pop()
        yield v
        if type(v) is dict:
            stack.extend(v)
            stack.extend(v.values())
        elif type(v) is list:
            stack.extend(v)


def _has_surrogate(value: Any) -> bool:
    return any(type(v) is str and _SURROGATE.search(v) for v in _walk(value))


def check_tree(value: Any) -> None:
    """What ``loads`` would have refused, in a value parsed elsewhere (no duplicated keys to
    find there): too deep, NaN/Infinity, lone surrogates, huge integers, non-JSON types."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        t = type(v)
        if t is dict or t is list:
            if depth >= MAX_DEPTH:
                raise ContractError(f"nested deeper than {MAX_DEPTH}")
            if t is dict:
                for k in v:
                    if type(k) is not str:
                        raise ContractError("object keys must be text")
                    if _SURROGATE.search(k):
                        raise ContractError("lone surrogate in the text")
                stack.extend((x, depth + 1) for x in v.values())
            else:
                stack.extend((x, depth + 1) for x in v)
        elif t is str:
            if _SURROGATE.search(v):
                raise ContractError("lone surrogate in the text")
        elif t is float:
            if not math.isfinite(v):
                raise ContractError("NaN or Infinity is not JSON")
        elif t is int:
            if not -INT_LIMIT <= v <= INT_LIMIT:
                raise ContractError("integer out of range (beyond 2^63)")
        elif not (v is None or t is bool):
            raise ContractError(f"{t.__name__} is not JSON")


def _show(v: Any, n: int = 40) -> str:
    return _short(repr(v), n)


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


# -- fields -----------------------------------------------------------------------------------
Test = Callable[[Any], bool]


@dataclass(frozen=True)
class Range:
    """One row of the ranges table: ``field`` of ``where`` must be ``rule``."""

    where: str
    field: str
    rule: str


class _Spec(NamedTuple):
    """What a field must be: ``test`` says if a value is, ``rule`` says it in words. Text and
    integers also give ``kind`` (str or int) and bounds, which the hot loop checks inline."""

    test: Test
    rule: str  # what it must be: "an integer 1..999"
    kind: type | None = None  # str: lo..hi characters; int: lo..hi
    lo: int = 0
    hi: int = 0


class _Field(NamedTuple):
    """One field of an object: a tuple, so the hot loop unpacks it instead of looking it up."""

    key: str
    kind: type | None
    lo: int
    hi: int
    test: Test
    rule: str
    required: bool = False


def _text(lo: int, hi: int) -> _Spec:
    return _Spec(
        lambda v: type(v) is str and lo <= len(v) <= hi,
        f"text of {lo}..{hi} characters",
        str,
        lo,
        hi,
    )


def _integer(lo: int, hi: int, hi_text: str | None = None) -> _Spec:
    return _Spec(
        lambda v: type(v) is int and lo <= v <= hi, f"an integer {lo}..{hi_text or hi}", int, lo, hi
    )


def _number(lo: float | None = None, hi: float | None = None) -> _Spec:
    def test(v: Any) -> bool:
        if type(v) is int:
            return (lo is None or v >= lo) and (hi is None or v <= hi)
        if type(v) is float:
            return math.isfinite(v) and (lo is None or v >= lo) and (hi is None or v <= hi)
        return False

    bounds = "" if lo is None and hi is None else f" {lo:g}..{hi:g}"
    return _Spec(test, f"a finite number{bounds}")


# The form cabinets write, with the time of day's ranges: the fast path; the day is checked
# once per batch or so (a cache), as records of one batch mostly share their days.
_STORED_FORM = re.compile(r"\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z")


@functools.lru_cache(maxsize=4096)
def _day_ok(day: str) -> bool:
    try:
        return YEARS[0] <= date.fromisoformat(day).year <= YEARS[1]
    except ValueError:
        return False


def _time_ok(v: Any) -> bool:
    if type(v) is not str:
        return False
    if len(v) == 24 and _STORED_FORM.fullmatch(v):
        return _day_ok(v[:10])
    if len(v) > 40:
        return False
    t = wire.parse_time(v)
    return t is not None and _T_FIRST <= t < _T_END


def _sku_ok(v: Any) -> bool:
    return type(v) is str and _SKU.fullmatch(v) is not None


def _one_of(values: Iterable[str]) -> _Spec:
    allowed = tuple(values)
    return _Spec(lambda v: type(v) is str and v in allowed, "one of " + ", ".join(allowed))


_ID = _text(1, ID_MAX)
_SEQ = _integer(1, SEQ_MAX, "2^53")
_VERSION = _integer(1, VERSION_MAX, "2^53")
_TIME = _Spec(_time_ok, f"an RFC 3339 UTC time in the years {YEARS[0]}..{YEARS[1]}")
_BOOL = _Spec(lambda v: type(v) is bool, "true or false")
_OBJECT = _Spec(lambda v: type(v) is dict, "an object")
_SKU_T = _Spec(_sku_ok, f"a SKU: {SKU_RULE}")
_QTY = _integer(1, QTY_MAX)


def _list(hi: int) -> _Spec:
    return _Spec(lambda v: type(v) is list and len(v) <= hi, f"a list of at most {hi}")


def _f(key: str, spec: _Spec, required: bool = False) -> _Field:
    return _Field(key, spec.kind, spec.lo, spec.hi, spec.test, spec.rule, required)


def _fields_why(where: str, obj: dict[str, Any], fields: tuple[_Field, ...]) -> str | None:
    """Required fields present and every known field in range; ``None`` counts as absent."""
    for key, kind, lo, hi, test, rule, required in fields:
        v = obj.get(key)
        if v is None:
            if required:
                return f"{where}: {key} is missing"
            continue
        # text and integers inline: this loop runs for every field of every record
        if kind is str:
            if type(v) is str and lo <= len(v) <= hi:
                continue
        elif kind is int:
            if type(v) is int and lo <= v <= hi:
                continue
        elif test(v):
            continue
        return f"{where}: {key} must be {rule}"
    return None


def _unknown_why(where: str, obj: dict[str, Any], fields: tuple[_Field, ...]) -> str | None:
    known = {f.key for f in fields}
    for k in obj:
        if k not in known:
            return f"{where}: unknown key {_show(k)}"
    return None


# -- records up -------------------------------------------------------------------------------
RECORD = (
    _f("id", _ID, True),
    _f("seq", _SEQ, True),
    _f("type", _one_of(wire.RECORD_TYPES), True),
    _f("at", _TIME, True),
    _f("body", _OBJECT, True),
)
SALE_ITEM = (
    _f("sku", _SKU_T, True),
    _f("qty", _QTY, True),
    _f("unit_price_fen", _integer(0, UNIT_PRICE_MAX_FEN, "10^7"), True),
    _f("cert_no", _text(0, 64)),  # "" when the product left the catalogue
    _f("supplier", _text(0, 64)),
)
SALE = (
    _f("items", _list(MAX_ITEMS), True),
    _f("total_fen", _integer(0, TOTAL_MAX_FEN, "10^9"), True),
    _f("id", _ID),
    _f("session", _ID),
    _f("door", _text(1, 32)),
    _f("opened_at", _TIME),
    _f("closed_at", _TIME),
    _f("payment", _OBJECT),
    _f("confidence", _number(0, 1)),
    _f("catalog_version", _VERSION),
    _f("review", _BOOL),
)
PAYMENT = (
    _f("method", _text(1, 32)),
    _f("account", _text(1, 64)),
    _f("status", _text(1, 32)),
)
ADJUSTMENT_ITEM = (_f("sku", _SKU_T, True), _f("qty", _QTY, True))
ADJUSTMENT = (
    _f("id", _ID, True),
    _f("sale", _ID, True),
    _f("amount_fen", _integer(0, TOTAL_MAX_FEN, "10^9"), True),
    _f("items", _list(MAX_ITEMS)),
    _f("reason", _text(0, 500)),
    _f("actor", _text(0, 100)),
)
SESSION = (
    _f("id", _ID),
    _f("door", _text(1, 32)),
    _f("kind", _text(1, 32)),
    _f("method", _text(1, 32)),
    _f("account", _text(1, 64)),
    _f("operator", _text(1, 64)),
    _f("started_at", _TIME),
    _f("unlocked_at", _TIME),
    _f("closed_at", _TIME),
    _f("finished_at", _TIME),
    _f("outcome", _text(1, 32)),
    _f("catalog_version", _VERSION),
    _f("sale", _ID),
)
INVENTORY = (
    _f("session", _ID),
    _f("reason", _text(1, 32)),
    _f("lanes", _list(10_000)),
)
EVENT = (
    _f("kind", _text(1, 64), True),
    _f("severity", _one_of(SEVERITIES)),
    _f("device", _text(0, 64)),
    _f("id", _ID),
)
TELEMETRY = (
    *(
        _f(k, _number())
        for k in ("uptime_s", "backlog", "dead", "oldest_undelivered_s", "disk_free_mb")
    ),
    _f("devices", _OBJECT),
    _f("mqtt", _BOOL),
    _f("name", _text(0, 200)),
    _f("location", _text(0, 200)),
)
CMD_RESULT = (
    _f("cmd_id", _ID),  # null when a command's id could not be read
    _f("ok", _BOOL, True),
    _f("detail", _text(0, 2000)),
)
APPLIED = (_f("kind", _one_of(wire.DOWN_KINDS), True), _f("version", _VERSION, True))


def _lines_why(where: str, items: list[Any], fields: tuple[_Field, ...]) -> str | None:
    seen: set[str] = set()
    for i, it in enumerate(items, 1):
        if type(it) is not dict:
            return f"{where} items[{i}] must be an object"
        # the path is spelt out only for a reason: this runs for every line of every sale
        if why := _fields_why("", it, fields):
            return f"{where} items[{i}]{why}"
        if it["sku"] in seen:
            return f"{where} items[{i}]: sku {it['sku']} is listed twice"
        seen.add(it["sku"])
    return None


def _sale_why(b: dict[str, Any]) -> str | None:
    if why := _fields_why("sale", b, SALE):
        return why
    items = b["items"]
    if why := _lines_why("sale", items, SALE_ITEM):
        return why
    total = 0
    for it in items:
        total += it["qty"] * it["unit_price_fen"]
    if b["total_fen"] != total:
        return f"sale: total_fen {b['total_fen']} is not the sum of its lines ({total})"
    payment = b.get("payment")
    return None if payment is None else _fields_why("sale payment", payment, PAYMENT)


def _adjustment_why(b: dict[str, Any]) -> str | None:
    why = _fields_why("adjustment", b, ADJUSTMENT)
    return why or _lines_why("adjustment", b.get("items") or [], ADJUSTMENT_ITEM)


def _simple(where: str, fields: tuple[_Field, ...]) -> Callable[[dict[str, Any]], str | None]:
    return lambda b: _fields_why(where, b, fields)


_BODY_CHECKS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "sale": _sale_why,
    "adjustment": _adjustment_why,
    "session": _simple("session", SESSION),
    "inventory": _simple("inventory", INVENTORY),
    "event": _simple("event", EVENT),
    "telemetry": _simple("telemetry", TELEMETRY),
    "cmd_result": _simple("cmd_result", CMD_RESULT),
    "applied": _simple("applied", APPLIED),
}
assert set(_BODY_CHECKS) == set(wire.RECORD_TYPES)


def check_body(type: str, body: Any) -> str | None:
    """Why the body of a record of ``type`` is outside the contract, or None.

    Unknown keys are ignored (a newer cabinet may send more). A body parsed by something
    other than ``loads`` should also go through the tree check (``decode_batch`` does).
    """
    check = _BODY_CHECKS.get(type) if isinstance(type, str) else None
    if check is None:
        return f"unknown record type {_show(type)}"
    if not isinstance(body, dict):
        return "body must be an object"
    return check(body)


@dataclass(frozen=True)
class UpRecord:
    id: str
    seq: int
    type: str
    at: str
    body: dict[str, Any]  # as sent, unknown keys kept


@dataclass(frozen=True)
class UpBatch:
    batch: str
    records: tuple[UpRecord, ...]  # the well-formed ones, in order
    rejected: tuple[wire.Rejected, ...]  # (id, why) of records outside the ranges
    dropped: int = 0  # records that are not an object with a string id: nothing to answer


def _record_why(r: dict[str, Any]) -> str | None:
    if why := _fields_why("record", r, RECORD):
        return why
    return _BODY_CHECKS[r["type"]](r["body"])


def check_record(r: Any) -> str | None:
    """Why one parsed record sent up is outside the contract, or None."""
    if type(r) is not dict:
        return "a record is a JSON object"
    return _record_why(r)


def _has_mark(value: Any) -> bool:
    return any(v is _NONFINITE for v in _walk(value))


def _has_nul(value: Any) -> bool:
    return any(type(v) is str and "\x00" in v for v in _walk(value))


def decode_batch(data: bytes | Any, max_bytes: int = MAX_BATCH_BYTES) -> UpBatch:
    """A batch sent up: its well-formed records, and the others rejected with a reason.

    ``ContractError`` (answer nothing) when the batch itself is malformed: not strict JSON,
    not an object, no batch id, records not a list, too many records. NaN or Infinity, or a
    U+0000 (which PostgreSQL cannot store), rejects only the record holding it. ``data`` may
    also be a value parsed elsewhere (checked as ``loads`` would, bar duplicated keys).
    """
    marks: list[str] = []
    if isinstance(data, bytes | bytearray | memoryview | str):
        m, raw = _parse(data, max_bytes, marks)
        nul = b"\\u0000" in raw  # a raw U+0000 is not JSON: only the escape needs a look
    else:
        check_tree(data)
        m = data
        nul = _has_nul(data)
    if type(m) is not dict:
        raise ContractError("a batch is a JSON object")
    batch = m.get("batch")
    if not _ID.test(batch):
        raise ContractError(f"a batch needs a batch id of 1..{ID_MAX} characters")
    records = m.get("records")
    if type(records) is not list:
        raise ContractError("a batch needs a list of records")
    if len(records) > MAX_BATCH_RECORDS:
        raise ContractError(f"a batch holds at most {MAX_BATCH_RECORDS} records")
    ok: list[UpRecord] = []
    rejected: list[wire.Rejected] = []
    dropped = 0
    for r in records:
        rid = r.get("id") if type(r) is dict else None
        if type(rid) is not str:
            dropped += 1
            continue
        if marks and _has_mark(r):
            why: str | None = "NaN or Infinity is not JSON"
        elif nul and _has_nul(r):
            why = "text holds U+0000"
        else:
            why = _record_why(r)
        if why:
            rejected.append(wire.Rejected(rid, why))
        else:
            ok.append(UpRecord(rid, r["seq"], r["type"], r["at"], r["body"]))
    return UpBatch(batch, tuple(ok), tuple(rejected), dropped)


# -- acks -------------------------------------------------------------------------------------
MAX_WHY = 500  # a rejection's reason is for people; a longer one is cut, not refused


def decode_ack(data: bytes | str | dict[str, Any], batch: str | None = None) -> wire.Ack:
    """An ``ack`` from MQTT, or the answer to ``POST /batches`` (give its ``batch``)."""
    if isinstance(data, bytes | bytearray | str):
        m = loads(data)
    else:
        check_tree(data)  # an HTTP answer parsed elsewhere: what loads would refuse, refused
        m = data
    if type(m) is not dict:
        raise ContractError("an ack is a JSON object")
    b = m.get("batch", batch)
    stored = m.get("stored", [])
    rejected = m.get("rejected", [])
    if not _ID.test(b):
        raise ContractError(f"an ack needs a batch id of 1..{ID_MAX} characters")
    if type(stored) is not list or type(rejected) is not list:
        raise ContractError("an ack needs lists stored and rejected")
    if len(stored) + len(rejected) > MAX_ACK_IDS:
        raise ContractError(f"an ack names at most {MAX_ACK_IDS} records")
    if not all(type(i) is str for i in stored):
        raise ContractError("stored holds record ids")
    rej = []
    for r in rejected:
        if type(r) is not dict or type(r.get("id")) is not str:
            raise ContractError("rejected holds {id, why}")
        why = r.get("why", "")
        rej.append(wire.Rejected(r["id"], _short(why if type(why) is str else str(why), MAX_WHY)))
    # An id no cabinet makes (empty, longer than 64) names none of its records: left out, so
    # the rest of the ack still counts.
    stored = [i for i in stored if 0 < len(i) <= ID_MAX]
    rej = [r for r in rej if 0 < len(r.id) <= ID_MAX]
    return wire.Ack(b, tuple(stored), tuple(rej))


# -- down: configuration, accounts, commands (unknown keys refused) ---------------------------
# Configuration the centre may set: key -> (types, low, high).
CONFIG_KEYS: dict[str, tuple[type | tuple[type, ...], float, float]] = {
    "unlock_timeout_s": ((int, float), 1, 120),
    "door_open_alarm_s": ((int, float), 10, 3600),
    "card_offline_limit_fen": (int, 0, 1_000_000),
    "confirm_timeout_s": ((int, float), 5, 600),
    "settle_timeout_s": ((int, float), 1, 60),
    "telemetry_interval_s": ((int, float), 1, 86_400),
    "poll_interval_s": ((int, float), 1, 86_400),
}


def _is(v: Any, t: type | tuple[type, ...]) -> bool:
    return isinstance(v, t) and not isinstance(v, bool)


def check_config(c: Any) -> str | None:
    """Why a configuration sent down is refused, or None."""
    if not isinstance(c, dict):
        return "config must be an object"
    for k, v in c.items():
        if k not in CONFIG_KEYS:
            return f"unknown config key {_show(k)}"
        t, lo, hi = CONFIG_KEYS[k]
        if not _is(v, t) or not (math.isfinite(v) and lo <= v <= hi):
            return f"{k} must be {lo}..{hi}"
    return None


ACCOUNT_STATUSES = ("active", "blocked")
_ACCOUNT_T = _Spec(
    lambda v: type(v) is str and _ACCOUNT.fullmatch(v) is not None, "32 lower-case hex digits"
)
ACCOUNT = (
    _f("account", _ACCOUNT_T, True),
    _f("name", _text(0, 100), True),
    _f("status", _one_of(ACCOUNT_STATUSES), True),
    _f("offline_limit_fen", _integer(0, OFFLINE_LIMIT_MAX_FEN)),
)


def check_accounts(a: Any) -> str | None:
    """Why an accounts list sent down is refused, or None."""
    if not isinstance(a, list) or len(a) > ACCOUNTS_MAX:
        return f"accounts must be a list of at most {ACCOUNTS_MAX}"
    seen: set[str] = set()
    for i, x in enumerate(a, 1):
        if not isinstance(x, dict):
            return f"account {i}: not {{account, name, status, offline_limit_fen}}"
        where = f"account {i}"
        if why := _unknown_why(where, x, ACCOUNT) or _fields_why(where, x, ACCOUNT):
            return why
        if x["account"] in seen:
            return f"account {i}: listed twice"
        seen.add(x["account"])
    return None


MAX_PRICE_FEN = UNIT_PRICE_MAX_FEN
REFUND_ITEM = ADJUSTMENT_ITEM
# Each command's arguments; a required one must be there, an optional one may be.
COMMAND_ARGS: dict[str, tuple[_Field, ...]] = {
    "open_door": (_f("door", _text(1, 32), True), _f("reason", _text(1, 200), True)),
    "set_price": (
        _f("sku", _SKU_T, True),
        _f("price_fen", _integer(1, MAX_PRICE_FEN, "10^7"), True),
    ),
    "block_card": (_f("account", _ACCOUNT_T, True),),
    "unblock_card": (_f("account", _ACCOUNT_T, True),),
    "refund": (
        _f("sale", _ID, True),
        _f(
            "items",
            _Spec(lambda v: type(v) is list and 0 < len(v) <= 100, "a list of 1..100 {sku, qty}"),
        ),
        _f("amount_fen", _integer(1, TOTAL_MAX_FEN, "10^9")),
        _f("reason", _text(1, 200), True),
    ),
    "session_authorized": (
        _f("session", _ID, True),
        _f("account", _text(1, 64), True),
        _f("limit_fen", _integer(1, MAX_PRICE_FEN, "10^7"), True),
    ),
    "report_now": (),
    "reboot": (),
}


def check_command_args(cmd: Any, args: Any) -> str | None:
    """Why a command's name or arguments are refused, or None."""
    if not isinstance(cmd, str) or cmd not in COMMAND_ARGS:
        return f"unknown command {_show(cmd)}"
    if not isinstance(args, dict):
        return "args must be an object"
    spec = COMMAND_ARGS[cmd]
    if why := _unknown_why(cmd, args, spec) or _fields_why(cmd, args, spec):
        return why
    if cmd == "refund":
        if args.get("items") is None and args.get("amount_fen") is None:
            return "refund: needs items or amount_fen"
        for i, it in enumerate(args.get("items") or [], 1):
            if not isinstance(it, dict):
                return f"refund: items[{i}] must be an object"
            if why := _unknown_why(f"refund items[{i}]", it, REFUND_ITEM):
                return why
        if why := _lines_why("refund", args.get("items") or [], REFUND_ITEM):
            return why
    return None


def check_expiry(expires_at: Any, now: float) -> str | None:
    """Why a command's ``expires_at`` is refused at ``now`` (Unix seconds), or None."""
    if not _time_ok(expires_at):
        return "expires_at must be an RFC 3339 time"
    t = wire.parse_time(expires_at)
    assert t is not None
    if t <= now:
        return "expired"
    if t > now + MAX_TTL_S:
        return "expires_at too far in the future"
    return None


# -- down and files: the catalogue ------------------------------------------------------------
# Messages name the path (list indexes count from 1, as in the configuration) and say exactly
# what is wrong; kiosk.catalog lists them all, check_catalog joins them into one reason.
CatalogCheck = Callable[[Any], str | None]


def _c_text(hi: int) -> CatalogCheck:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"must be a string, not {_show(v)}"
        if not v.strip():
            return "must not be empty"
        return None if len(v) <= hi else f"must be at most {hi} characters"

    return check


def _c_int(lo: int, hi: int | None = None, cap: int | None = None) -> CatalogCheck:
    """``hi``: "outside lo..hi" messages; ``cap``: an upper bound said on its own."""

    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"must be an integer, not {_show(v)}"
        if hi is not None:
            return None if lo <= v <= hi else f"{v} is outside {lo}..{hi}"
        if v < lo:
            return f"{v} must be at least {lo}"
        return None if cap is None or v <= cap else f"{v} must be at most {cap}"

    return check


def _c_grams(positive: bool, cap: float) -> CatalogCheck:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return f"must be a number, not {_show(v)}"
        if not math.isfinite(v):
            return f"must be a finite number, not {v}"
        if positive and not v > 0:
            return f"{v} must be greater than 0"
        if not positive and not v >= 0:
            return f"{v} must not be negative"
        return None if v <= cap else f"{v} must be at most {cap:g}"

    return check


def _c_sku(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"must be a string, not {_show(v)}"
    return None if _SKU.fullmatch(v) else f"{_show(v)} is not a SKU ({SKU_RULE})"


def _c_shelf_life(v: Any) -> str | None:
    return None if v is None else _c_int(1, cap=SHELF_LIFE_MAX_DAYS)(v)


def _c_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, not {_show(v)}"


@dataclass(frozen=True)
class CatalogField:
    key: str
    check: CatalogCheck
    rule: str
    required: bool = True


CATEGORY = (
    CatalogField("id", _c_text(ID_MAX), f"text of 1..{ID_MAX} characters"),
    CatalogField("zh", _c_text(100), "text of 1..100 characters"),
    CatalogField("en", _c_text(100), "text of 1..100 characters"),
)
SUPPLIER = (
    CatalogField("id", _c_text(ID_MAX), f"text of 1..{ID_MAX} characters"),
    CatalogField("zh", _c_text(100), "text of 1..100 characters"),
    CatalogField("kind", _c_text(32), "text of 1..32 characters"),
    CatalogField("county", _c_text(64), "text of 1..64 characters"),
    CatalogField("town", _c_text(64), "text of 1..64 characters"),
    CatalogField("households", _c_int(0, cap=HOUSEHOLDS_MAX), f"an integer 0..{HOUSEHOLDS_MAX}"),
)
PRODUCT = (
    CatalogField("sku", _c_sku, f"a SKU: {SKU_RULE}"),
    CatalogField("zh", _c_text(100), "text of 1..100 characters"),
    CatalogField("en", _c_text(200), "text of 1..200 characters"),
    CatalogField("category", _c_text(ID_MAX), "the id of one of categories"),
    CatalogField("supplier", _c_text(ID_MAX), "the id of one of suppliers"),
    CatalogField("cert_no", _c_text(64), "text of 1..64 characters"),
    CatalogField(
        "price_fen", _c_int(*CATALOG_PRICE), f"an integer {CATALOG_PRICE[0]}..{CATALOG_PRICE[1]}"
    ),
    CatalogField(
        "unit_g", _c_grams(True, UNIT_G_MAX), f"a finite number 0 < x <= {UNIT_G_MAX:g} (grams)"
    ),
    CatalogField(
        "unit_sd_g",
        _c_grams(False, UNIT_SD_G_MAX),
        f"a finite number 0 <= x <= {UNIT_SD_G_MAX:g} (grams)",
    ),
    CatalogField(
        "shelf_life_days",
        _c_shelf_life,
        f"null or an integer 1..{SHELF_LIFE_MAX_DAYS}",
        required=False,
    ),
    CatalogField("fragile", _c_bool, "true or false (default false)", required=False),
)
CATALOG_TOP = ("schema", "version", "note", "categories", "suppliers", "products")


class _CatalogChecker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, why: str) -> None:
        self.problems.append(f"{path}: {why}")

    def entry(self, raw: Any, spec: tuple[CatalogField, ...], path: str) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.problem(path, "must be an object")
            return None
        ok = True
        for f in spec:
            if f.key not in raw:
                if f.required:
                    self.problem(f"{path}.{f.key}", "missing")
                    ok = False
            elif why := f.check(raw[f.key]):
                self.problem(f"{path}.{f.key}", why)
                ok = False
        known = {f.key for f in spec}
        for k in raw:
            if k not in known:
                self.problem(f"{path}.{_short(str(k), 40)}", "unknown key")
                ok = False
        return raw if ok else None

    def entries(
        self, data: dict[str, Any], key: str, spec: tuple[CatalogField, ...]
    ) -> list[tuple[str, dict[str, Any]]]:
        raw = data.get(key)
        if not isinstance(raw, list) or not raw:
            self.problem(key, "must be a non-empty list")
            return []
        if len(raw) > CATALOG_ENTRIES_MAX:
            self.problem(key, f"must hold at most {CATALOG_ENTRIES_MAX} entries")
            return []
        found = []
        for i, e in enumerate(raw, 1):
            entry = self.entry(e, spec, f"{key}[{i}]")
            if entry is not None:
                found.append((f"{key}[{i}]", entry))
        return found

    def unique(self, entries: list[tuple[str, dict[str, Any]]], field: str) -> None:
        first: dict[str, str] = {}
        for path, e in entries:
            if e[field] in first:
                self.problem(f"{path}.{field}", f"{_show(e[field])} is already {first[e[field]]}")
            else:
                first[e[field]] = path


def _ids(raw: Any) -> set[str]:
    entries = raw if isinstance(raw, list) else []
    return {e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)}


def catalog_problems(obj: Any) -> list[str]:
    """Every problem of a catalogue document, each ``<path>: <why>``; empty when it is good."""
    if not isinstance(obj, dict):
        return ["(top): must be a JSON object"]
    ck = _CatalogChecker()
    for k in obj:
        if k not in CATALOG_TOP:
            ck.problem(_short(str(k), 40), "unknown key")
    if "schema" in obj and obj["schema"] != CATALOG_SCHEMA:
        ck.problem("schema", f"{_show(obj['schema'])} is not {CATALOG_SCHEMA!r}")
    if "version" not in obj:
        ck.problem("version", "missing")
    elif why := _c_int(1, cap=VERSION_MAX)(obj["version"]):
        ck.problem("version", why)
    note = obj.get("note", "")
    if not isinstance(note, str):
        ck.problem("note", f"must be a string, not {_show(note)}")
    elif len(note) > 500:
        ck.problem("note", "must be at most 500 characters")
    categories = ck.entries(obj, "categories", CATEGORY)
    suppliers = ck.entries(obj, "suppliers", SUPPLIER)
    products = ck.entries(obj, "products", PRODUCT)
    ck.unique(categories, "id")
    ck.unique(suppliers, "id")
    ck.unique(products, "sku")
    # Ids of entries with some other bad field still count: one mistake, one message.
    known_categories = _ids(obj.get("categories"))
    known_suppliers = _ids(obj.get("suppliers"))
    for path, p in products:
        if p["category"] not in known_categories:
            ck.problem(f"{path}.category", f"{_show(p['category'])} is not in categories")
        if p["supplier"] not in known_suppliers:
            ck.problem(f"{path}.supplier", f"{_show(p['supplier'])} is not in suppliers")
    return ck.problems


def check_catalog_price(v: Any) -> str | None:
    """Why ``v`` is not a catalogue price (``set_price`` too), or None."""
    return _c_int(*CATALOG_PRICE)(v)


def check_catalog(c: Any) -> str | None:
    """Why a catalogue is refused (its problems joined, at most 500 characters), or None."""
    problems = catalog_problems(c)
    return _short("; ".join(problems), 500) if problems else None


# -- the ranges table (integration.md, "Ranges") ----------------------------------------------
def _rows(where: str, fields: Iterable[_Field], prefix: str = "") -> list[Range]:
    return [
        Range(where, prefix + f.key, ("required: " if f.required else "") + f.rule) for f in fields
    ]


def _catalog_rows(where: str, fields: Iterable[CatalogField]) -> list[Range]:
    return [Range(where, f.key, ("required: " if f.required else "") + f.rule) for f in fields]


RANGES: tuple[Range, ...] = (
    Range("batch", "batch", f"required: text of 1..{ID_MAX} characters"),
    Range("batch", "records", f"required: a list of at most {MAX_BATCH_RECORDS} records"),
    *_rows("record", RECORD),
    *_rows("sale", SALE),
    *_rows("sale", SALE_ITEM, "items[]."),
    Range("sale", "total_fen", "the sum of qty * unit_price_fen of its items"),
    Range("sale", "items[].sku", "each SKU once in a sale"),
    *_rows("sale", PAYMENT, "payment."),
    *_rows("adjustment", ADJUSTMENT),
    *_rows("adjustment", ADJUSTMENT_ITEM, "items[]."),
    *_rows("session", SESSION),
    *_rows("inventory", INVENTORY),
    *_rows("event", EVENT),
    *_rows("telemetry", TELEMETRY),
    *_rows("cmd_result", CMD_RESULT),
    *_rows("applied", APPLIED),
    Range("any record", "(any text)", "no U+0000 (PostgreSQL cannot store it)"),
    Range("ack", "stored, rejected", f"lists naming at most {MAX_ACK_IDS} record ids in all"),
    Range("ack", "rejected[].why", f"text, cut to {MAX_WHY} characters"),
    *(
        Range("config", k, f"a number {lo:g}..{hi:g}" if t is not int else f"an integer {lo}..{hi}")
        for k, (t, lo, hi) in CONFIG_KEYS.items()
    ),
    Range("accounts", "accounts", f"a list of at most {ACCOUNTS_MAX}, each account once"),
    *_rows("accounts", ACCOUNT, "[]."),
    Range("command", "cmd_id", f"required: text of 1..{ID_MAX} characters, never seen before"),
    Range("command", "expires_at", "required: an RFC 3339 time, in the next 7 days"),
    *(r for cmd, spec in COMMAND_ARGS.items() for r in _rows(f"command {cmd}", spec, "args.")),
    *_rows("command refund", REFUND_ITEM, "args.items[]."),
    Range("command refund", "args", "at least one of items and amount_fen"),
    Range("catalog", "version", "required: an integer 1..2^53"),
    Range("catalog", "schema", f"{CATALOG_SCHEMA!r} when given"),
    Range("catalog", "note", "text of at most 500 characters"),
    Range(
        "catalog",
        "categories, suppliers, products",
        f"required: non-empty lists of at most {CATALOG_ENTRIES_MAX}; ids and SKUs unique",
    ),
    *_catalog_rows("catalog categories[]", CATEGORY),
    *_catalog_rows("catalog suppliers[]", SUPPLIER),
    *_catalog_rows("catalog products[]", PRODUCT),
)


def ranges_markdown() -> str:
    """The ranges table as integration.md shows it."""
    lines = ["| where | field | must be |", "|---|---|---|"]
    for r in RANGES:
        rule = r.rule.replace("|", "\\|")
        lines.append(f"| {r.where} | `{r.field}` | {rule} |")
    return "\n".join(lines) + "\n"
