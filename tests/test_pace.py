"""rules.md "Execution rate and pace": the 序时进度 policies on real calendar dates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest

from budget_monitor.config import PaceConfig
from budget_monitor.pace import month_end_pace, pace_at, pace_fraction_at, quarter_end_pace

LINEAR_MONTH = PaceConfig()
LINEAR_DAY = PaceConfig(policy="linear_day")
WORKDAYS = PaceConfig(policy="workdays")


def test_pace_linear_month_is_month_over_twelve_at_month_end() -> None:
    assert [quarter_end_pace(2021, q, LINEAR_MONTH) for q in (1, 2, 3, 4)] == [25, 50, 75, 100]
    for m in range(1, 13):
        assert pace_fraction_at(date(2021, m, 28 if m == 2 else 30), LINEAR_MONTH) <= Fraction(m * 100, 12)
        assert month_end_pace(2021, m, LINEAR_MONTH) == Decimal(m * 100) / Decimal(12)
    assert month_end_pace(2021, 1, LINEAR_MONTH).quantize(Decimal("0.01")) == Decimal("8.33")


def test_pace_linear_month_grows_by_day_inside_a_month() -> None:
    # Half of June elapsed: 5.5 months of 12.
    assert pace_fraction_at(date(2021, 6, 15), LINEAR_MONTH) == Fraction(55, 12) * 100 / 10
    assert pace_at(date(2021, 12, 31), LINEAR_MONTH) == 100


def test_pace_linear_day_counts_the_day_itself_and_leap_years() -> None:
    assert pace_fraction_at(date(2021, 1, 1), LINEAR_DAY) == Fraction(100, 365)
    assert pace_fraction_at(date(2024, 1, 1), LINEAR_DAY) == Fraction(100, 366)
    # 2024 is a leap year: 02-29 exists and 06-30 is day 182 of 366.
    assert pace_fraction_at(date(2024, 2, 29), LINEAR_DAY) == Fraction(60 * 100, 366)
    assert pace_fraction_at(date(2024, 6, 30), LINEAR_DAY) == Fraction(182 * 100, 366)
    assert pace_fraction_at(date(2021, 6, 30), LINEAR_DAY) == Fraction(181 * 100, 365)
    assert month_end_pace(2024, 12, LINEAR_DAY) == 100
    assert pace_at(date(2024, 6, 30), LINEAR_DAY).quantize(Decimal("0.01")) == Decimal("49.73")


def test_pace_milestones_interpolate_linearly_by_day_between_points() -> None:
    cfg = PaceConfig(policy="milestones", milestones={"06-30": Decimal(50), "09-30": Decimal(75)})
    # Implied start 0 before 01-01 and 12-31 = 100.
    assert pace_fraction_at(date(2021, 6, 30), cfg) == 50
    assert pace_fraction_at(date(2021, 9, 30), cfg) == 75
    assert pace_fraction_at(date(2021, 12, 31), cfg) == 100
    # 03-31 is day 90 of the 181 days up to 06-30.
    assert pace_fraction_at(date(2021, 3, 31), cfg) == Fraction(50 * 90, 181)
    # 08-15 is 46 of the 92 days from 06-30 to 09-30: exactly halfway.
    assert pace_fraction_at(date(2021, 8, 15), cfg) == Fraction(125, 2)
    # 11-15 is 46 of the 92 days from 09-30 to 12-31.
    assert pace_fraction_at(date(2021, 11, 15), cfg) == Fraction(175, 2)


def test_pace_milestones_common_table_with_march() -> None:
    cfg = PaceConfig(
        policy="milestones",
        milestones={"03-31": Decimal(25), "06-30": Decimal(50), "09-30": Decimal(75), "12-31": Decimal(100)},
    )
    assert [quarter_end_pace(2021, q, cfg) for q in (1, 2, 3, 4)] == [25, 50, 75, 100]
    assert pace_fraction_at(date(2021, 1, 1), cfg) == Fraction(25, 90)


def test_pace_milestones_feb_29_means_end_of_february_in_common_years() -> None:
    cfg = PaceConfig(policy="milestones", milestones={"02-29": Decimal(10)})
    assert pace_fraction_at(date(2021, 2, 28), cfg) == 10
    assert pace_fraction_at(date(2024, 2, 29), cfg) == 10
    assert pace_fraction_at(date(2024, 2, 28), cfg) == Fraction(10 * 59, 60)


def test_pace_workdays_uses_the_official_2021_holiday_calendar() -> None:
    # 2021 has 250 official workdays (holidays off, weekend make-up days on).
    assert pace_fraction_at(date(2021, 12, 31), WORKDAYS) == 100
    before = pace_fraction_at(date(2021, 9, 30), WORKDAYS)
    # National Day week 10-01..10-07 are not workdays: the pace stays flat.
    for d in range(1, 8):
        assert pace_fraction_at(date(2021, 10, d), WORKDAYS) == before
    # 10-08 (Friday) is a workday and 10-09 (Saturday) a make-up workday.
    assert pace_fraction_at(date(2021, 10, 8), WORKDAYS) == before + Fraction(100, 250)
    assert pace_fraction_at(date(2021, 10, 9), WORKDAYS) == before + Fraction(200, 250)
    # 09-26 is a Sunday but a make-up workday; 09-25 Saturday is not.
    assert pace_fraction_at(date(2021, 9, 26), WORKDAYS) - pace_fraction_at(date(2021, 9, 25), WORKDAYS) == Fraction(
        100, 250
    )
    assert pace_fraction_at(date(2021, 9, 25), WORKDAYS) == pace_fraction_at(date(2021, 9, 24), WORKDAYS)
    # First workday of 2021 is 01-04 (01-01 holiday, 01-02/03 weekend).
    assert pace_fraction_at(date(2021, 1, 3), WORKDAYS) == 0
    assert pace_fraction_at(date(2021, 1, 4), WORKDAYS) == Fraction(100, 250)


def test_pace_workdays_outside_the_calendar_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="工作日历"):
        pace_at(date(2099, 6, 30), WORKDAYS)


def test_pace_is_exact_decimal() -> None:
    assert isinstance(pace_at(date(2021, 6, 30), LINEAR_DAY), Decimal)
    assert month_end_pace(2021, 6, LINEAR_MONTH) == Decimal("50")
