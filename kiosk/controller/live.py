"""The controller's shared pieces: timing constants, the running session, the messages the worker
posts to itself, and the verdict as kept in the journal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kiosk import intents as I
from kiosk.hardware import HardwareError
from kiosk.snapshot import Reason
from kiosk.weighing import Basket, Move, SessionWeigher, Verdict

RECEIPT_S = 10.0  # the receipt goes back to idle after this (or a tap)
# A restock or maintenance session has no receipt to read: it is done once recorded, and stays
# "settled" only long enough for observers (kiosk ctl, the UI) to see it finish.
OPERATOR_DONE_S = 0.5
CANCELLED_S = 4.0
OPERATOR_IDLE_S = 600.0  # an operator left logged in is logged out after this
PENDING_CARD_S = 60.0  # an operator card waits this long for its PIN
BASELINE_SAMPLES = 12  # a session keeps this many samples from before the door opened ...
BASELINE_LEVEL_SAMPLES = 4  # ... and its baseline level is the mean of the last few
RING_S = 4.0  # recent readings kept per shelf (a new session's baseline comes from them)
FRESH_S = 2.5  # a shelf with no reading this recent is not weighing
INBOX_EVERY_S = 0.5
HOUSEKEEPING_EVERY_S = 2.0
EXPIRY_EVERY_S = 300.0
MIN_FREE_BYTES = 5_000_000  # under this a sale may not fit: refuse new sessions
ASK_MIN_SCORE = 0.05  # a dearer basket less likely than this is never asked about
ASK_LOSS_REL = 0.01  # expected undercharge (share of the charge) worth asking the customer
INBOX_CMDS = ("session_authorized", "open_door", "refund", "reboot")


@dataclass
class Live:
    """The running session (worker thread only)."""

    id: str
    door: str
    kind: str  # sale | restock | maintenance
    method: str
    started_at: str
    account: str | None = None
    auth_id: str | None = None
    hold_fen: int | None = None
    operator: str | None = None
    code: str | None = None  # a payment code, only until it is authorised
    inbound: str | None = None  # the inbox row that opened it
    cmd_id: str | None = None
    catalog_version: int | None = None
    prices: dict[str, int] = field(default_factory=dict)
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)
    weigher: SessionWeigher | None = None
    deadline: float | None = None
    open_alarm_at: float | None = None
    alarmed_open: bool = False
    unlocked: bool = False
    verdict: Verdict | None = None
    choice: int | None = None  # the customer's pick when confirming
    review: bool = False
    counts: dict[tuple[str, str], I.LaneCount] = field(default_factory=dict)
    counts_confirmed: bool = False
    settle_deadline: float | None = None
    closed_at: str | None = None
    opened_at: str | None = None


@dataclass
class Stop:
    """Asks the worker to shut down."""


@dataclass(frozen=True)
class Code:
    """A code the scanner read (posted by its thread)."""

    text: str


@dataclass(frozen=True)
class AuthAnswer:
    """The payment port's answer (posted by the thread that asked)."""

    session: str
    ok: bool
    auth_id: str | None
    why: str
    offline: bool


def lock_code(e: HardwareError) -> str:
    from kiosk.hardware import LockBoardOffline

    return Reason.LOCK_OFFLINE if isinstance(e, LockBoardOffline) else Reason.LOCK_FAULT


def mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def close_call(v: Verdict) -> bool:
    """A dearer basket likely enough that charging the verdict is a guess: ask the customer.

    The weigher calls a verdict sure while the runner-up stays under its own bar (30 %); when
    the cheaper basket leads, that undercharges at worst. But 2 x 265 g against 412 g + 118 g
    (one lane against two) leads only about 5:1 on priors, 5 yuan apart: the silent guess
    architecture.md rules out. So a sale is asked about when the undercharge expected from
    dearer baskets of at least ``ASK_MIN_SCORE`` reaches ``ASK_LOSS_REL`` of its charge (a
    10 g question between 45 and 48 yuan of rice is not worth stopping anyone for).
    """
    ranked = sorted(v.candidates, key=lambda b: -b.score)
    if len(ranked) < 2 or ranked[0].charge_fen <= 0:
        return False
    lead = ranked[0]
    loss = sum(
        b.score * (b.charge_fen - lead.charge_fen)
        for b in ranked[1:]
        if b.score >= ASK_MIN_SCORE and b.charge_fen > lead.charge_fen
    )
    return loss >= ASK_LOSS_REL * lead.charge_fen


def cheaper_first(cands: Sequence[Basket]) -> list[Basket]:
    return sorted(cands, key=lambda b: (b.charge_fen, -b.score))


class VerdictMemo:
    """A verdict kept in ``sessions.verdict_json`` (for review, and for recovery in confirming)."""

    @staticmethod
    def dumps(v: Verdict) -> str:
        def basket(b: Basket) -> dict[str, Any]:
            return {
                "taken": dict(b.taken),
                "misplaced": [{"sku": m.sku, "src": m.src, "dst": m.dst} for m in b.misplaced],
                "foreign": list(b.foreign),
                "charge_fen": b.charge_fen,
                "score": b.score,
            }

        return json.dumps(
            {
                "taken": dict(v.taken),
                "misplaced": [{"sku": m.sku, "src": m.src, "dst": m.dst} for m in v.misplaced],
                "foreign": list(v.foreign),
                "fault": list(v.fault),
                "uncertain": v.uncertain,
                "confidence": v.confidence,
                "decided_s": v.decided_s,
                "candidates": [basket(b) for b in v.candidates],
                "faults_why": dict(v.faults_why or {}),
            }
        )

    @staticmethod
    def loads(text: str) -> Verdict:
        d = json.loads(text)

        def moves(xs: list[dict[str, str]]) -> tuple[Move, ...]:
            return tuple(Move(m["sku"], m["src"], m["dst"]) for m in xs)

        return Verdict(
            taken=d["taken"],
            misplaced=moves(d["misplaced"]),
            foreign=tuple(d["foreign"]),
            fault=tuple(d["fault"]),
            uncertain=d["uncertain"],
            confidence=d["confidence"],
            decided_s=d["decided_s"],
            candidates=tuple(
                Basket(
                    b["taken"],
                    moves(b["misplaced"]),
                    tuple(b["foreign"]),
                    b["charge_fen"],
                    b["score"],
                )
                for b in d["candidates"]
            ),
            faults_why=d.get("faults_why"),
        )
