"""forecast.py: projected quarter-end gap and year-end rate from the fund's own spending."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from budget_monitor.execution import compute_execution
from budget_monitor.forecast import DEPARTMENT, NEAREST, OWN, RECENT, History, Profile, forecast

from seed_shaped import LINEAR, seed_shaped_frames

REPO = Path(__file__).resolve().parents[1]


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


# ------------------------------------------------ earlier years' profiles (issue 15 item 5)

# A back-loaded year: cumulative percent of a 1,000,000 fen budget at each month end.
BACK = [3, 7, 15, 21, 28, 38, 45, 53, 64, 72, 82, 100]


def profile(year: int, cumulative_pct: list[int], budget: int = 1_000_000, code: str = "F") -> Profile:
    return Profile(code, year, tuple(budget * p // 100 for p in cumulative_pct), budget)


def monthly(cumulative_pct: list[int], budget: int = 1_200_000) -> list[int]:
    cum = [budget * p // 100 for p in cumulative_pct]
    return [c - b for c, b in zip(cum, [0, *cum[:-1]])]


def test_forecast_uses_the_funds_own_earlier_years_first() -> None:
    series = one_unit(monthly(BACK[:6]))  # June close at 38%
    own = (profile(2019, BACK), profile(2020, BACK))
    fc = forecast(series, 2021, LINEAR, history=History(own=own, department=(profile(2020, [50] * 12, code="X"),)))
    assert fc.method == OWN and fc.profiles == 2 and fc.years == (2019, 2020)
    # 38% now, and the earlier years spent 62 more points after June: 100%.
    assert fc.year_end_rate == 100 and fc.year_end_low == fc.year_end_high == 100
    # Q3 end: 38 + (64 - 38) = 64 against a linear pace of 75.
    assert fc.quarter == 3 and fc.quarter_end_rate == 64 and fc.quarter_end_gap == -11
    # The recent months alone would say 38 + 6 x (38 - 15) / 3 = 84.
    assert forecast(series, 2021, LINEAR).year_end_rate == 84


def test_forecast_falls_back_to_the_departments_funds_then_to_recent_months() -> None:
    series = one_unit(monthly(BACK[:6]))
    # Y spent like X but ended at 90% of its budget.
    dept = (profile(2020, BACK, code="X"), Profile("Y", 2019, tuple(9_000 * p for p in BACK), 1_000_000))
    fc = forecast(series, 2021, LINEAR, history=History(department=dept))
    assert fc.method == DEPARTMENT and fc.profiles == 2 and fc.years == (2019, 2020)
    # Y ended at 90%: 62 x 0.9 = 55.8 more points; the forecast is the mean of X and Y.
    assert fc.year_end_low == Decimal("93.8") and fc.year_end_high == 100
    assert fc.year_end_rate == Decimal("96.9")
    # Own years that spent nothing say nothing: the department's are used.
    dead = profile(2020, [0] * 12)
    assert forecast(series, 2021, LINEAR, history=History(own=(dead,), department=dept)).method == DEPARTMENT
    fc = forecast(series, 2021, LINEAR, history=History())
    assert fc.method == RECENT and fc.profiles == 0 and fc.year_end_low is None and fc.quarter_end_high is None
    assert fc == forecast(series, 2021, LINEAR)


def test_forecast_range_spans_the_profiles_and_holds_the_forecast() -> None:
    series = one_unit(monthly(BACK[:6]))
    even = [round(100 * m / 12) for m in range(1, 13)]
    front = [15, 28, 40, 50, 58, 65, 72, 78, 84, 90, 95, 100]
    fc = forecast(
        series, 2021, LINEAR, history=History(own=(profile(2019, BACK), profile(2020, even), profile(2018, front)))
    )
    assert fc.year_end_low == 38 + 35 and fc.year_end_high == 100  # front: 35 points left after June
    assert fc.year_end_low <= fc.year_end_rate <= fc.year_end_high
    assert fc.quarter_end_low <= fc.quarter_end_rate <= fc.quarter_end_high


def test_department_method_uses_the_years_nearest_to_this_one_so_far() -> None:
    series = one_unit(monthly(BACK[:6]))
    front = [15, 28, 40, 50, 58, 65, 72, 78, 84, 90, 95, 100]
    dept = tuple(profile(2015 + i, BACK, code=f"B{i}") for i in range(NEAREST)) + tuple(
        profile(2015 + i, front, code=f"F{i}") for i in range(3)
    )
    fc = forecast(series, 2021, LINEAR, history=History(department=dept))
    assert fc.profiles == NEAREST and fc.year_end_low == fc.year_end_high == 100


def test_forecast_money_stays_exact() -> None:
    """Shares and rates are Fractions until the Decimal of the result: a third stays a third."""
    series = one_unit([100_000] * 4, budget=300_000)
    fc = forecast(
        series,
        2021,
        LINEAR,
        history=History(own=(profile(2020, [10 * (m + 1) for m in range(9)] + [95, 97, 100], budget=3),)),
    )
    assert fc.method == OWN and isinstance(fc.year_end_rate, Decimal)


def _backtest_module():
    import importlib.util
    import sys

    if "forecast_backtest" not in sys.modules:
        spec = importlib.util.spec_from_file_location("forecast_backtest", REPO / "bench" / "forecast_backtest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["forecast_backtest"]


def test_forecast_backtest_halves_the_error_from_june_on() -> None:
    """bench/forecast_backtest.py on its small set (docs/forecast.md has the full one):
    the profile forecast's mean absolute year-end error over the June..November
    closes is at most half the recent-months forecast's."""
    bt = _backtest_module()
    pool = bt.small_set()
    result = bt.backtest([fy for fy in pool if fy.year > 2018], pool)
    old, new = bt.from_june(result["old"]), bt.from_june(result["new"])
    assert old is not None and new is not None
    assert new <= old / 2, (float(old), float(new))
    # The department method alone (no own years) is better than the old one too.
    assert bt.from_june(result[DEPARTMENT]) < old


def test_forecast_backtest_on_the_example_year_at_least_halves_the_error() -> None:
    """examples/jiangmen-2021 forecast from its department's earlier synthetic years:
    the old method's 14.9 points on average (20.4 from June on) at least halved."""
    bt = _backtest_module()
    pool = bt.synthetic_set(seed=7, departments=1, funds=6, years=(2017, 2020))
    (example,) = [fy for fy in bt.example_years() if fy.year == 2021]
    result = bt.backtest([example], pool + [example])
    assert round(float(bt.overall(result["old"])), 1) == 14.9
    assert bt.from_june(result["new"]) <= bt.from_june(result["old"]) / 2


def test_forecast_history_reads_own_and_department_years_from_the_store(engine) -> None:
    """pipeline.forecast_history: the fund's earlier years (same code or name without
    the year), the department's other funds' earlier years, nothing else."""
    from sqlalchemy import insert

    from budget_monitor import store
    from budget_monitor.pipeline import FORECAST_YEARS_BACK, forecast_history
    from seed_shaped import CFG

    def fund(code: str, name: str, year: int, department: str = CFG.department, spend: int = 10_000) -> None:
        store.upsert_fund(engine, code, name, year, department)
        with engine.begin() as conn:
            conn.execute(
                insert(store.allocation).values(
                    fund_code=code, doc_no="D1", unit="A", kind="年初", date=date(year, 1, 1), amount_fen=120_000
                )
            )
            conn.execute(
                insert(store.payment),
                [
                    dict(
                        fund_code=code,
                        voucher_no=f"V{m}",
                        unit="A",
                        doc_no="D1",
                        amount_fen=spend * (3 if m == 12 else 1),
                        pay_date=date(year, m, 10),
                        kind="支付",
                    )
                    for m in range(1, 13)
                ],
            )

    own_name = CFG.name.replace("2021", "2020")
    fund("jiangmen-2020", "另一个名字", 2020)  # same code once the year is out
    fund("JM-2019-OLD", CFG.name.replace("2021", "2019"), 2019)  # same name once the year is out
    fund("JM-2020-OTHER", "2020年其他专项资金", 2020, spend=5_000)
    fund("JM-2021-OTHER", "2021年其他专项资金", 2021)  # this year: not finished
    fund("JM-2020-ELSE", own_name, 2020, department="别的部门")
    fund("JM-2010-OLD", "2010年很早的资金", 2021 - FORECAST_YEARS_BACK - 1)

    history = forecast_history(engine, CFG)
    assert [(p.fund_code, p.year) for p in history.own] == [("JM-2019-OLD", 2019), ("jiangmen-2020", 2020)]
    assert [(p.fund_code, p.year) for p in history.department] == [("JM-2020-OTHER", 2020)]
    own = history.own[0]
    assert own.budget_fen == 120_000 and own.cumulative_fen[-1] == 140_000 and own.share(11) == Fraction(11, 14)
    assert history.department[0].year_end_rate == Fraction(70 * 100, 120)
