"""The door session as one table: (state, event) -> (next state, action).

The controller looks every event up here and runs the named action after moving to the next
state; an event with no row in the current state is refused (intents) or ignored (hardware),
so the whole life of a session can be read in one place. Alarms (door forced, door left open,
scale and lock faults, foreign objects ...) are raised by actions and by the door watcher;
they never change the session's state by themselves.
"""

from __future__ import annotations

import enum

from kiosk.snapshot import SessionState as S


class Ev(enum.StrEnum):
    AUTH_START = "auth_start"  # a card, payment code, or inbox session_authorized
    AUTH_OK = "auth_ok"
    AUTH_REFUSED = "auth_refused"
    UNLOCK_FAILED = "unlock_failed"  # the lock board did not answer or did not open
    DOOR_OPENED = "door_opened"
    DOOR_CLOSED = "door_closed"
    UNLOCK_TIMEOUT = "unlock_timeout"  # door not pulled within limits.unlock_timeout_s
    OPEN_TOO_LONG = "open_too_long"  # limits.door_open_alarm_s
    VERDICT_SURE = "verdict_sure"
    VERDICT_UNSURE = "verdict_unsure"
    NEED_COUNTS = "need_counts"  # restock: the door closed before the counts were confirmed
    CONFIRMED = "confirmed"  # a basket picked, or restock counts confirmed
    CONFIRM_TIMEOUT = "confirm_timeout"
    CANCEL = "cancel"
    DISMISS = "dismiss"  # a tap on the receipt, or its 10 s timeout


TABLE: dict[tuple[S, Ev], tuple[S, str]] = {
    (S.IDLE, Ev.AUTH_START): (S.AUTHORISING, "authorise"),
    (S.SETTLED, Ev.AUTH_START): (S.AUTHORISING, "authorise"),
    (S.CANCELLED, Ev.AUTH_START): (S.AUTHORISING, "authorise"),
    (S.AUTHORISING, Ev.AUTH_OK): (S.UNLOCKING, "journal_and_unlock"),
    (S.AUTHORISING, Ev.AUTH_REFUSED): (S.IDLE, "refused"),
    (S.AUTHORISING, Ev.CANCEL): (S.IDLE, "refused"),
    (S.UNLOCKING, Ev.DOOR_OPENED): (S.OPEN, "door_opened"),
    (S.UNLOCKING, Ev.UNLOCK_TIMEOUT): (S.CANCELLED, "cancel_session"),
    (S.UNLOCKING, Ev.UNLOCK_FAILED): (S.CANCELLED, "cancel_session"),
    (S.UNLOCKING, Ev.CANCEL): (S.CANCELLED, "cancel_session"),
    (S.OPEN, Ev.OPEN_TOO_LONG): (S.OPEN, "door_left_open"),
    (S.OPEN, Ev.DOOR_CLOSED): (S.SETTLING, "door_closed"),
    (S.SETTLING, Ev.VERDICT_SURE): (S.SETTLED, "record"),
    (S.SETTLING, Ev.VERDICT_UNSURE): (S.CONFIRMING, "ask"),
    (S.SETTLING, Ev.NEED_COUNTS): (S.CONFIRMING, "ask"),
    (S.CONFIRMING, Ev.CONFIRMED): (S.SETTLED, "record"),
    (S.CONFIRMING, Ev.CONFIRM_TIMEOUT): (S.SETTLED, "record"),
    (S.SETTLED, Ev.DISMISS): (S.IDLE, "clear"),
    (S.CANCELLED, Ev.DISMISS): (S.IDLE, "clear"),
}

# States in which a session row exists and is not finished.
ACTIVE = frozenset({S.UNLOCKING, S.OPEN, S.SETTLING, S.CONFIRMING})
# States in which a new session may begin.
READY = frozenset({S.IDLE, S.SETTLED, S.CANCELLED})


def step(state: S, event: Ev) -> tuple[S, str] | None:
    """The next state and action, or None when ``event`` means nothing in ``state``."""
    return TABLE.get((state, event))
