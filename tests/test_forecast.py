"""forecast.py: projected quarter-end gap and year-end rate from the fund's own spending."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from budget_monitor.execution import compute_execution
from budget_monitor.forecast import forecast

from seed_shaped import LINEAR, seed_shaped_frames


def one_unit(monthly_fen: list[int], budget: int = 1_200_000):
    alloc = pd.DataFrame([("A", date(2021, 1, 1), budget, "年初")], columns=["unit", "date", "amount_fen", "kind"])
    pay = pd.DataFrame(
        [("A", date(2021, m, 15), fen) for m, fen in enumerate(monthly_fen, start=1)],
        columns=["unit", "pay_date", "amount_fen"],
    )
    return compute_execution(alloc, pay, year=2021, through_month=len(monthly_fen), pace=LINEAR).fund


def test_forecast_extrapolates_the_mean_of_the_last_three_months() -> None:
    # Months 3..5 spend 30,000 each; 5 months in, 130,000 of 1,200,000 spent.
    fc = forecast(one_unit([10_000, 30_000, 30_000, 30_000, 30_000]), 2021, LINEAR)
    assert fc.as_of_month == 5 and fc.window_months == 3
    assert fc.monthly_spend_fen == 30_000
    # Q2 end: 130,000 + 30,000 = 160,000 -> 13.33% vs pace 50.
    assert fc.quarter == 2
    assert fc.quarter_end_rate == Decimal(160_000 * 100) / Decimal(1_200_000)
    assert fc.quarter_end_pace == 50
    assert fc.quarter_end_gap == fc.quarter_end_rate - 50
    assert fc.quarter_behind
    # Year end: 130,000 + 7 x 30,000 = 340,000.
    assert fc.year_end_rate == Decimal(340_000 * 100) / Decimal(1_200_000)


def test_forecast_uses_the_months_available_in_january_and_february() -> None:
    fc = forecast(one_unit([60_000, 0]), 2021, LINEAR)
    assert fc.window_months == 2 and fc.monthly_spend_fen == 30_000
    assert fc.quarter == 1
    assert fc.quarter_end_rate == 7.5  # (60,000 + 30,000) / 1,200,000


def test_forecast_after_a_quarter_close_is_for_the_next_quarter() -> None:
    series = one_unit([100_000] * 6)
    fc = forecast(series, 2021, LINEAR, as_of_month=6)
    assert fc.quarter == 3
    assert fc.quarter_end_rate == 75 and fc.quarter_end_gap == 0
    assert not fc.quarter_behind
    assert forecast(series, 2021, LINEAR, as_of_month=3).quarter == 2


def test_forecast_at_december_close_has_no_quarter_left() -> None:
    fc = forecast(one_unit([100_000] * 12), 2021, LINEAR)
    assert fc.quarter is None and fc.quarter_end_gap is None
    assert fc.year_end_rate == 100


def test_forecast_is_clipped_to_the_budget_and_never_unspends() -> None:
    fc = forecast(one_unit([0, 0, 600_000]), 2021, LINEAR)
    assert fc.year_end_rate == 100  # 50% + 9 x 16.7% would exceed the budget
    fc = forecast(one_unit([300_000, 0, -100_000, -100_000]), 2021, LINEAR)
    assert fc.monthly_spend_fen == 0
    assert fc.year_end_rate == Decimal(100_000 * 100) / Decimal(1_200_000)


def test_forecast_without_budget_in_force_has_no_rate() -> None:
    alloc = pd.DataFrame([("A", date(2021, 9, 1), 1_000, "追加")], columns=["unit", "date", "amount_fen", "kind"])
    pay = pd.DataFrame([], columns=["unit", "pay_date", "amount_fen"])
    series = compute_execution(alloc, pay, year=2021, through_month=3, pace=LINEAR).fund
    fc = forecast(series, 2021, LINEAR)
    assert fc.year_end_rate is None and fc.quarter == 2 and fc.quarter_end_gap is None


def _errors(fund) -> tuple[list[Decimal], list[Decimal]]:
    year_errors, gap_errors = [], []
    for m in range(1, 12):
        fc = forecast(fund, 2021, LINEAR, as_of_month=m)
        assert fc.quarter is not None and fc.quarter_end_gap is not None and fc.year_end_rate is not None
        year_errors.append(abs(fc.year_end_rate - 100))
        gap_errors.append(abs(fc.quarter_end_gap - fund.month(fc.quarter * 3).gap_points))
    return year_errors, gap_errors


def example_year_fund():
    from budget_monitor.ingest import read_table

    fund_dir = Path(__file__).resolve().parents[1] / "examples" / "jiangmen-2021"
    alloc = read_table(fund_dir / "budget.csv", "budget").df
    pay = pd.concat([read_table(p, "payments").df for p in sorted((fund_dir / "payments").iterdir())])
    return compute_execution(alloc, pay, year=2021, through_month=12, pace=LINEAR).fund


def test_forecast_error_on_the_example_year_is_as_documented() -> None:
    """The errors quoted in forecast.py's docstring, on examples/jiangmen-2021."""
    fund = example_year_fund()
    assert fund.lagging_quarters == [2, 3]
    year_errors, gap_errors = _errors(fund)
    assert round(sum(year_errors) / 11, 1) == Decimal("14.9")
    assert round(sum(year_errors[8:]) / 3, 1) == Decimal("9.9")
    assert round(100 - max(year_errors), 1) == Decimal("61.8")
    assert round(sum(gap_errors) / 11, 1) == Decimal("7.4")
    assert round(max(gap_errors), 1) == Decimal("14.6")
    june = forecast(fund, 2021, LINEAR, as_of_month=6)
    assert june.quarter == 3 and round(june.quarter_end_gap, 2) == Decimal("-25.00")
    assert fund.quarter(3).lagging


def test_forecast_on_a_synthetic_year_warns_before_the_lagging_quarter() -> None:
    fund = compute_execution(*seed_shaped_frames(), year=2021, through_month=12, pace=LINEAR).fund
    year_errors, gap_errors = _errors(fund)
    assert round(sum(year_errors) / 11, 1) == Decimal("16.3")
    assert round(sum(gap_errors) / 11, 1) == Decimal("7.3")
    # At the June close the forecast already says Q3 will be behind (it was).
    assert forecast(fund, 2021, LINEAR, as_of_month=6).quarter_behind
    assert fund.quarter(3).lagging


def test_forecast_rejects_a_month_without_data() -> None:
    with pytest.raises(ValueError):
        forecast(one_unit([1]), 2021, LINEAR, as_of_month=2)
