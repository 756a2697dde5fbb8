"""Learning a product's unit weight per cabinet from what the shelves measure.

Restocks (``n`` items put down, total measured) and confirmed sales (items lifted, total
measured) are observations of the product's per-item weight. The mean is refined by a
precision-weighted (Bayesian, normal) update whose prior is the catalogue's weight with an
uncertainty of ``PRIOR_REL`` of it; the item-to-item sd is refined Welford-style from single
items, pulled towards the catalogue's sd by ``PRIOR_ITEMS`` pseudo-observations. Pure
functions: the controller persists ``mean_g``, ``sd_g`` and ``n`` in ``unit_weights``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from kiosk.weighing.model import LaneStock

PRIOR_REL = 0.01  # a catalogue mean is within about 1 % of the truth
PRIOR_ITEMS = 5.0  # the catalogue sd weighs as much as this many single items
OUTLIER_Z = 6.0  # an observation this far off is a mistake (wrong count), not a weight


@dataclass(frozen=True)
class UnitWeight:
    sku: str
    mean_g: float
    mean_var: float  # uncertainty of mean_g (g^2)
    sd_g: float  # item-to-item sd
    n: int  # items observed
    prior_sd_g: float
    ss: float = 0.0  # sum of squared deviations of single items
    singles: int = 0


def prior(sku: str, unit_g: float, unit_sd_g: float) -> UnitWeight:
    """What the catalogue says, before any observation."""
    return UnitWeight(sku, unit_g, (PRIOR_REL * unit_g) ** 2, unit_sd_g, 0, unit_sd_g)


def from_row(
    sku: str, unit_g: float, unit_sd_g: float, mean_g: float, sd_g: float, n: int
) -> UnitWeight:
    """Resume from a persisted row (mean, sd, n) with the catalogue as the prior."""
    w = prior(sku, unit_g, unit_sd_g)
    if n <= 0:
        return w
    sd = max(sd_g, 1e-3)
    mean_var = 1.0 / (1.0 / w.mean_var + n / sd**2)
    singles = n
    ss = max(sd**2 * (PRIOR_ITEMS + singles) - PRIOR_ITEMS * unit_sd_g**2, 0.0)
    return replace(w, mean_g=mean_g, mean_var=mean_var, sd_g=sd, n=n, ss=ss, singles=singles)


def observe(w: UnitWeight, grams: float, items: int, noise_g: float = 1.0) -> UnitWeight:
    """Fold in ``items`` items measured together at ``grams`` (sign ignored).

    ``noise_g`` is the reading noise of one weight change (baseline and final level).
    """
    if items <= 0:
        return w
    x = abs(grams) / items
    var_x = w.sd_g**2 / items + (noise_g / items) ** 2
    if abs(x - w.mean_g) > OUTLIER_Z * math.sqrt(var_x + w.mean_var):
        return w
    prec = 1.0 / w.mean_var + 1.0 / var_x
    mean = (w.mean_g / w.mean_var + x / var_x) / prec
    ss, singles, sd = w.ss, w.singles, w.sd_g
    if items == 1:
        ss += (x - w.mean_g) * (x - mean)
        singles += 1
        pooled = (PRIOR_ITEMS * w.prior_sd_g**2 + max(ss - singles * noise_g**2, 0.0)) / (
            PRIOR_ITEMS + singles
        )
        sd = math.sqrt(max(pooled, 0.0))
    return replace(
        w, mean_g=mean, mean_var=1.0 / prec, sd_g=sd, n=w.n + items, ss=ss, singles=singles
    )


def refined(stock: LaneStock, w: UnitWeight | None) -> LaneStock:
    """The lane as the solver should see it: the learned mean, and an sd that also carries
    what is still unknown about the mean."""
    if w is None or w.sku != stock.sku or w.n == 0:
        return stock
    return replace(stock, unit_g=w.mean_g, unit_sd_g=math.sqrt(w.sd_g**2 + w.mean_var))
