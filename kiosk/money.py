"""Money is integer fen everywhere; yuan text only where people read it."""

from __future__ import annotations


def yuan(fen: int) -> str:
    """``4500`` -> ``"45.00"``; ``-50`` -> ``"-0.50"``."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def yuan_sign(fen: int) -> str:
    """``4500`` -> ``"¥45.00"``."""
    return f"-¥{yuan(-fen)}" if fen < 0 else f"¥{yuan(fen)}"
