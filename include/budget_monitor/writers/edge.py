"""Formatting at a writer's edge: the model's fen, Fractions and Decimals -> what an output shows.

Only formatting lives here, never parsing: every function takes the model's
exact values. money_fmt.py holds the money formats themselves.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from budget_monitor.money_fmt import fen_to_wanyuan_str, plain_number, round2

__all__ = ["num2", "opt_num2", "presented_gap", "wan", "wan_number", "pct_text", "plain_number"]


def num2(value: Fraction | Decimal | int) -> float:
    """A JSON/chart/spreadsheet number: rounded half up to 2 decimals, then a float."""
    return float(round2(Fraction(value) if isinstance(value, int) else value))


def opt_num2(value: Fraction | Decimal | None) -> float | None:
    return None if value is None else num2(value)


def presented_gap(rate: Fraction | None, pace: Fraction) -> float | None:
    """The gap a table shows: the presented rate minus the presented pace, so a row adds up."""
    return None if rate is None else float(round2(rate) - round2(pace))


def wan(fen: int) -> str:
    """万元 text, two decimals ("372.09")."""
    return fen_to_wanyuan_str(fen)


def wan_number(fen: int) -> float:
    """万元 as a spreadsheet number: the value of :func:`wan`'s text."""
    return float(round2(Fraction(fen, 1_000_000)))


def pct_text(rate: Fraction | Decimal) -> str:
    """ "100%", "98.5%": a rate in prose and tables."""
    return f"{plain_number(rate)}%"
