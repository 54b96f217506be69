"""Presentation of money and rates: integer fen -> the strings the finance
office reads and the JSON carries, and the 2-decimal rounding of rates/scores.

Exact: only integer and Decimal arithmetic, never float. Every module formats
money through here, so "3720900.00" means the same thing everywhere.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np

__all__ = ["fen_to_yuan_str", "fen_to_wanyuan_str", "fen_to_yuan_grouped", "plain_number", "round2", "yuan_str_to_fen"]

_CENT = Decimal("0.01")


def round2(value: Decimal | Fraction) -> Decimal:
    """Round half up to 2 decimals (四舍五入, as the finance office does).

    A Fraction (an exact rate or share) is rounded exactly, with no
    intermediate decimal: this is the only rounding an exact score gets.
    """
    if isinstance(value, Fraction):
        hundredths = abs(value) * 100
        n = math.floor(hundredths + Fraction(1, 2))  # half away from zero, like ROUND_HALF_UP
        return (Decimal(-n if value < 0 else n) / 100).quantize(_CENT)
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def plain_number(value: Decimal | Fraction | int | float | str, *, places: int | None = 2) -> str:
    """A number for prose and tables: no exponent, no trailing zeros.

    Rounded half up to ``places`` decimals first (100.00 -> "100", 98.50 ->
    "98.5", 2.675 -> "2.68"); ``places=None`` keeps every digit (a target as
    written, "≥99.995%", must read back unchanged). Floats only arrive from the
    JSON boundary and are read through ``str`` so 0.1 stays 0.1.
    """
    if isinstance(value, Fraction):
        d = round2(value) if places == 2 else Decimal(value.numerator) / Decimal(value.denominator)
    else:
        d = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if places is not None:
        d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if d.is_zero():
        return "0"  # never "-0"
    if d == d.to_integral_value():
        return f"{d.quantize(Decimal(1)):f}"
    return f"{d.normalize():f}"


def yuan_str_to_fen(yuan: str) -> int:
    """ "3720900.00" (the JSON's 元 text) -> 372090000 fen; more than 2 decimals is an error."""
    d = Decimal(str(yuan).strip())
    fen = d * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"金额「{yuan}」超过两位小数（分），无法换算")
    return int(fen)


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
