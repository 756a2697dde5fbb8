"""The controller's state as the screen (and ``kiosk ctl state``) sees it: frozen values.

The controller builds a new ``Snapshot`` after every change and hands it to subscribers; the UI
never reads the database or a driver. Everything here is plain data: ``as_dict`` gives the JSON
form. Names are a contract with the UI: add fields (with defaults), never rename.

Times: ``*_at`` fields are RFC 3339 UTC text; ``deadline`` is the controller's monotonic clock
and ``remaining_s`` the seconds left when the snapshot was taken.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any


class SessionState(enum.StrEnum):
    IDLE = "idle"
    AUTHORISING = "authorising"
    UNLOCKING = "unlocking"  # lock pulsed, waiting for the door to be pulled
    OPEN = "open"
    SETTLING = "settling"  # door shut, waiting for the shelves and the verdict
    CONFIRMING = "confirming"  # uncertain: the customer picks a basket
    SETTLED = "settled"  # sale recorded; receipt shown
    CANCELLED = "cancelled"  # nothing charged (door never pulled, refused payment ...)
    OUT_OF_SERVICE = "out_of_service"


class Reason(enum.StrEnum):
    """Reason codes in ``Result.code``, ``Snapshot.refusal`` and ``Snapshot.out_of_service``."""

    OK = "ok"
    # customers
    CARD_UNKNOWN = "card_unknown"  # see your administrator
    CARD_BLOCKED = "card_blocked"  # see your administrator
    OVER_OFFLINE_LIMIT = "over_offline_limit"  # try a payment code
    PAYMENT_DECLINED = "payment_declined"
    NETWORK_DOWN = "network_down"  # card payment still works
    PAYMENT_UNAVAILABLE = "payment_unavailable"  # no payment port configured
    UNKNOWN_CODE = "unknown_code"
    CODE_EXPIRED = "code_expired"  # an on-screen code unknown, used, or off the screen too long
    BUSY = "busy"  # a session is already running
    NO_SUCH_DOOR = "no_such_door"
    NOTHING_TO_CONFIRM = "nothing_to_confirm"
    BAD_CHOICE = "bad_choice"
    DOOR_NOT_PULLED = "door_not_pulled"  # session cancelled, nothing charged
    CANCELLED = "cancelled"  # the customer cancelled before opening the door
    NOTHING_TAKEN = "nothing_taken"  # the door opened and closed, nothing charged
    # the cabinet
    STORAGE_FULL = "storage_full"  # the disk cannot take a sale
    LOCK_OFFLINE = "lock_offline"
    LOCK_FAULT = "lock_fault"
    SCALE_FAULT = "scale_fault"
    DOOR_OPEN = "door_open"  # a door is unlatched without a session
    STARTING = "starting"
    # operators
    NOT_LOGGED_IN = "not_logged_in"
    BAD_PIN = "bad_pin"
    PIN_REQUIRED = "pin_required"
    LOCKED_OUT = "locked_out"
    UNKNOWN_OPERATOR = "unknown_operator"
    NO_SUCH_SHELF = "no_such_shelf"
    NO_SUCH_ALARM = "no_such_alarm"
    NO_SUCH_SALE = "no_such_sale"
    NO_SUCH_PRODUCT = "no_such_product"
    NOT_RESTOCKING = "not_restocking"
    REFUND_TOO_LARGE = "refund_too_large"
    INDISTINGUISHABLE = "indistinguishable"  # planogram: lanes cannot be told apart by weight
    BAD_REQUEST = "bad_request"


@dataclass(frozen=True)
class OpenSession:
    id: str
    door: str
    kind: str  # sale | restock | maintenance
    method: str  # card | payment_code | scan_to_open | operator
    state: str  # a SessionState value
    started_at: str
    deadline: float | None = None  # monotonic: unlock timeout, or door-open alarm, or confirm
    remaining_s: float | None = None
    door_open_too_long: bool = False  # the screen prompts "please close door N"


@dataclass(frozen=True)
class DoorView:
    id: str
    open: bool  # not latched
    session: str | None = None
    fault: str | None = None  # reason code when its lock board is offline/faulty


@dataclass(frozen=True)
class ShelfView:
    id: str
    door: str
    grams: float | None
    stable: bool
    fault: str | None = None


@dataclass(frozen=True)
class AlarmView:
    id: str
    at: str
    kind: str  # door_forced, door_left_open, scale_fault, lock_fault, foreign_object, ...
    severity: str  # info | warning | alarm
    device: str | None
    detail: dict[str, Any]
    acked: bool = False


@dataclass(frozen=True)
class ItemView:
    sku: str
    zh: str
    en: str
    qty: int
    unit_price_fen: int
    line_fen: int


@dataclass(frozen=True)
class SupplierView:
    id: str
    zh: str
    kind: str  # enterprise | cooperative
    town: str
    households: int


@dataclass(frozen=True)
class Receipt:
    sale: str
    session: str
    door: str
    items: tuple[ItemView, ...]
    total_fen: int
    method: str
    payment_status: str  # captured | deferred | failed
    suppliers: tuple[SupplierView, ...]
    households: int  # sum over the distinct suppliers of this sale
    review: bool
    closed_at: str


@dataclass(frozen=True)
class BasketView:
    index: int  # what ConfirmBasket.choice takes
    items: tuple[ItemView, ...]
    total_fen: int


@dataclass(frozen=True)
class OperatorView:
    id: str
    name: str
    since: str


@dataclass(frozen=True)
class ProductView:
    sku: str
    zh: str
    en: str
    category: str
    supplier: str
    supplier_zh: str
    supplier_kind: str
    county: str
    town: str
    cert_no: str | None
    certified: bool
    price_fen: int
    stock: int
    available: bool
    why_unavailable: str | None = None  # sold_out | expired | scale_fault | None
    doors: tuple[str, ...] = ()
    households: int = 0  # households its supplier supports


@dataclass(frozen=True)
class CategoryView:
    id: str
    zh: str
    en: str


@dataclass(frozen=True)
class RestockLane:
    shelf: str
    sku: str
    zh: str
    en: str
    expected: int  # what inventory says
    weighed: int | None  # the whole count the shelf's weight says now (None: unknown)
    exact: bool  # the weight agrees with a whole count
    expires_on: str  # default for the new batch (ISO date)


@dataclass(frozen=True)
class RestockView:
    session: str
    door: str
    lanes: tuple[RestockLane, ...]


@dataclass(frozen=True)
class SyncView:
    backlog: int = 0  # outbox rows pending
    dead: int = 0
    last_contact: str | None = None
    catalog_version: int | None = None


@dataclass(frozen=True)
class ReviewSale:
    """A sale flagged for review, with what an operator needs to refund a part of it."""

    id: str
    closed_at: str
    total_fen: int
    items: tuple[ItemView, ...]
    refunded_fen: int = 0  # adjustments already made against it


@dataclass(frozen=True)
class SalesView:
    today_count: int = 0
    today_total_fen: int = 0
    review: tuple[str, ...] = ()  # sale ids flagged for review, newest first
    review_detail: tuple[ReviewSale, ...] = ()  # the same sales, in the same order


@dataclass(frozen=True)
class PlanogramLaneView:
    sku: str
    low_stock: int  # the low-stock alarm threshold
    count: int  # what inventory says is in the lane


@dataclass(frozen=True)
class PlanogramShelf:
    shelf: str
    door: str
    lanes: tuple[PlanogramLaneView, ...] = ()
    skus: tuple[str, ...] = ()  # the lanes' skus, in lane order
    warnings: tuple[str, ...] = ()  # products that cannot be told apart by weight (names in zh)
    warnings_en: tuple[str, ...] = ()  # the same warnings with English names


@dataclass(frozen=True)
class CabinetView:
    id: str
    name: str
    location: str


@dataclass(frozen=True)
class Snapshot:
    state: str  # a SessionState value
    seq: int  # grows with every snapshot
    cabinet: CabinetView
    session: OpenSession | None = None
    doors: tuple[DoorView, ...] = ()
    shelves: tuple[ShelfView, ...] = ()
    alarms: tuple[AlarmView, ...] = ()  # unacknowledged first, newest first
    receipt: Receipt | None = None
    candidates: tuple[BasketView, ...] = ()  # when confirming, cheaper first
    refusal: str | None = None  # the last refusal's Reason, until the next attempt
    out_of_service: str | None = None  # a Reason when new sessions are refused
    operator: OperatorView | None = None
    restock: RestockView | None = None
    products: tuple[ProductView, ...] = ()
    categories: tuple[CategoryView, ...] = ()
    sync: SyncView = SyncView()
    sales: SalesView = SalesView()
    planogram_warnings: tuple[str, ...] = ()  # every shelf's warnings (zh), "{shelf}: ..."
    scan_url: str | None = None  # the scan-to-open QR while the idle screen shows (single-use)
    planogram: tuple[PlanogramShelf, ...] = ()  # per shelf (config order)
    operator_pending: str | None = None  # an operator card was read: its name, waiting for a PIN


def as_dict(value: Any) -> Any:
    """The JSON form of a snapshot (or any value made of these dataclasses)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [as_dict(v) for v in value]
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value
