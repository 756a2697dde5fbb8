"""What a person (or a test) asks the controller to do: typed intents, and the answer.

The touchscreen builds these in-process; ``kiosk ctl`` sends them as one JSON line over the
control socket (``{"intent": "confirm_basket", "choice": 0}``); ``from_dict``/``to_dict``
convert between the two. The controller answers every intent with a ``Result`` whose ``code``
is a stable reason code (see ``kiosk.snapshot.Reason``) the screen turns into words.

Language is UI-only and not an intent. Names here are a contract with the UI: add, never rename.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal


@dataclass(frozen=True)
class Intent:
    """Base of every intent; ``name`` is the wire name (snake case of the class name)."""

    name: ClassVar[str] = ""
    operator_only: ClassVar[bool] = False


# -- customers ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scan(Intent):
    """A scanned or typed line: a staff card UID or a payment code (keyboard wedge, tests)."""

    text: str
    door: str | None = None  # which door to open; None: the first door with stock


@dataclass(frozen=True)
class ConfirmBasket(Intent):
    """The customer's pick among ``Snapshot.candidates`` (0-based); None: "none of these"."""

    choice: int | None


@dataclass(frozen=True)
class Cancel(Intent):
    """Give up the session before its door is pulled (nothing is charged)."""


@dataclass(frozen=True)
class DismissReceipt(Intent):
    """Back to idle from the receipt (a tap; the screen also times out after 10 s)."""


# -- operators ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class OperatorLogin(Intent):
    """An operator card (its UID as scanned) and/or a PIN."""

    card: str | None = None
    pin: str | None = None


@dataclass(frozen=True)
class OperatorLogout(Intent):
    operator_only = True


@dataclass(frozen=True)
class OpenDoorForRestock(Intent):
    operator_only = True
    door: str


@dataclass(frozen=True)
class OpenDoor(Intent):
    """Maintenance opening (no counts, no sale): cleaning, repairs."""

    operator_only = True
    door: str
    reason: str = ""


@dataclass(frozen=True)
class LaneCount(Intent):
    """One lane's confirmed count after restock; ``expires_on`` ISO date or None (default)."""

    shelf: str
    sku: str
    count: int
    expires_on: str | None = None


@dataclass(frozen=True)
class ConfirmCounts(Intent):
    """Finish a restock session: the counts per lane (lanes not listed keep the weighed count)."""

    operator_only = True
    door: str
    counts: tuple[LaneCount, ...] = ()


@dataclass(frozen=True)
class Calibrate(Intent):
    """Zero an empty shelf, then a known load in grams."""

    operator_only = True
    shelf: str
    step: Literal["zero", "known"]
    known_g: int | None = None


@dataclass(frozen=True)
class PlanogramLane(Intent):
    sku: str
    low_stock: int = 1


@dataclass(frozen=True)
class SetPlanogram(Intent):
    """Replace the lanes of one shelf; the answer carries the weighing warnings."""

    operator_only = True
    shelf: str
    lanes: tuple[PlanogramLane, ...] = ()
    force: bool = False  # apply even when products cannot be told apart by weight


@dataclass(frozen=True)
class AckAlarm(Intent):
    operator_only = True
    alarm: str  # an alarm id from Snapshot.alarms


@dataclass(frozen=True)
class RefundItem(Intent):
    sku: str
    qty: int


@dataclass(frozen=True)
class Refund(Intent):
    """An adjustment of a recorded sale: the whole sale, some items, or an amount."""

    operator_only = True
    sale: str
    items: tuple[RefundItem, ...] = ()
    amount_fen: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class State(Intent):
    """Ask for the snapshot (the answer's ``data`` holds it)."""


# -- the answer --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    ok: bool
    code: str = "ok"  # a kiosk.snapshot.Reason value
    detail: str = ""  # for logs and operators; the screen shows words for ``code``
    data: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def refused(code: str, detail: str = "") -> Result:
        return Result(False, code, detail)


# -- the wire form -----------------------------------------------------------------------------
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


ALL: tuple[type[Intent], ...] = (
    Scan,
    ConfirmBasket,
    Cancel,
    DismissReceipt,
    OperatorLogin,
    OperatorLogout,
    OpenDoorForRestock,
    OpenDoor,
    ConfirmCounts,
    Calibrate,
    SetPlanogram,
    AckAlarm,
    Refund,
    State,
)
for _cls in (*ALL, LaneCount, PlanogramLane, RefundItem):
    _cls.name = _snake(_cls.__name__)
BY_NAME: dict[str, type[Intent]] = {c.name: c for c in ALL}
_NESTED: dict[tuple[type[Intent], str], type[Intent]] = {
    (ConfirmCounts, "counts"): LaneCount,
    (SetPlanogram, "lanes"): PlanogramLane,
    (Refund, "items"): RefundItem,
}


class BadIntent(ValueError):
    """A control line that is not a known intent with the right fields."""


def to_dict(intent: Intent) -> dict[str, Any]:
    d = dataclasses.asdict(intent)
    return {"intent": type(intent).name, **d}


def from_dict(d: dict[str, Any]) -> Intent:
    if not isinstance(d, dict):
        raise BadIntent("a control line is a JSON object")
    cls = BY_NAME.get(str(d.get("intent", "")))
    if cls is None:
        raise BadIntent(f"unknown intent {d.get('intent')!r}; known: {', '.join(BY_NAME)}")
    return _build(cls, {k: v for k, v in d.items() if k != "intent"})


def _build(cls: type[Intent], d: dict[str, Any]) -> Intent:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise BadIntent(f"{cls.name}: unknown fields {sorted(unknown)}")
    args: dict[str, Any] = {}
    for k, v in d.items():
        sub = _NESTED.get((cls, k))
        if sub is not None:
            if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
                raise BadIntent(f"{cls.name}.{k}: a list of objects")
            v = tuple(_build(sub, x) for x in v)
        args[k] = v
    try:
        return cls(**args)
    except TypeError as e:
        raise BadIntent(f"{cls.name}: {e}") from e
