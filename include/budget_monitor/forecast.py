"""Projected execution at the next quarter end and at year end, from spending so far.

Three methods, the first that has data wins (:func:`forecast`, ``history``):

1. ``own``: the fund's own monthly spending profile in earlier years
   (:class:`Profile`, one per earlier fund-year in the store);
2. ``department``: the profiles of the department's other funds in earlier years;
3. ``recent``: the mean of the last months extrapolated linearly (below), when
   the store has no earlier year at all.

Profile methods (1, 2). Chinese special funds are spent back-loaded (Q4 often
carries a third of the year, December alone a fifth), which a linear
extrapolation cannot know. Each earlier fund-year gives its cumulative share
p(k) of the year's net spending at each month end k and its year-end rate R
(net spending / year-end budget). At the close of month m with rate r, that
year says the months m+1..k still spend (p(k) - p(m)) x R points:

    projected rate at month k = r + (p(k) - p(m)) x R

This is the Bornhuetter-Ferguson estimate of claims reserving (the rest of the
year follows the earlier pattern, scaled by its expected level), written by
hand because it is one line in exact Fractions. It is stable in the early
months, where dividing by a small p(m) (the chain-ladder r / p(m)) swings
wildly. Each profile gives a projection; the forecast is their mean and the
range their minimum and maximum. A projection is clipped to
[r, max(100, r)]: spending never runs backwards, and not beyond the budget.

Recent-months method (3), deliberately simple, so a finance officer can redo it by hand:

1. At the close of month m, take the net spending of the last ``window`` months
   (3 by default; fewer in January and February) and its monthly mean S.
   A negative mean (refunds) counts as 0: a forecast never "un-spends".
2. Extrapolate linearly: projected cumulative at month k = cumulative(m) + S x (k - m).
3. Divide by the budget in force at month m (later 追加/调减 are unknown yet);
   the projected rate is clipped to [0, max(100, current rate)] because spending
   beyond the budget is not allowed.

Either way the quarter forecast is for the next quarter end strictly after m
(at the June close: Q3), with its pace from ``pace.py``:
projected gap = projected rate - pace at that quarter end.

Known bias of the recent-months method: special funds are spent in bursts
(contracts settle at quarter and year end), so a 3-month mean lags turning
points: it is too pessimistic before a catch-up (above all the December one)
and too optimistic right after one. Measured on examples/jiangmen-2021
(372.09 万元, actual Q2 -11.80 and Q3 -12.90 points, 100% at year end),
forecasting at each of the January..November closes (tests/test_forecast.py
recomputes these): projected year-end rate 61.8-100% against the actual 100%,
mean absolute error 14.9 points (9.9 from the September close on); projected
gap at the next quarter end: mean absolute error 7.4 points, worst 14.6.
The profile methods' backtest against it: docs/forecast.md (bench/forecast_backtest.py).

This module does no I/O: the earlier years' profiles are read from the store
by pipeline.py and passed in (import-linter contract in pyproject.toml).
The forecast is a warning signal ("at this speed you will be behind"), not a
budget projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from budget_monitor.config import PaceConfig
from budget_monitor.execution import SeriesFigures
from budget_monitor.pace import fraction_to_decimal, month_end_pace_fraction

__all__ = [
    "DEFAULT_WINDOW",
    "METHODS",
    "Forecast",
    "History",
    "Profile",
    "forecast",
    "profile_of",
]

DEFAULT_WINDOW = 3
OWN, DEPARTMENT, RECENT = "own", "department", "recent"
# In order of preference; the alert names the one used (templates/alert_forecast.j2).
METHODS = (OWN, DEPARTMENT, RECENT)
# The department method uses this many of the department's fund-years, the
# nearest to this year so far (:func:`nearest`); docs/forecast.md has the backtest.
NEAREST = 5


@dataclass(frozen=True)
class Profile:
    """One earlier fund-year's spending: net cumulative fen at each month end
    (January..December) and the budget in force at the year end."""

    fund_code: str
    year: int
    cumulative_fen: tuple[int, ...]
    budget_fen: int

    def __post_init__(self) -> None:
        if len(self.cumulative_fen) != 12:
            raise ValueError("a profile has the 12 month-end cumulatives of a year")

    @property
    def usable(self) -> bool:
        """A year that spent something against a budget says how a year is spent."""
        return self.budget_fen > 0 and self.cumulative_fen[-1] > 0

    def share(self, month: int) -> Fraction:
        """Share of the year's net spending done by the end of ``month`` (0 at month 0), in [0, 1]."""
        if month <= 0:
            return Fraction(0)
        share = Fraction(self.cumulative_fen[month - 1], self.cumulative_fen[-1])
        return min(max(share, Fraction(0)), Fraction(1))

    @property
    def year_end_rate(self) -> Fraction:
        """Percent of the year-end budget spent by the year end."""
        return Fraction(self.cumulative_fen[-1] * 100, self.budget_fen)


def profile_of(series: SeriesFigures, fund_code: str, year: int) -> Profile:
    """The profile of a whole year's figures (``series`` computed through December)."""
    if len(series.months) != 12:
        raise ValueError(f"{fund_code} {year}: a profile needs the whole year, not {len(series.months)} months")
    return Profile(
        fund_code=fund_code,
        year=year,
        cumulative_fen=tuple(m.cumulative_fen for m in series.months),
        budget_fen=series.months[-1].budget_fen,
    )


@dataclass(frozen=True)
class History:
    """Earlier years the store knows: the fund's own, and the department's other funds'."""

    own: tuple[Profile, ...] = ()
    department: tuple[Profile, ...] = ()

    def chosen(self) -> tuple[str, tuple[Profile, ...]]:
        """The method the forecast uses and its profiles (none for ``recent``)."""
        for method, profiles in ((OWN, self.own), (DEPARTMENT, self.department)):
            usable = tuple(p for p in profiles if p.usable)
            if usable:
                return method, usable
        return RECENT, ()


def nearest(profiles: Sequence[Profile], rates: Sequence[Fraction], k: int) -> tuple[Profile, ...]:
    """The ``k`` profiles whose cumulative rates at months 1..m (share x year-end rate)
    are closest to this year's ``rates`` so far (sum of squared differences; ties by
    year and code). The department's funds are spent in different shapes (a grant
    front-loaded, a works contract back-loaded): the ones that have gone like this
    year so far say more about its rest than their mean does."""
    if len(profiles) <= k:
        return tuple(profiles)

    def distance(p: Profile) -> Fraction:
        return sum(((p.share(i) * p.year_end_rate - r) ** 2 for i, r in enumerate(rates, start=1)), Fraction(0))

    return tuple(sorted(profiles, key=lambda p: (distance(p), p.year, p.fund_code))[:k])


@dataclass(frozen=True)
class Forecast:
    as_of_month: int
    window_months: int
    # Mean net monthly spending of the last window_months (fen, rounded down):
    # what the recent method extrapolates; kept for every method.
    monthly_spend_fen: int
    year_end_rate: Decimal | None
    # The next quarter end after as_of_month; None at the December close.
    quarter: int | None
    quarter_end_rate: Decimal | None
    quarter_end_pace: Decimal | None
    quarter_end_gap: Decimal | None
    # Which of METHODS made the forecast, from how many earlier fund-years
    # (which years: ``years``), and the range of their projections (None for recent).
    method: str = RECENT
    years: tuple[int, ...] = ()
    profiles: int = 0
    year_end_low: Decimal | None = None
    year_end_high: Decimal | None = None
    quarter_end_low: Decimal | None = None
    quarter_end_high: Decimal | None = None

    @property
    def quarter_behind(self) -> bool:
        """The projected quarter-end rate is below that quarter's pace."""
        return self.quarter_end_gap is not None and self.quarter_end_gap < 0


def _clip(rate: Fraction, current: Fraction) -> Fraction:
    return min(max(rate, Fraction(0)), max(Fraction(100), current))


def _projected_rate(cumulative: int, spend: Fraction, months_ahead: int, budget: int, current: Fraction) -> Fraction:
    projected = Fraction(cumulative) + spend * months_ahead
    return _clip(projected * 100 / budget, current)


def _profile_rate(profile: Profile, m: int, k: int, current: Fraction) -> Fraction:
    """Rate at month ``k`` if months m+1..k spend as ``profile``'s year did (Bornhuetter-Ferguson)."""
    ahead = (profile.share(k) - profile.share(m)) * profile.year_end_rate
    return _clip(current + max(ahead, Fraction(0)), current)


def _projections(profiles: Sequence[Profile], m: int, k: int, current: Fraction) -> tuple[Fraction, Fraction, Fraction]:
    """Mean, minimum and maximum of the profiles' projected rates at month ``k``."""
    rates = [_profile_rate(p, m, k, current) for p in profiles]
    return sum(rates, Fraction(0)) / len(rates), min(rates), max(rates)


def forecast(
    series: SeriesFigures,
    year: int,
    pace: PaceConfig,
    as_of_month: int | None = None,
    window: int = DEFAULT_WINDOW,
    history: History | None = None,
) -> Forecast:
    """Forecast of ``series`` (the fund or one unit) at the close of ``as_of_month``,
    from the earlier years in ``history`` when it has any (module docstring)."""
    m = as_of_month or len(series.months)
    if not 1 <= m <= len(series.months):
        raise ValueError(f"没有 {m} 月的执行数据")
    if window < 1:
        raise ValueError("window must be at least one month")
    now = series.month(m)
    used = min(window, m)
    before = series.month(m - used).cumulative_fen if m > used else 0
    spend = max(Fraction(now.cumulative_fen - before, used), Fraction(0))
    method, profiles = (history or History()).chosen()
    if method == DEPARTMENT and now.budget_fen > 0:
        rates = [Fraction(series.month(i).cumulative_fen * 100, now.budget_fen) for i in range(1, m + 1)]
        profiles = nearest(profiles, rates, NEAREST)
    chosen = {"method": method, "years": tuple(sorted({p.year for p in profiles})), "profiles": len(profiles)}

    quarter = None if m == 12 else (m // 3) + 1
    if now.budget_fen <= 0:
        return Forecast(m, used, int(spend), None, quarter, None, None, None, **chosen)

    current = Fraction(now.cumulative_fen * 100, now.budget_fen)

    def at(k: int) -> tuple[Fraction, Decimal | None, Decimal | None]:
        """Projected rate at month k, and its range (None for the recent method)."""
        if not profiles:
            return _projected_rate(now.cumulative_fen, spend, k - m, now.budget_fen, current), None, None
        mean, low, high = _projections(profiles, m, k, current)
        return mean, fraction_to_decimal(low), fraction_to_decimal(high)

    year_end, year_low, year_high = at(12)
    q_rate = q_pace = q_gap = q_low = q_high = None
    if quarter is not None:
        end = quarter * 3
        rate, q_low, q_high = at(end)
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
        year_end_low=year_low,
        year_end_high=year_high,
        quarter_end_low=q_low,
        quarter_end_high=q_high,
        **chosen,
    )
