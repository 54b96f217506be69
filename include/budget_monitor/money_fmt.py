"""Presentation of money and rates: integer fen -> the strings the finance
office reads and the JSON carries, and the 2-decimal rounding of rates/scores.

Exact: only integer and Decimal arithmetic, never float. Every module formats
money through here, so "3720900.00" means the same thing everywhere.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np

__all__ = ["fen_to_yuan_str", "fen_to_wanyuan_str", "fen_to_yuan_grouped", "round2"]

_CENT = Decimal("0.01")


def round2(value: Decimal) -> Decimal:
    """Round half up to 2 decimals (四舍五入, as the finance office does)."""
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def fen_to_yuan_str(fen: int) -> str:
    """372090000 fen -> "3720900.00" (元, exactly two decimals, no grouping)."""
    if isinstance(fen, bool) or not isinstance(fen, (int, np.integer)):
        raise TypeError(f"money must be integer fen, got {type(fen).__name__}")
    fen = int(fen)
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan}.{cents:02d}"


def fen_to_yuan_grouped(fen: int) -> str:
    """372090000 fen -> "3,720,900.00" (for text read by people)."""
    plain = fen_to_yuan_str(fen)
    sign = "-" if plain.startswith("-") else ""
    whole, cents = plain.lstrip("-").split(".")
    return f"{sign}{int(whole):,}.{cents}"


def fen_to_wanyuan_str(fen: int) -> str:
    """372090000 fen -> "372.09" (万元, two decimals, rounded half up as the seed writes)."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"money must be integer fen, got {type(fen).__name__}")
    wan = (Decimal(fen) / Decimal(1_000_000)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{wan:.2f}"
