"""Projected execution at the next quarter end and at year end, from spending so far.

Method (deliberately simple, so a finance officer can redo it by hand):

1. At the close of month m, take the net spending of the last ``window`` months
   (3 by default; fewer in January and February) and its monthly mean S.
   A negative mean (refunds) counts as 0: a forecast never "un-spends".
2. Extrapolate linearly: projected cumulative at month k = cumulative(m) + S x (k - m).
3. Divide by the budget in force at month m (later 追加/调减 are unknown yet);
   the projected rate is clipped to [0, max(100, current rate)] because spending
   beyond the budget is not allowed.
4. The quarter forecast is for the next quarter end strictly after m (at the
   June close: Q3), with its pace from ``pace.py``:
   projected gap = projected rate - pace at that quarter end.

Known bias: special funds are spent in bursts (contracts settle at quarter and
year end), so a 3-month mean lags turning points: it is too pessimistic before
a catch-up (above all the December one) and too optimistic right after one.

Measured error on the example year examples/jiangmen-2021 (372.09 万元, actual
Q2 -11.80 and Q3 -12.90 points, 100% at year end), forecasting at each of the
January..November closes (tests/test_forecast.py recomputes these):

- projected year-end rate 61.8-100% against the actual 100%: mean absolute
  error 14.9 points (9.9 points from the September close on);
- projected gap at the next quarter end against the actual gap: mean absolute
  error 7.4 points, worst 14.6 (September close, blind to the December
  catch-up); at the June close it says "Q3 behind by 25.00 points" (actual
  12.90 behind): right in direction, too pessimistic in size.

The forecast is a warning signal ("at this speed you will be behind"), not a
budget projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from budget_monitor.config import PaceConfig
from budget_monitor.execution import SeriesFigures
from budget_monitor.pace import fraction_to_decimal, month_end_pace_fraction

__all__ = ["Forecast", "forecast", "DEFAULT_WINDOW"]

DEFAULT_WINDOW = 3


@dataclass(frozen=True)
class Forecast:
    as_of_month: int
    window_months: int
    # Mean net monthly spending used for the extrapolation (fen, rounded down).
    monthly_spend_fen: int
    year_end_rate: Decimal | None
    # The next quarter end after as_of_month; None at the December close.
    quarter: int | None
    quarter_end_rate: Decimal | None
    quarter_end_pace: Decimal | None
    quarter_end_gap: Decimal | None

    @property
    def quarter_behind(self) -> bool:
        """The projected quarter-end rate is below that quarter's pace."""
        return self.quarter_end_gap is not None and self.quarter_end_gap < 0


def _projected_rate(cumulative: int, spend: Fraction, months_ahead: int, budget: int, current: Fraction) -> Fraction:
    projected = Fraction(cumulative) + spend * months_ahead
    rate = projected * 100 / budget
    return min(max(rate, Fraction(0)), max(Fraction(100), current))


def forecast(
    series: SeriesFigures,
    year: int,
    pace: PaceConfig,
    as_of_month: int | None = None,
    window: int = DEFAULT_WINDOW,
) -> Forecast:
    """Forecast of ``series`` (the fund or one unit) at the close of ``as_of_month``."""
    m = as_of_month or len(series.months)
    if not 1 <= m <= len(series.months):
        raise ValueError(f"没有 {m} 月的执行数据")
    if window < 1:
        raise ValueError("window must be at least one month")
    now = series.month(m)
    used = min(window, m)
    before = series.month(m - used).cumulative_fen if m > used else 0
    spend = max(Fraction(now.cumulative_fen - before, used), Fraction(0))

    quarter = None if m == 12 else (m // 3) + 1
    if now.budget_fen <= 0:
        return Forecast(m, used, int(spend), None, quarter, None, None, None)

    current = Fraction(now.cumulative_fen * 100, now.budget_fen)
    year_end = _projected_rate(now.cumulative_fen, spend, 12 - m, now.budget_fen, current)
    q_rate = q_pace = q_gap = None
    if quarter is not None:
        end = quarter * 3
        rate = _projected_rate(now.cumulative_fen, spend, end - m, now.budget_fen, current)
        pace_frac = month_end_pace_fraction(year, end, pace)
        q_rate, q_pace, q_gap = (
            fraction_to_decimal(rate),
            fraction_to_decimal(pace_frac),
            fraction_to_decimal(rate - pace_frac),
        )
    return Forecast(
        as_of_month=m,
        window_months=used,
        monthly_spend_fen=int(spend),
        year_end_rate=fraction_to_decimal(year_end),
        quarter=quarter,
        quarter_end_rate=q_rate,
        quarter_end_pace=q_pace,
        quarter_end_gap=q_gap,
    )
