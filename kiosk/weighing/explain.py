"""One joint explanation of every shelf's weight change, scored by likelihood.

Per shelf, candidate explanations are whole-item removals per lane (bounded by stock, one more
allowed at a penalty: counts are sometimes off), items put down from another shelf (moves), or a
foreign object (an unexplained rise). How the shelf got there weighs in too: the levels it
rested at while the door was open (the states between grabs, expected where the final change
puts them) and the size of each change between them (one hand's action: whole items of one
product). Shelves are then combined best-first, keeping only combinations where every item put
down was lifted from some other shelf, before it was put down. The posterior over the
combinations gives the confidence; cheaper alternatives that are not negligible make the verdict
uncertain, so the customer is never silently charged the dearer reading.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kiosk.weighing.model import Basket, LaneStock, Move
from kiosk.weighing.signal import median

# Priors (log): most sessions take one or two items; moves, foreign objects and stock counts
# that are off are rarer.
LOG_ITEM = math.log(0.3)
LOG_OVERSTOCK = math.log(0.01)
LOG_MOVE = math.log(0.05)
LOG_MIXED = math.log(0.25)  # an item put down on a shelf that also lost items
# People take several of one product more often than one each of several: every further lane
# (or shelf) a take spans costs this on top of the per-item prior.
LOG_NEW_LANE = math.log(0.25)
LOG_NEW_SHELF = math.log(0.6)
# A move whose put-down ended before its lift began (the stretches say so): misread stretches.
LOG_MOVE_ORDER = math.log(0.05)
# A foreign object is left in 2 % of sessions; its weight spans orders of magnitude (a coin, a
# phone, a bottle, a bag), so its density is log-uniform between these.
LOG_FOREIGN = math.log(0.02)
FOREIGN_G = (20.0, 5000.0)
# Catalogue means are off by a fraction of a percent (batch, packaging): a per-product bias.
REL_BIAS = 0.004
# Heavier tails than a gaussian: a fraction of readings are worse than the noise model says.
TAIL_W, TAIL_SCALE = 0.003, 3.0
# Levels a shelf rested at while the door was open (step_evidence): each grab or put-down is a
# step, so a take of several items usually rests in between, at part of the take.
# Chance that the shelf is seen resting between two consecutive actions of a candidate: two
# items of one lane (often grabbed together), items of two lanes, or a take and a put-down.
# A candidate of many items has many such gaps, so it shows some level more often than not.
GAP_SEEN_SAME, GAP_SEEN_MIXED, GAP_SEEN_PUT = 0.45, 0.8, 0.9
# ... but a hand may sweep several items off a shelf at once, whatever they are (a put-down
# and a lift are two motions: never swept together).
SWEEP = 0.45
LEVEL_BY_CHANCE = 0.05  # a shelf shows a level no take explains (a hand, a put-back)
STEP_W = 0.9  # share of the levels of a take of several items that are between its grabs
PUTBACK_W = 0.7  # share of unrelated levels that are one item lifted and put back
LEVEL_REL = 0.01  # a level seen while open may still be ringing by this much of it
STEP_RATIO_MAX = 200.0  # one level is never overwhelming evidence
MAX_LEVELS = 4
GRAB_W = 0.7  # share of the changes between rests that are one action of one product
STEP_EVAL = 36  # candidates per shelf whose levels are weighed (the likeliest by weight)
MAX_ADDS = 1
KEEP_PER_SHELF = 12
KEEP_WITHIN = 25.0  # log-likelihood units below a shelf's best
MAX_JOINTS = 40
MAX_POPS = 4000


@dataclass(frozen=True)
class ShelfObs:
    """A shelf's measured weight change and its variance (noise, drift, motion)."""

    id: str
    delta: float
    var: float
    lanes: tuple[LaneStock, ...]
    div: float = 1.0
    # Levels (change from the baseline) the shelf rested at while the door was open.
    steps: tuple[float, ...] = ()
    # The same as (start, end, level) stretches, and when the door opened and closed.
    rests: tuple[tuple[float, float, float], ...] = ()
    window: tuple[float, float] | None = None


@dataclass(frozen=True)
class Cand:
    removed: tuple[tuple[str, int], ...]  # (sku, n) lifted from this shelf's lanes
    added: tuple[str, ...]  # skus put down here from elsewhere
    foreign: bool
    score: float  # log likelihood + log prior
    z: float  # standardised residual
    resid: float = 0.0  # measured minus predicted change
    var: float = 1.0  # its variance


@dataclass(frozen=True)
class Joint:
    cands: tuple[Cand, ...]
    score: float
    taken: Mapping[str, int] = field(default_factory=dict)
    moves: tuple[Move, ...] = ()
    foreign: tuple[str, ...] = ()


def log_mix(x: float, var: float) -> float:
    """Log density of a gaussian with heavier tails (a wide component of small weight)."""
    z2 = x * x / var
    a = (1.0 - TAIL_W) * math.exp(-0.5 * z2)
    b = TAIL_W / TAIL_SCALE * math.exp(-0.5 * z2 / (TAIL_SCALE * TAIL_SCALE))
    return math.log(a + b + 1e-300) - 0.5 * math.log(2.0 * math.pi * var)


def _removals(
    mus: list[float], caps: list[int], rest: list[float], target: float, tol: float
) -> list[tuple[int, ...]]:
    """Every count vector (lanes heaviest first) whose weight is within tol of target."""
    found: list[tuple[int, ...]] = []

    def dfs(i: int, s: float, r: list[int]) -> None:
        if s > target + tol or s + rest[i] < target - tol:
            return
        if i == len(mus):
            found.append(tuple(r))
            return
        for k in range(caps[i] + 1):
            r.append(k)
            dfs(i + 1, s + k * mus[i], r)
            r.pop()
            if s + k * mus[i] > target + tol:
                break

    dfs(0, 0.0, [])
    return found


def movable(shelves: Sequence[ShelfObs]) -> set[str]:
    """Products that may have been put down elsewhere: their shelf lost at least one unit."""
    out = set()
    for o in shelves:
        for ln in o.lanes:
            slack = 5.0 * math.sqrt(o.var + ln.unit_sd_g**2) + 2.0 * REL_BIAS * ln.unit_g
            if ln.unit_g > 0 and -o.delta >= ln.unit_g - slack:
                out.add(ln.sku)
    return out


def mid_levels(obs: ShelfObs) -> list[float]:
    """Levels the shelf rested at while open, away from the baseline and the final level;
    neighbours within a few grams are one level (a hand resting shifts it a little)."""
    gap = 20.0 + 4.0 * obs.div
    mid = sorted(d for d in obs.steps if abs(d) > gap and abs(d - obs.delta) > gap)
    out: list[list[float]] = []
    for d in mid:
        if out and d - out[-1][-1] <= 8.0 + 4.0 * obs.div:
            out[-1].append(d)
        else:
            out.append([d])
    return [median(c) for c in out][:MAX_LEVELS]


@functools.lru_cache(maxsize=4096)
def _partial_sums(
    parts: tuple[tuple[float, float, int], ...],
) -> tuple[float, float, tuple[tuple[float, float, float], ...]]:
    """A candidate's total (mean, item variance) and, for every proper part of it, the part's
    mean, variance and covariance with the total. ``parts``: (signed unit weight, unit sd,
    count); a product's bias is shared by its items, so it correlates a part with the rest."""
    mean_t = sum(k * mu for mu, _sd, k in parts)
    var_t = sum(k * sd * sd + (k * REL_BIAS * mu) ** 2 for mu, sd, k in parts)
    full = tuple(p[2] for p in parts)
    subs = []
    for sub in itertools.product(*(range(p[2] + 1) for p in parts)):
        if not any(sub) or sub == full:
            continue
        mu = var = cov = 0.0
        for j, (m, sd, k) in zip(sub, parts, strict=False):
            if j:
                b2 = (REL_BIAS * m) ** 2
                mu += j * m
                var += j * sd * sd + j * j * b2
                cov += j * sd * sd + j * k * b2
        subs.append((mu, var, cov))
    return mean_t, var_t, tuple(subs)


def level_seen(r: tuple[int, ...], add: tuple[str, ...]) -> float:
    """Chance that a candidate shows at least one level between its actions: each gap between
    two consecutive actions is seen or not on its own (several items usually leave in several
    grabs, one lane's items more often together than items of different lanes; an item put
    down on a shelf that also lost items came at another moment). A sweep of several items
    at once stays possible (``SWEEP``), so a take is seen resting at most 1 - SWEEP of the time."""
    takes = sum(r)
    lanes = sum(1 for k in r if k)
    puts = len(add) if takes else max(len(add) - 1, 0)
    grabs_missed = (1.0 - GAP_SEEN_SAME) ** (takes - lanes) * (1.0 - GAP_SEEN_MIXED) ** max(
        lanes - 1, 0
    )
    return 1.0 - max(grabs_missed, SWEEP if takes > 1 else 1.0) * (1.0 - GAP_SEEN_PUT) ** puts


def step_evidence(
    obs: ShelfObs,
    mids: Sequence[float],
    r: tuple[int, ...],
    lanes: Sequence[LaneStock],
    add: tuple[str, ...],
    units: Mapping[str, LaneStock],
) -> float:
    """Log likelihood of the levels seen while open under this candidate, relative to a
    candidate with no state between grabs (one item, nothing, a put-down alone).

    Such a candidate shows a level only by chance (``LEVEL_BY_CHANCE``: a hand, an item lifted
    and put back); a take of several items shows one more often than not, at some of its
    items (the state between two grabs). A candidate with many parts matches a level by
    chance more easily, so each part's density is shared among all parts.

    The items' weights are one draw: the final change already says what they weigh together,
    so a part is expected where the final change puts it (its weight conditioned on the
    total). Two readings that agree on the total but split it differently between grabs then
    part ways (2 x 620 g + 2 x 190 g, seen resting at 1189 g, is not 2 x 620 g + 1 x 190 g)."""
    parts = tuple((ln.unit_g, ln.unit_sd_g, k) for k, ln in zip(r, lanes, strict=False) if k)
    parts += tuple((-units[s].unit_g, units[s].unit_sd_g, 1) for s in add)
    mean_t, var_t, raw_subs = _partial_sums(parts)
    if not raw_subs:
        return 0.0
    seen = level_seen(r, add)
    if not mids:
        return math.log(1.0 - seen)
    total_var = var_t + obs.var
    gap = -obs.delta - mean_t
    lvl_noise = obs.var + 4.0 * obs.div**2
    subs = [
        (mu + cov / total_var * gap, max(var - cov * cov / total_var, 0.0) + lvl_noise)
        for mu, var, cov in raw_subs
    ]
    span = max(abs(obs.delta), max(abs(d) for d in mids)) + 100.0
    # Unrelated levels: a hand anywhere in the span, or one item of a lane lifted and put
    # back (the shelf rests one unit lighter for a while).
    backs = [
        (ln.unit_g, ln.unit_sd_g**2 + lvl_noise) for ln in lanes if ln.count > 0 and ln.unit_g > 0
    ]
    total = math.log(seen / LEVEL_BY_CHANCE)
    for d in mids:
        lvl_var = (LEVEL_REL * d) ** 2
        dens = sum(_gauss(d + mu, v + lvl_var) for mu, v in subs) / len(subs)
        bg = (1.0 - PUTBACK_W) / span
        if backs:
            bg += PUTBACK_W * sum(_gauss(d + mu, v + lvl_var) for mu, v in backs) / len(backs)
        total += math.log(1.0 - STEP_W + STEP_W * min(dens / bg, STEP_RATIO_MAX))
    return total


def grab_sizes(obs: ShelfObs) -> list[float]:
    """The shelf's changes between the stretches it rested in, in time order (from the
    baseline to the final level); only when it rested between two changes at least."""
    gap = 20.0 + 4.0 * obs.div
    pts = [0.0]
    for _a, _b, lvl in obs.rests:
        if abs(lvl - pts[-1]) > gap:
            pts.append(lvl)
    if abs(obs.delta - pts[-1]) > gap:
        pts.append(obs.delta)
    elif len(pts) > 1:
        pts[-1] = obs.delta
    out = [b - a for a, b in itertools.pairwise(pts)]
    return out if len(out) >= 2 else []


def grab_evidence(
    obs: ShelfObs,
    grabs: Sequence[float],
    r: tuple[int, ...],
    lanes: Sequence[LaneStock],
    add: tuple[str, ...],
    units: Mapping[str, LaneStock],
) -> float:
    """Log likelihood of the changes between rests under this candidate, relative to a
    candidate that does not predict them: each change is one hand's action, so it is usually
    whole items of ONE product of the candidate (lifted, or put down); a change of several
    products at once is two grabs with no rest between (seen less often)."""
    if not grabs:
        return 0.0
    noise = 2.0 * obs.var + 8.0 * obs.div**2
    acts: list[tuple[float, float]] = []  # (change, variance) of one action
    for k, ln in zip(r, lanes, strict=False):
        for j in range(1, k + 1):
            acts.append((-j * ln.unit_g, j * ln.unit_sd_g**2 + (j * REL_BIAS * ln.unit_g) ** 2))
    for sku in add:
        u = units[sku]
        acts.append((u.unit_g, u.unit_sd_g**2 + (REL_BIAS * u.unit_g) ** 2))
    if not acts:
        return 0.0
    span = max(abs(g) for g in grabs) + 100.0
    backs = [(ln.unit_g, ln.unit_sd_g**2 + noise) for ln in lanes if ln.count > 0 and ln.unit_g > 0]
    total = 0.0
    for g in grabs:
        lvl_var = (LEVEL_REL * g) ** 2
        dens = sum(_gauss(g - mu, v + noise + lvl_var) for mu, v in acts) / len(acts)
        bg = (1.0 - PUTBACK_W) / span
        if backs:
            # a lift of an item later put back, or the put-back itself
            bg += PUTBACK_W * sum(_gauss(abs(g) - mu, v + lvl_var) for mu, v in backs) / len(backs)
        total += math.log(1.0 - GRAB_W + GRAB_W * min(dens / bg, STEP_RATIO_MAX))
    return total


def _gauss(x: float, var: float) -> float:
    return math.exp(-0.5 * x * x / var) / math.sqrt(2.0 * math.pi * var)


def shelf_candidates(
    obs: ShelfObs, units: Mapping[str, LaneStock], moved: set[str] | None = None
) -> list[Cand]:
    """Plausible explanations of one shelf, best first. ``moved``: products that may have
    arrived from another shelf (default: any product of the cabinet)."""
    lanes = sorted(obs.lanes, key=lambda ln: -ln.unit_g)
    mus = [max(ln.unit_g, 0.0) for ln in lanes]
    caps = [ln.count + 1 for ln in lanes]
    rest = [0.0] * (len(lanes) + 1)
    for i in range(len(lanes) - 1, -1, -1):
        rest[i] = rest[i + 1] + caps[i] * mus[i]
    sd0 = math.sqrt(obs.var)
    min_mu = min((m for m in mus if m > 0), default=1.0)
    sd_max = max((ln.unit_sd_g for ln in lanes), default=0.0)
    out: list[Cand] = []
    raw: list[tuple[float, tuple[int, ...], tuple[str, ...], float, float]] = []
    adds: list[tuple[str, ...]] = [()]
    # Items put down are considered even when the net change is small if the shelf was busy
    # while open: a take and a put-down can nearly cancel, and "untouched" may overcharge.
    mids = mid_levels(obs)
    grabs = grab_sizes(obs)
    if MAX_ADDS and (abs(obs.delta) > 4.0 * sd0 + 10.0 or mids):
        adds += [(s,) for s in units if units[s].unit_g > 0 and (moved is None or s in moved)]
    for add in adds:
        add_mu = sum(units[s].unit_g for s in add)
        add_var = sum(units[s].unit_sd_g ** 2 + (REL_BIAS * units[s].unit_g) ** 2 for s in add)
        target = add_mu - obs.delta  # weight that left the lanes
        # Widest plausible error: every item of the lightest lane at the largest sd.
        n_max = abs(target) / min_mu + 1.0
        spread = obs.var + add_var + n_max * sd_max**2 + (2.0 * REL_BIAS * target) ** 2
        tol = 5.0 * math.sqrt(spread) + 2.0 * obs.div
        if target + tol < 0:
            continue
        found = _removals(mus, caps, rest, target, tol)
        for r in found:
            mu = sum(k * m for k, m in zip(r, mus, strict=False)) - add_mu
            var = obs.var + add_var
            prior = len(add) * LOG_MOVE
            if add and any(r):
                prior += LOG_MIXED
            lanes_used = sum(1 for k in r if k)
            if lanes_used > 1:
                prior += (lanes_used - 1) * LOG_NEW_LANE
            for k, ln in zip(r, lanes, strict=False):
                if k:
                    var += k * ln.unit_sd_g**2 + (k * REL_BIAS * ln.unit_g) ** 2
                    prior += k * LOG_ITEM + max(0, k - ln.count) * LOG_OVERSTOCK
            resid = obs.delta + mu
            raw.append((log_mix(resid, var) + prior, r, add, resid, var))
    # The levels seen while open re-rank the likeliest few (they are costly to weigh).
    raw.sort(key=lambda x: -x[0])
    for score, r, add, resid, var in raw[:STEP_EVAL]:
        if sum(r) + len(add) >= 2:
            score += step_evidence(obs, mids, r, lanes, add, units)
            score += grab_evidence(obs, grabs, r, lanes, add, units)
        removed = tuple((ln.sku, k) for k, ln in zip(r, lanes, strict=False) if k)
        out.append(Cand(removed, add, False, score, resid / math.sqrt(var), resid, var))
    # A foreign object: a rise no product explains, on a shelf otherwise left alone.
    f_min = max(5.0 * sd0, 15.0)
    if obs.delta >= f_min:
        w = min(max(obs.delta, FOREIGN_G[0]), FOREIGN_G[1])
        dens = 1.0 / (w * math.log(FOREIGN_G[1] / FOREIGN_G[0]))
        out.append(Cand((), (), True, LOG_FOREIGN + math.log(dens), 0.0))
    if not any(not c.removed and not c.added and not c.foreign for c in out):
        ll = log_mix(obs.delta, obs.var)
        out.append(Cand((), (), False, ll, obs.delta / sd0, obs.delta, obs.var))
    out.sort(key=lambda c: -c.score)
    best = out[0].score
    return [c for c in out[:KEEP_PER_SHELF] if c.score >= best - KEEP_WITHIN]


def _pair_adjust(a: Cand, b: Cand, cov: float) -> float:
    """Log-likelihood correction for two residuals that share one item's weight.

    An item moved from A to B lowers A and raises B by the same, unknown, weight: the two
    residuals are anti-correlated (covariance -var(item)), which scoring the shelves apart
    ignores. A move whose two halves disagree is much less likely than that suggests.
    """
    det = a.var * b.var - cov * cov
    if det <= 1e-9:
        return 0.0
    q2 = (b.var * a.resid**2 - 2.0 * cov * a.resid * b.resid + a.var * b.resid**2) / det
    q1 = a.resid**2 / a.var + b.resid**2 / b.var
    return -0.5 * (q2 - q1) - 0.5 * math.log(det / (a.var * b.var))


def transitions(obs: ShelfObs) -> list[tuple[float, float, float]]:
    """The shelf's changes while open as (earliest start, latest end, size): between two
    stretches it rested in (the door's opening and closing bound the first and last)."""
    if obs.window is None:
        return []
    t_open, t_close = obs.window
    pts = [(t_open, t_open, 0.0), *obs.rests, (t_close, t_close, obs.delta)]
    return [(a[1], b[0], b[2] - a[2]) for a, b in itertools.pairwise(pts)]


def move_order(src: ShelfObs, dst: ShelfObs, unit_g: float) -> float:
    """Log factor for an item moved from ``src`` to ``dst``, from the order of events: it is
    put down after it was lifted. When every drop on src big enough to be the lift started
    after every rise on dst big enough to be the put-down had ended, the move did not happen
    (unless a stretch was misread: a penalty, not a veto)."""
    tol = 0.3 * unit_g + 10.0
    lifts = [a for a, _b, d in transitions(src) if d <= -(unit_g - tol)]
    puts = [b for _a, b, d in transitions(dst) if d >= unit_g - tol]
    if not lifts or not puts:
        return 0.0
    return 0.0 if min(lifts) < max(puts) else LOG_MOVE_ORDER


def _resolve(
    shelf_ids: Sequence[str],
    cands: Sequence[Cand],
    units: Mapping[str, LaneStock],
    order: Callable[[str, str, str], float] | None = None,
) -> Joint | None:
    """Turn one candidate per shelf into a basket; None when an item came from nowhere."""
    removed: Counter[str] = Counter()
    sources: dict[str, list[str]] = {}
    for sid, c in zip(shelf_ids, cands, strict=False):
        for sku, n in c.removed:
            removed[sku] += n
            sources.setdefault(sku, []).extend([sid] * n)
    moves: list[Move] = []
    taken = Counter(removed)
    by_id = dict(zip(shelf_ids, cands, strict=False))
    adjust = 0.0
    for sid, c in zip(shelf_ids, cands, strict=False):
        for sku in c.added:
            src = [s for s in sources.get(sku, []) if s != sid]
            if not src:
                return None
            sources[sku].remove(src[0])
            taken[sku] -= 1
            moves.append(Move(sku, src[0], sid))
            u = units[sku]
            item_var = u.unit_sd_g**2 + (REL_BIAS * u.unit_g) ** 2
            # The move's prior already covers lifting the item: undo its per-item prior.
            adjust += _pair_adjust(by_id[src[0]], c, -item_var) - LOG_ITEM
            if order is not None:
                adjust += order(sku, src[0], sid)
    foreign = tuple(sid for sid, c in zip(shelf_ids, cands, strict=False) if c.foreign)
    shelves_used = sum(1 for c in cands if c.removed)
    if shelves_used > 1:
        adjust += (shelves_used - 1) * LOG_NEW_SHELF
    return Joint(
        tuple(cands),
        sum(c.score for c in cands) + adjust,
        {k: v for k, v in sorted(taken.items()) if v > 0},
        tuple(sorted(moves, key=lambda m: (m.sku, m.src, m.dst))),
        foreign,
    )


def best_joints(
    shelf_ids: Sequence[str],
    lists: Sequence[list[Cand]],
    units: Mapping[str, LaneStock],
    order: Callable[[str, str, str], float] | None = None,
) -> list[Joint]:
    """The best valid combinations, best first (k-best enumeration over sorted lists)."""
    if not lists:
        return [Joint((), 0.0)]
    start = (0,) * len(lists)
    top = sum(lst[0].score for lst in lists)
    heap = [(-top, start, 0)]
    seen = {start}
    out: list[Joint] = []
    pops = 0
    best = -math.inf
    while heap and len(out) < MAX_JOINTS and pops < MAX_POPS:
        neg, idx, _ = heapq.heappop(heap)
        pops += 1
        if -neg < best - KEEP_WITHIN:
            break
        j = _resolve(shelf_ids, [lst[i] for lst, i in zip(lists, idx, strict=False)], units, order)
        if j is not None:
            out.append(j)
            best = max(best, j.score)
        for p in range(len(lists)):
            if idx[p] + 1 < len(lists[p]):
                nxt = (*idx[:p], idx[p] + 1, *idx[p + 1 :])
                if nxt not in seen:
                    seen.add(nxt)
                    d = lists[p][idx[p] + 1].score - lists[p][idx[p]].score
                    heapq.heappush(heap, (neg - d, nxt, pops))
    return out


@dataclass(frozen=True)
class Explanation:
    baskets: tuple[Basket, ...]  # best first, score = posterior
    best_z: float  # worst standardised residual of the best joint (model misfit)
    cheaper_mass: float  # posterior of baskets that charge less than the best
    other_mass: float  # posterior of baskets whose taken differs from the best


def explain(
    shelves: Sequence[ShelfObs], units: Mapping[str, LaneStock], prices: Mapping[str, int]
) -> Explanation:
    ids = [s.id for s in shelves]
    moved = movable(shelves)
    lists = [shelf_candidates(s, units, moved) for s in shelves]
    by_id = {s.id: s for s in shelves}
    memo: dict[tuple[str, str, str], float] = {}

    def order(sku: str, src: str, dst: str) -> float:
        key = (sku, src, dst)
        if key not in memo:
            memo[key] = move_order(by_id[src], by_id[dst], units[sku].unit_g)
        return memo[key]

    joints = sorted(best_joints(ids, lists, units, order), key=lambda j: -j.score)
    if not joints:
        return Explanation((), math.inf, 1.0, 1.0)
    top = joints[0].score
    groups: dict[tuple, list[float | Joint]] = {}
    for j in joints:
        key = (tuple(sorted(j.taken.items())), j.moves, j.foreign)
        w = math.exp(j.score - top)
        if key in groups:
            groups[key][0] += w  # type: ignore[operator]
        else:
            groups[key] = [w, j]
    total = sum(g[0] for g in groups.values())  # type: ignore[misc]
    baskets = []
    for w, j in groups.values():
        assert isinstance(j, Joint)
        charge = sum(prices.get(s, 0) * n for s, n in j.taken.items())
        baskets.append(Basket(dict(j.taken), j.moves, j.foreign, charge, w / total))  # type: ignore[operator]
    baskets.sort(key=lambda b: -b.score)
    b0 = baskets[0]
    cheaper = sum(b.score for b in baskets if b.charge_fen < b0.charge_fen)
    other = sum(b.score for b in baskets if dict(b.taken) != dict(b0.taken))
    best_j = next(
        j
        for j in joints
        if (tuple(sorted(j.taken.items())), j.moves, j.foreign)
        == (tuple(sorted(b0.taken.items())), b0.misplaced, b0.foreign)
    )
    z = max((abs(c.z) for c in best_j.cands), default=0.0)
    return Explanation(tuple(baskets), z, cheaper, other)
