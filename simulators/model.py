"""The simulated cabinet's one physical model: doors, shelves, items, load cells.

Every device simulator reads this model; the control port changes it. No I/O here, one lock
around everything, and every signal is a function of the monotonic clock, so two readers at
the same instant see the same value.

Doors: a lock pulse releases the latch for ``PULSE_S``; a pull within that window swings the
door open; otherwise the latch relocks by itself. A door pushed shut latches. The lock
board's feedback bit is "not latched" (hardware.md section 1).

Load cells: raw signal = dead load + items + foreign objects + presses, each load change
settling first-order (``TAU_S``), plus slow drift and noise; the transmitter shows
``(raw - zero_raw) * gain`` in divisions. Items get their real weight once, from the
catalogue's mean and sd, and keep it while they travel between shelves and the hand.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kiosk.config import Config, Shelf

PULSE_S = 3.0  # how long a lock pulse keeps the latch released
TAU_S = 0.5  # load-cell settling time constant
UNSTABLE_WINDOW_S = 0.5
UNSTABLE_DIVISIONS = 3  # moved more than this in the window: "unstable"
NOISE_BUCKET_S = 0.02  # noise is constant within a bucket: consistent for every reader
DRIFT_G = 0.3  # amplitude of the slow drift
DRIFT_PERIOD_S = 300.0
DEAD_LOAD_G = 2300.0  # the shelf platform on the load cell; factory zero takes it away
DEFAULT_UNIT = (500.0, 2.0)  # no catalogue configured: every item weighs about this

STATUS_UNSTABLE = 1 << 5
STATUS_OVERLOAD = 1 << 6
STATUS_AT_ZERO = 1 << 7


class ModelError(Exception):
    """A person's action that the cabinet does not allow (reported on the control port)."""


@dataclass(frozen=True)
class TransmitterReading:
    """What a weighing transmitter's registers hold at one instant."""

    divisions: int  # gross weight, in divisions (register 0x0050, i32)
    status: int  # register 0x0008
    division: int  # grams per division (register 0x0058)


def load_unit_weights(path: Path | None) -> dict[str, tuple[float, float]]:
    """sku -> (mean grams, sd grams) from a catalogue JSON file (``products[].unit_g``)."""
    if path is None:
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {p["sku"]: (float(p["unit_g"]), float(p.get("unit_sd_g", 0))) for p in data["products"]}


def division_for(capacity_g: int) -> int:
    """A transmitter shows at most ~30000 divisions: heavy shelves count in 2 g or 5 g."""
    return 1 if capacity_g <= 30_000 else 2 if capacity_g <= 60_000 else 5


@dataclass
class _Door:
    id: str
    latched: bool = True
    open: bool = False
    released_until: float = 0.0
    stuck: bool | None = None  # sensor stuck at this "unlatched" value

    def tick(self, now: float) -> None:
        if not self.open and not self.latched and now >= self.released_until:
            self.latched = True  # nobody pulled in time: the latch relocks


@dataclass
class _Scale:
    shelf: Shelf
    index: int
    division: int
    lanes: dict[str, list[float]]
    foreign_g: float = 0.0
    base_g: float = 0.0  # settled signal of steps old enough to have finished settling
    steps: list[tuple[float, float]] = field(default_factory=list)  # (start, grams)
    zero_raw: float = DEAD_LOAD_G
    gain: float = 1.0
    frozen: TransmitterReading | None = None

    def true_load(self) -> float:
        return sum(sum(ws) for ws in self.lanes.values()) + self.foreign_g

    def settled_signal(self, t: float) -> float:
        """The noiseless signal at ``t`` (steps in the future count as not yet begun)."""
        g = self.base_g
        for t0, delta in self.steps:
            if t > t0:
                g += delta * (1.0 - math.exp(-(t - t0) / TAU_S))
        return g

    def add_step(self, t0: float, grams: float, now: float) -> None:
        done = [s for s in self.steps if now - s[0] > 10 * TAU_S]
        if done:
            self.base_g += sum(d for _, d in done)
            self.steps = [s for s in self.steps if now - s[0] <= 10 * TAU_S]
        self.steps.append((t0, grams))


class CabinetModel:
    """The doors and shelves of one cabinet, and the person in front of it."""

    def __init__(
        self,
        config: Config,
        unit_weights: dict[str, tuple[float, float]],
        clock: Callable[[], float] = time.monotonic,
    ):
        self._lock = threading.Lock()
        self._clock = clock
        self._seed = config.simulator.seed
        self._noise_g = config.simulator.noise_g
        self._rng = random.Random(config.simulator.seed)
        self._units = unit_weights
        self._default_unit = DEFAULT_UNIT if not unit_weights else None
        self._hand: dict[str, list[float]] = {}  # items a person holds, with their weights
        self.doors = {d.id: _Door(d.id) for d in config.doors}
        self.shelves: dict[str, _Scale] = {}
        for i, s in enumerate(config.shelves):
            lanes = {
                lane.sku: [self._new_item(lane.sku) for _ in range(lane.count)] for lane in s.lanes
            }
            scale = _Scale(s, i, division_for(s.capacity_g), lanes)
            scale.base_g = scale.true_load()
            self.shelves[s.id] = scale

    # -- helpers ---------------------------------------------------------------------------
    def _new_item(self, sku: str) -> float:
        unit = self._units.get(sku, self._default_unit)
        if unit is None:
            raise ModelError(f"{sku} is not in the simulator's catalogue")
        mean, sd = unit
        return round(max(1.0, self._rng.gauss(mean, sd)), 1)

    def _door(self, door_id: str) -> _Door:
        try:
            return self.doors[door_id]
        except KeyError:
            raise ModelError(f"no door {door_id}") from None

    def _scale(self, shelf_id: str) -> _Scale:
        try:
            return self.shelves[shelf_id]
        except KeyError:
            raise ModelError(f"no shelf {shelf_id}") from None

    def _noise(self, scale: _Scale, t: float) -> float:
        if not self._noise_g:
            return 0.0
        bucket = int(t / NOISE_BUCKET_S)
        rng = random.Random(self._seed * 1_000_003 + scale.index * 7_919 + bucket * 104_729)
        return rng.gauss(0.0, self._noise_g)

    def _raw(self, scale: _Scale, t: float, noisy: bool = True) -> float:
        drift = DRIFT_G * math.sin(2 * math.pi * t / DRIFT_PERIOD_S + scale.index)
        raw = DEAD_LOAD_G + scale.settled_signal(t) + drift
        return raw + self._noise(scale, t) if noisy else raw

    # -- doors -----------------------------------------------------------------------------
    def pulse(self, door_id: str) -> None:
        """The lock board pulses the door's lock: the latch lets go for a while."""
        with self._lock:
            d = self._door(door_id)
            d.tick(self._clock())
            if not d.open:
                d.latched = False
                d.released_until = self._clock() + PULSE_S

    def unlatched(self, door_id: str) -> bool:
        """The door sensor as the lock board sees it (a stuck sensor keeps its value)."""
        with self._lock:
            d = self._door(door_id)
            d.tick(self._clock())
            return d.stuck if d.stuck is not None else not d.latched

    def stick_sensor(self, door_id: str, stuck: bool) -> None:
        with self._lock:
            d = self._door(door_id)
            d.tick(self._clock())
            d.stuck = (not d.latched) if stuck else None

    def pull(self, door_id: str) -> bool:
        """A person pulls the handle; return whether the door swung open."""
        with self._lock:
            d = self._door(door_id)
            d.tick(self._clock())
            if not d.latched:
                d.open = True
            return d.open

    def push(self, door_id: str) -> None:
        with self._lock:
            d = self._door(door_id)
            d.open, d.latched, d.released_until = False, True, 0.0

    def force(self, door_id: str) -> None:
        with self._lock:
            d = self._door(door_id)
            d.open, d.latched = True, False

    # -- shelves ---------------------------------------------------------------------------
    def _require_open(self, scale: _Scale) -> None:
        d = self.doors[scale.shelf.door]
        d.tick(self._clock())
        if not d.open:
            raise ModelError(f"door {d.id} is shut")

    def take(self, shelf_id: str, sku: str, n: int = 1) -> list[float]:
        """A hand lifts ``n`` items off a shelf (a brief press first); return their weights."""
        if n < 1:
            raise ModelError("N must be at least 1")
        with self._lock:
            s = self._scale(shelf_id)
            self._require_open(s)
            lane = s.lanes.get(sku, [])
            if len(lane) < n:
                raise ModelError(f"{shelf_id} has only {len(lane)} of {sku}")
            taken = [lane.pop() for _ in range(n)]
            self._hand.setdefault(sku, []).extend(taken)
            grams = sum(taken)
            press = min(0.2 * grams, 400.0)
            now = self._clock()
            s.add_step(now, press, now)
            s.add_step(now + 0.15, -press - grams, now)
            return taken

    def put(self, shelf_id: str, sku: str, n: int = 1) -> list[float]:
        """A hand sets ``n`` items down (those it holds first, else new ones)."""
        if n < 1:
            raise ModelError("N must be at least 1")
        with self._lock:
            s = self._scale(shelf_id)
            self._require_open(s)
            held = self._hand.get(sku, [])
            items = [held.pop() if held else self._new_item(sku) for _ in range(n)]
            s.lanes.setdefault(sku, []).extend(items)
            grams = sum(items)
            impact = min(0.3 * grams, 500.0)
            now = self._clock()
            s.add_step(now, grams + impact, now)
            s.add_step(now + 0.2, -impact, now)
            return items

    def lean(self, shelf_id: str, grams: float, seconds: float) -> None:
        if seconds <= 0:
            raise ModelError("SECONDS must be positive")
        with self._lock:
            s = self._scale(shelf_id)
            now = self._clock()
            s.add_step(now, grams, now)
            s.add_step(now + seconds, -grams, now)

    def foreign(self, shelf_id: str, grams: float) -> None:
        """Something unknown is left on (or, negative, taken off) a shelf."""
        with self._lock:
            s = self._scale(shelf_id)
            now = self._clock()
            s.foreign_g += grams
            s.add_step(now, grams, now)

    def stock(self, shelf_id: str, sku: str, n: int) -> None:
        """Set a lane's true count at once (set-up: no door, no settling)."""
        if n < 0:
            raise ModelError("N must not be negative")
        with self._lock:
            s = self._scale(shelf_id)
            lane = s.lanes.setdefault(sku, [])
            before = sum(lane)
            while len(lane) > n:
                lane.pop()
            while len(lane) < n:
                lane.append(self._new_item(sku))
            s.base_g += sum(lane) - before

    # -- transmitters ----------------------------------------------------------------------
    def reading(self, shelf_id: str) -> TransmitterReading:
        with self._lock:
            s = self._scale(shelf_id)
            if s.frozen is not None:
                return s.frozen
            return self._reading(s, self._clock())

    def _reading(self, s: _Scale, t: float) -> TransmitterReading:
        shown = (self._raw(s, t) - s.zero_raw) * s.gain
        divisions = round(shown / s.division)
        window = [
            self._raw(s, t - k * UNSTABLE_WINDOW_S / 5, noisy=False) * s.gain for k in range(6)
        ]
        status = 0
        if max(window) - min(window) > UNSTABLE_DIVISIONS * s.division:
            status |= STATUS_UNSTABLE
        if shown > s.shelf.capacity_g:
            status |= STATUS_OVERLOAD
        if divisions == 0:
            status |= STATUS_AT_ZERO
        return TransmitterReading(divisions, status, s.division)

    def freeze(self, shelf_id: str, frozen: bool) -> None:
        """A stuck transmitter keeps answering with the reading it had."""
        with self._lock:
            s = self._scale(shelf_id)
            s.frozen = self._reading(s, self._clock()) if frozen else None

    def zero(self, shelf_id: str) -> None:
        """Zero calibration: the current (settled, noiseless) load reads 0 from now on."""
        with self._lock:
            s = self._scale(shelf_id)
            s.zero_raw = self._raw(s, self._clock(), noisy=False)

    def calibrate(self, shelf_id: str, known_g: float) -> None:
        """Gain calibration: the current load reads ``known_g`` from now on."""
        with self._lock:
            s = self._scale(shelf_id)
            net = self._raw(s, self._clock(), noisy=False) - s.zero_raw
            if known_g <= 0 or net <= 0:
                raise ModelError("gain calibration needs a positive known load on the shelf")
            s.gain = known_g / net

    # -- the whole picture -----------------------------------------------------------------
    def state(self) -> dict[str, object]:
        """The ``state`` answer of the control port (hardware.md section 5)."""
        with self._lock:
            now = self._clock()
            for d in self.doors.values():
                d.tick(now)
            return {
                "doors": {
                    d.id: {"latched": d.latched, "open": d.open} for d in self.doors.values()
                },
                "shelves": {
                    s.shelf.id: {
                        "load_g": round(s.true_load(), 1),
                        "items": {sku: len(ws) for sku, ws in s.lanes.items()},
                    }
                    for s in self.shelves.values()
                },
            }
