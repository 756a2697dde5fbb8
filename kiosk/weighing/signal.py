"""One shelf's reading stream: baseline, noise, settling and faults, read from the numbers alone.

The transmitter's own "stable" flag is not trusted: it is wrong near slow transients and on
noisy cells. Everything here is robust to missing samples (None) and to isolated spikes.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from dataclasses import dataclass
from enum import Enum

BASELINE_SPAN_S = 3.0  # use at most this much of the stream before the door opened
MISSING_GAP_S = 1.0  # no answer for this long (and 5 samples) at the end: a dead cell
STUCK_P = 1e-4  # a frozen run less likely than this under the cell's noise: a stuck cell
LEVEL_SPAN_S = 4.0  # average a settled shelf over at most this much
RANGE_BAND = 0.005  # readings within this share of capacity are at capacity
# A level seen while open may still ring and creep by a share of the load change, but never
# by a whole item: a stretch's band is this share of its distance from the start, at most
# RING_MAX_G (a 120 g item put down beside a 10 kg take is a new level, not ringing).
PLATEAU_REL = 0.03
RING_MAX_G = 40.0
# A rest this long between two grabs is seen (4 samples at 10 Hz): shorter ones are hand
# presses' tops and the dips of neighbours dragged along as often as they are rests.
REST_MIN_S = 0.35
DESPIKE_MAX_PERIOD_S = 0.15  # a one-sample excursion is a glitch when sampled this fast


class Status(Enum):
    SETTLED = "settled"
    MOVING = "moving"
    MISSING = "missing"
    STUCK = "stuck"
    RANGE = "out of range"


@dataclass(frozen=True)
class Baseline:
    level: float
    n: int
    sigma: float  # reading noise (1 sd), floored at a fraction of the division
    quiet: bool = False  # the cell never left one value: noise below its division


@dataclass(frozen=True)
class ShelfState:
    status: Status
    level: float  # best estimate of the current load
    var: float  # its variance (noise of the mean plus any motion still seen)
    since: float  # start of the flat stretch the level comes from
    n: int


def median(xs: list[float]) -> float:
    s = sorted(xs)
    k = len(s) // 2
    return s[k] if len(s) % 2 else 0.5 * (s[k - 1] + s[k])


def robust_mean(xs: list[float], div: float) -> float:
    """Mean of the values within a few MADs of the median (spikes and glitches dropped)."""
    m = median(xs)
    mad = median([abs(x - m) for x in xs])
    lim = max(4.0 * 1.4826 * mad, 2.0 * div)
    kept = [x for x in xs if abs(x - m) <= lim]
    return sum(kept) / len(kept)


def noise_sigma(xs: list[float], div: float) -> float:
    """Reading noise from successive differences (immune to drift), spikes clipped."""
    d = [b - a for a, b in itertools.pairwise(xs)]
    if len(d) < 2:
        return max(div, 1.0)
    mad = 1.4826 * median([abs(x) for x in d])
    lim = max(4.0 * mad, 2.5 * div)
    kept = [x for x in d if abs(x) <= lim]
    rms = math.sqrt(sum(x * x for x in kept) / len(kept)) / math.sqrt(2.0)
    return max(rms, 0.5 * div, 0.3)


def median3(xs: list[float]) -> list[float]:
    """Running median of three: a single spike disappears, a step keeps its place."""
    if len(xs) < 3:
        return xs[:]
    out = [xs[0]]
    for a, b, c in zip(xs, xs[1:], xs[2:], strict=False):
        out.append(a if (b - a) * (a - c) >= 0 else c if (a - c) * (c - b) >= 0 else b)
    out.append(xs[-1])
    return out


def despike(xs: list[float], tol: float) -> list[float]:
    """Isolated outliers replaced by their neighbours' mean. (A running median alone pulls
    a spike's neighbours towards it wherever the signal slopes, as it does while ringing.)"""
    out = xs[:]
    for i in range(1, len(xs) - 1):
        a, x, b = xs[i - 1], xs[i], xs[i + 1]
        if min(abs(x - a), abs(x - b)) > 3.0 * abs(b - a) + tol and (x - a) * (x - b) > 0:
            out[i] = 0.5 * (a + b)
    return out


def line_fit(ts: list[float], xs: list[float]) -> tuple[float, float, float]:
    """Least-squares slope, residual rms and the slope's standard error per unit noise."""
    n = len(xs)
    tm = sum(ts) / n
    xm = sum(xs) / n
    stt = sum((t - tm) ** 2 for t in ts)
    if stt <= 0.0:
        return 0.0, 0.0, math.inf
    b = sum((t - tm) * (x - xm) for t, x in zip(ts, xs, strict=False)) / stt
    rss = sum((x - xm - b * (t - tm)) ** 2 for t, x in zip(ts, xs, strict=False))
    return b, math.sqrt(rss / max(n - 2, 1)), 1.0 / math.sqrt(stt)


class ShelfTrack:
    """Readings of one shelf as they arrive (``t`` non-decreasing)."""

    def __init__(self, shelf_id: str, division_g: float, capacity_g: float):
        self.id = shelf_id
        self.div = max(float(division_g), 1e-3)
        self.cap = float(capacity_g)
        self.ts: list[float] = []
        self.gs: list[float | None] = []
        self._since: float | None = None  # start of the current flat stretch
        self._per: tuple[int, float] = (0, 0.1)  # (readings seen, sampling period)

    def feed(self, t: float, grams: float | None) -> None:
        if self.ts and t < self.ts[-1]:
            return  # out of order: the contract says t is non-decreasing per shelf
        self.ts.append(t)
        self.gs.append(None if grams is None or not math.isfinite(grams) else float(grams))

    def period(self) -> float:
        """Sampling period, from the stream itself."""
        n = len(self.ts)
        if n < 2:
            return 0.1
        if self._per[0] != n:  # asked many times per reading: once is enough
            k = min(n - 1, 50)
            self._per = (n, max((self.ts[-1] - self.ts[-1 - k]) / k, 1e-3))
        return self._per[1]

    def valid(self, t1: float, t2: float) -> tuple[list[float], list[float]]:
        i, j = bisect_left(self.ts, t1), bisect_left(self.ts, t2)
        pairs = [(t, g) for t, g in zip(self.ts[i:j], self.gs[i:j], strict=False) if g is not None]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def baseline(self, t_open: float) -> Baseline | None:
        _, xs = self.valid(t_open - BASELINE_SPAN_S, t_open)
        if len(xs) < 3:
            return None
        quiet = max(xs) - min(xs) < 0.5 * self.div
        return Baseline(robust_mean(xs, self.div), len(xs), noise_sigma(xs, self.div), quiet)

    def rests(
        self, t1: float, t2: float, sigma: float, min_s: float = REST_MIN_S
    ) -> list[tuple[float, float, float]]:
        """Stretches (start, end, level) the shelf rested in between t1 and t2 (door open).

        A stretch counts when it stays within a few noise sd for ``min_s``; hand presses and
        ramps never do. A load change rings and decays for a while (a few percent of it), so
        the band widens with the distance from where the shelf started, up to ``RING_MAX_G``."""
        ts, raw = self.valid(t1, t2)
        tol0 = 3.0 * sigma + 2.0 * self.div
        # At a slow rate a hand's brief press fills one sample too: leave it to the median.
        xs = median3(despike(raw, 4.0 * tol0) if self.period() <= DESPIKE_MAX_PERIOD_S else raw)
        need = max(4, int(min_s / self.period()))
        x0 = xs[0] if xs else 0.0
        out: list[tuple[float, float, float]] = []
        i, n = 0, len(xs)
        while i + need <= n:
            lo = hi = xs[i]
            tol = tol0 + min(PLATEAU_REL * abs(xs[i] - x0), RING_MAX_G)
            j = i + 1
            while j < n and max(hi, xs[j]) - min(lo, xs[j]) <= tol:
                lo, hi = min(lo, xs[j]), max(hi, xs[j])
                j += 1
            if j - i >= need and ts[j - 1] - ts[i] >= 0.8 * min_s:
                lvl = robust_mean(raw[i + (j - i) // 3 : j], self.div)  # after the ring
                out.append((ts[i], ts[j - 1], lvl))
                i = j
            else:
                i += 1
        return out

    def reset_settling(self) -> None:
        self._since = None

    # -- after the close --------------------------------------------------------------------
    def fault(self, t_close: float, now: float, sigma: float, quiet: bool = False) -> Status | None:
        """A dead, stuck or out-of-range cell, judged at ``now`` (after the close).

        A cell whose noise stays under its division (``quiet``) cannot be told from a stuck
        one by its readings alone, so it is never called stuck."""
        per = self.period()
        last_ok = next(
            (
                t
                for t, g in zip(reversed(self.ts), reversed(self.gs), strict=False)
                if g is not None
            ),
            None,
        )
        if last_ok is None or now - last_ok >= max(MISSING_GAP_S, 5.0 * per):
            return Status.MISSING
        _ts, xs = self.valid(max(t_close, now - 1.0), now + 1e-9)
        if xs:
            # A saturated cell reads its capacity plus whatever noise the line adds, so "at"
            # capacity is a band; shelves are never loaded anywhere near it.
            hi = self.cap - max(RANGE_BAND * self.cap, 5.0 * self.div, 5.0 * sigma)
            out = [x >= hi or x <= -max(0.05 * self.cap, 100.0) for x in xs]
            if sum(out[-3:]) >= 2 and sum(out) * 2 >= len(out):
                return Status.RANGE
        # A frozen run at the end: count identical valid readings back from the newest.
        run, start, last = 0, None, last_value(self.gs)
        for t, g in zip(reversed(self.ts), reversed(self.gs), strict=False):
            if g is None:
                continue
            if g != last:
                break
            run, start = run + 1, t
        if quiet or start is None or run < 10 or now - start < 2.0:
            return None
        # Chance that noise of this size leaves a quantised reading on one value for `run`.
        p1 = math.erf(self.div / (2.0 * sigma * math.sqrt(2.0)))
        logp = run * math.log(max(p1, 1e-12))
        spans_close = start <= t_close - 0.2
        if logp < math.log(STUCK_P) and (spans_close or logp < 2.0 * math.log(STUCK_P)):
            return Status.STUCK
        return None

    def _flat(
        self, t_close: float, now: float, sigma: float, window_s: float
    ) -> tuple[bool, list[float], float]:
        """Whether the last window is flat (its median-filtered readings and slope); keeps
        track of where the flat stretch began."""
        per = self.period()
        if self.stale(now):  # the newest answers are missing: a glitch, or a cell dying now
            return False, [], math.inf
        w = max(window_s, 4.0 * per)
        ts, raw = self.valid(max(t_close, now - w - 2.0 * per), now + 1e-9)
        xs = median3(raw)
        k = bisect_left(ts, now - w)
        wt, wx = ts[k:], xs[k:]
        need = max(4, int(0.6 * w / per))
        if len(wx) < need:
            return False, raw, math.inf
        b, rms, se = line_fit(wt, wx)
        span = wt[-1] - wt[0]
        # Median-of-3 leaves ~0.67 of the noise; allow for quantisation and a few outliers.
        flat_rms = rms <= 1.0 * sigma + 0.35 * self.div
        flat_slope = abs(b) * span <= max(2.0 * sigma, 3.0 * se * sigma * span)
        if not (flat_rms and flat_slope):
            self._since = None
            return False, wx, b
        if self._since is None or self._since > wt[0]:
            self._since = wt[0]
        return True, wx, b

    def stale(self, now: float) -> bool:
        """No valid reading for over a sampling period and a half: wait until the cell
        answers again or is declared missing (a verdict then would read a dead cell's last
        values as its settled level)."""
        lim = now - 1.5 * self.period()
        for t, g in zip(reversed(self.ts), reversed(self.gs), strict=False):
            if g is not None:
                return t < lim
            if t < lim:
                return True
        return True

    def still(self, t_close: float, now: float, sigma: float, window_s: float) -> bool:
        """Is the shelf still after the close? (``assess`` without the level: cheaper.)"""
        return self._flat(t_close, now, sigma, window_s)[0]

    def assess(self, t_close: float, now: float, sigma: float, window_s: float) -> ShelfState:
        """Is the shelf still after the close, and at what level?"""
        flat, wx, b = self._flat(t_close, now, sigma, window_s)
        if not flat:
            if math.isinf(b):  # too few readings in the window
                lvl = median(wx) if wx else math.nan
                return ShelfState(Status.MOVING, lvl, math.inf, now, len(wx))
            spread = max(wx) - min(wx)
            return ShelfState(Status.MOVING, median(wx), spread**2 + b * b, now, len(wx))
        assert self._since is not None
        _, sx = self.valid(max(self._since, now - LEVEL_SPAN_S), now + 1e-9)
        lvl = robust_mean(sx, self.div)
        var = sigma**2 / len(sx) + (b * 0.5) ** 2
        return ShelfState(Status.SETTLED, lvl, var, self._since, len(sx))

    def recent(self, now: float, span_s: float = 1.0) -> tuple[float, float]:
        """Level and variance from the last readings, whatever the shelf is doing."""
        _, xs = self.valid(now - span_s, now + 1e-9)
        if not xs:
            return math.nan, math.inf
        m = median(xs)
        return m, (max(xs) - min(xs)) ** 2 / 4.0 + self.div**2


def last_value(gs: list[float | None]) -> float | None:
    return next((g for g in reversed(gs) if g is not None), None)
