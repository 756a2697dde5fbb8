"""Unit weights learned on this cabinet (``unit_weights``), with the catalogue as the prior.

The learning itself is ``kiosk.weighing.learn`` (pure); this module is its one door to the
database, so the controller never writes the row's SQL in more than one place. ``save`` runs
inside the caller's transaction (the controller's learning writes one of its own once the
shelf is still, after the sale or restock is recorded).
"""

from __future__ import annotations

import sqlite3

from kiosk.weighing import LaneStock, learn


def load(conn: sqlite3.Connection, sku: str, unit_g: float, unit_sd_g: float) -> learn.UnitWeight:
    """What this cabinet knows of ``sku``'s weight: its row, else the catalogue alone."""
    row = conn.execute("SELECT mean_g, sd_g, n FROM unit_weights WHERE sku = ?", (sku,)).fetchone()
    if row is None:
        return learn.prior(sku, unit_g, unit_sd_g)
    return learn.from_row(sku, unit_g, unit_sd_g, float(row[0]), float(row[1]), int(row[2]))


def save(conn: sqlite3.Connection, w: learn.UnitWeight, at: str) -> None:
    conn.execute(
        "INSERT INTO unit_weights (sku, mean_g, sd_g, n, updated_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT(sku) DO UPDATE SET mean_g = excluded.mean_g, sd_g = excluded.sd_g,"
        " n = excluded.n, updated_at = excluded.updated_at",
        (w.sku, w.mean_g, w.sd_g, w.n, at),
    )


def unit(
    conn: sqlite3.Connection, sku: str, unit_g: float, unit_sd_g: float
) -> tuple[float, float]:
    """Grams and sd of one item as the weigher should use them (``learn.refined``): the
    learned mean, and an sd that also carries what is still unknown about that mean."""
    lane = learn.refined(
        LaneStock(sku, unit_g, unit_sd_g, 0, 0), load(conn, sku, unit_g, unit_sd_g)
    )
    return lane.unit_g, lane.unit_sd_g
