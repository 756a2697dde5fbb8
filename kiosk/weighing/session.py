"""A door session's weighing, fed live: readings in, a verdict out once the evidence allows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from kiosk.weighing.explain import Explanation, ShelfObs, explain
from kiosk.weighing.model import Basket, LaneStock, ShelfPlan, Verdict
from kiosk.weighing.signal import Baseline, ShelfState, ShelfTrack, Status


@dataclass(frozen=True)
class Tuning:
    window_s: float = 0.8  # a shelf is still when this much of its stream is flat
    hold_s: float = 1.0  # an uncertain reading waits this long for better evidence
    cheaper_max: float = 0.02  # posterior of cheaper baskets above this: uncertain
    # ... and when the best reading moves an item between shelves: such readings rest on a
    # coincidence of weights (a take and a put-down netting out), so a cheaper one counts more.
    cheaper_max_moved: float = 0.005
    other_max: float = 0.3  # posterior of any other taken above this: uncertain
    misfit_z: float = 6.0  # best explanation this far off: uncertain
    drift_g: float = 1.5  # drift between baseline and settle: a floor (1 sd) ...
    drift_g_per_s: float = 0.12  # ... plus this per second the session lasted
    creep_rel: float = 0.002  # creep and hysteresis, a fraction of the load change


FAULT_WHY = {
    Status.MISSING: "missing",
    Status.STUCK: "stuck",
    Status.RANGE: "out of range",
}


class SessionWeigher:
    """Weighs one door session from live readings (any order across shelves)."""

    def __init__(self, shelves: Sequence[ShelfPlan], tuning: Tuning | None = None):
        self.plans = {s.id: s for s in shelves}
        self.tune = tuning or Tuning()
        self.tracks = {s.id: ShelfTrack(s.id, s.division_g, s.capacity_g) for s in shelves}
        self.units: dict[str, LaneStock] = {}
        self.prices: dict[str, int] = {}
        for s in shelves:
            for ln in s.stock:
                self.units.setdefault(ln.sku, ln)
                self.prices.setdefault(ln.sku, ln.price_fen)
        self.t_open: float | None = None
        self.t_close: float | None = None
        self._base: dict[str, Baseline | None] = {}
        self._steps: dict[str, tuple[float, ...]] = {}
        self._rests: dict[str, tuple[tuple[float, float, float], ...]] = {}
        self._last_eval = -math.inf
        self._next_explain = -math.inf
        self._settled_at: float | None = None
        self._verdict: Verdict | None = None

    # -- input -------------------------------------------------------------------------------
    def feed(self, shelf: str, t: float, grams: float | None, stable: bool = False) -> None:
        track = self.tracks.get(shelf)
        if track is not None:
            track.feed(t, grams)  # the stable flag is a hint we do not need

    def door_opened(self, t: float) -> None:
        if self.t_open is None:
            self.t_open = t
        elif self.t_close is not None:  # reopened: settling starts again at the next close
            self.t_close = None
            self._settled_at = None
            self._verdict = None
            self._steps.clear()
            self._rests.clear()
            for tr in self.tracks.values():
                tr.reset_settling()

    def door_closed(self, t: float) -> None:
        if self.t_open is None:
            self.t_open = t
        self.t_close = t

    # -- output ------------------------------------------------------------------------------
    def poll(self, now: float) -> Verdict | None:
        """The verdict once the shelves have settled and the evidence is clear; else None."""
        if self._verdict is not None:
            return self._verdict
        if self.t_open is None or self.t_close is None or now < self.t_close:
            return None
        if now - self._last_eval < 0.5 * self._min_period() or now < self._next_explain:
            return None
        self._last_eval = now
        self._verdict = self._evaluate(now, force=False)
        return self._verdict

    def decide_now(self, now: float) -> Verdict:
        """A forced decision (timeout): uncertain or faulted as the evidence says."""
        if self._verdict is not None:
            return self._verdict
        v = self._evaluate(now, force=True)
        assert v is not None
        self._verdict = v
        return v

    # -- the work ----------------------------------------------------------------------------
    def _min_period(self) -> float:
        return min((tr.period() for tr in self.tracks.values() if tr.ts), default=0.1)

    def _baseline(self, sid: str) -> Baseline | None:
        assert self.t_open is not None
        if sid not in self._base:
            self._base[sid] = self.tracks[sid].baseline(self.t_open)
        return self._base[sid]

    def _evaluate(self, now: float, force: bool) -> Verdict | None:
        assert self.t_open is not None
        t_close = self.t_close if self.t_close is not None else now
        tune = self.tune
        if not force and self._waiting(t_close, now):
            return None
        faults: dict[str, str] = {}
        states: dict[str, tuple[Baseline, ShelfState]] = {}
        moving = False
        for sid, tr in self.tracks.items():
            base = self._baseline(sid)
            if base is None:
                faults[sid] = "missing"
                continue
            bad = tr.fault(t_close, now, base.sigma, base.quiet)
            if bad is not None:
                faults[sid] = FAULT_WHY[bad]
                continue
            # Every shelf is assessed each time: its flat stretch must be continuous.
            st = tr.assess(t_close, now, base.sigma, tune.window_s)
            if st.status is not Status.SETTLED:
                moving = True
                if not force:
                    continue
                lvl, var = tr.recent(now)
                if math.isnan(lvl):
                    faults[sid] = "missing"
                    continue
                st = ShelfState(Status.MOVING, lvl, var, now, 0)
            states[sid] = (base, st)
        if moving and not force:
            return None
        if self._settled_at is None:
            self._settled_at = now
        ex = self._explain(states, now)
        moved = bool(ex.baskets and ex.baskets[0].misplaced)
        uncertain = (
            not ex.baskets
            or ex.cheaper_mass > (tune.cheaper_max_moved if moved else tune.cheaper_max)
            or ex.other_mass > tune.other_max
            or ex.best_z > tune.misfit_z
        )
        if uncertain and not force and now - self._settled_at < tune.hold_s:
            self._next_explain = now + 0.25  # better evidence accrues slowly: look again soon
            return None
        return self._verdict_of(ex, faults, uncertain, now)

    def _waiting(self, t_close: float, now: float) -> bool:
        """A cheap first look: some healthy shelf is still moving, so no verdict yet. Every
        shelf is looked at (its flat stretch must be continuous); levels and faults of the
        still ones are only worked out once nothing moves."""
        waiting = False
        for sid, tr in self.tracks.items():
            base = self._baseline(sid)
            if base is None or tr.still(t_close, now, base.sigma, self.tune.window_s):
                continue
            if not waiting and tr.fault(t_close, now, base.sigma, base.quiet) is None:
                waiting = True
        return waiting

    def _plateaus(self, sid: str, base: Baseline) -> tuple[float, ...]:
        """Where the shelf rested while the door was open, relative to the baseline (cached)."""
        if sid not in self._steps:
            assert self.t_open is not None and self.t_close is not None
            rests = self.tracks[sid].rests(self.t_open, self.t_close, base.sigma)
            self._rests[sid] = tuple((a, b, x - base.level) for a, b, x in rests)
            self._steps[sid] = tuple(x for _a, _b, x in self._rests[sid])
        return self._steps[sid]

    def _explain(self, states: dict[str, tuple[Baseline, ShelfState]], now: float) -> Explanation:
        assert self.t_open is not None
        tune = self.tune
        span = max(now - self.t_open, 0.0)
        drift_var = (tune.drift_g + tune.drift_g_per_s * span) ** 2
        window = (self.t_open, self.t_close if self.t_close is not None else now)

        def observe(dvar: float) -> list[ShelfObs]:
            out = []
            for sid, (base, st) in states.items():
                d = st.level - base.level
                var = base.sigma**2 / base.n + st.var + dvar + (tune.creep_rel * d) ** 2
                plan = self.plans[sid]
                steps = self._plateaus(sid, base)
                out.append(
                    ShelfObs(
                        sid, d, var, plan.stock, plan.division_g, steps, self._rests[sid], window
                    )
                )
            return out

        obs = observe(drift_var)
        # Shelves nobody touched show the drift itself: if they drift more than the prior
        # allows, widen every shelf's drift term accordingly (pooled with the prior).
        quiet = [o.delta for o in obs if abs(o.delta) < 4.0 * math.sqrt(o.var)]
        if quiet:
            k0 = 2.0
            pooled = (sum(d * d for d in quiet) + k0 * drift_var) / (len(quiet) + k0)
            if pooled > drift_var:
                obs = observe(pooled)
        return explain(obs, self.units, self.prices)

    def _verdict_of(
        self, ex: Explanation, faults: dict[str, str], uncertain: bool, now: float
    ) -> Verdict:
        baskets = list(ex.baskets)
        if not baskets:
            baskets = [Basket({}, (), (), 0, 1.0)]
        if uncertain and len(baskets) < 2:
            # Nothing else fits either: offer "nothing taken" so a person can decide.
            alt = Basket({}, (), (), 0, 0.0)
            if dict(baskets[0].taken):
                baskets.append(alt)
            else:
                baskets.append(Basket({}, (), (), 0, 0.0))
        b0 = baskets[0]
        return Verdict(
            taken=dict(b0.taken),
            misplaced=b0.misplaced,
            foreign=b0.foreign,
            fault=tuple(sorted(faults)),
            uncertain=uncertain,
            confidence=max(0.0, min(1.0, 1.0 - ex.other_mass)) if ex.baskets else 0.0,
            decided_s=now,
            candidates=tuple(baskets),
            faults_why=dict(faults),
        )
