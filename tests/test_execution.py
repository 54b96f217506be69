"""rules.md "Execution rate and pace": rate, pace, gap, lagging quarters, severity."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from budget_monitor.config import PaceConfig
from budget_monitor.execution import (
    RED,
    YELLOW,
    budget_json,
    compute_execution,
    monthly_json,
    quarters_json,
    units_json,
)
from budget_monitor.money_fmt import fen_to_wanyuan_str, fen_to_yuan_grouped, fen_to_yuan_str

from seed_shaped import BUDGETS, CITY, CITY_PLAN, COUNTY_PLAN, LINEAR, frames


def example_fund() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A fund shaped like the seed: 372.09 万元, all 年初, Q2 and Q3 behind pace."""
    # The initial budget document is dated in March: it still counts from 01-01.
    alloc = [(u, date(2021, 3, 15), fen, "年初") for u, fen in BUDGETS.items()]
    pay = []
    for unit, fen in BUDGETS.items():
        plan = CITY_PLAN if unit == CITY else COUNTY_PLAN
        done = 0
        for month, pct in enumerate(plan, start=1):
            target = fen * pct // 100
            pay.append((unit, date(2021, month, 20), target - done + 5_000))
            pay.append((unit, date(2021, month, 25), -5_000))  # a refund (退回)
            done = target
    return frames(alloc, pay)


def test_example_fund_lags_in_quarters_2_and_3_only() -> None:
    result = compute_execution(*example_fund(), year=2021, through_month=12, pace=LINEAR)
    quarters = {q.quarter: q for q in result.fund.quarters}
    assert quarters[1].cumulative_rate >= 25
    assert quarters[2].cumulative_rate < 50
    assert quarters[3].cumulative_rate < 75
    assert quarters[4].cumulative_rate == 100
    assert result.fund.lagging_quarters == [2, 3]
    assert result.fund.latest.cumulative_fen == 372_090_000
    assert budget_json(result) == {
        "initial_yuan": "3720900.00",
        "adjusted_yuan": "3720900.00",
        "executed_yuan": "3720900.00",
        "execution_rate": 100.0,
    }


def test_example_directory_fund_lags_in_quarters_2_and_3() -> None:
    """examples/jiangmen-2021 as ingested: the seed's "第二季度和第三季度支出进度不达序时进度"."""
    from pathlib import Path

    from budget_monitor.config import load_fund_config
    from budget_monitor.ingest import read_table

    fund_dir = Path(__file__).resolve().parents[1] / "examples" / "jiangmen-2021"
    cfg = load_fund_config(fund_dir)
    alloc = read_table(fund_dir / "budget.csv", "budget").df
    pay = pd.concat([read_table(p, "payments").df for p in sorted((fund_dir / "payments").iterdir())])
    result = compute_execution(alloc, pay, year=cfg.year, through_month=12, pace=cfg.pace)
    assert quarters_json(result) == [
        {"quarter": 1, "cumulative_rate": 26.4, "pace": 25.0, "gap_points": 1.4, "lagging": False},
        {"quarter": 2, "cumulative_rate": 38.2, "pace": 50.0, "gap_points": -11.8, "lagging": True},
        {"quarter": 3, "cumulative_rate": 62.1, "pace": 75.0, "gap_points": -12.9, "lagging": True},
        {"quarter": 4, "cumulative_rate": 100.0, "pace": 100.0, "gap_points": 0.0, "lagging": False},
    ]
    assert budget_json(result)["executed_yuan"] == "3720900.00"
    assert {u["unit"]: u["lagging_quarters"] for u in units_json(result)} == {
        "江门市市场监督管理局": [2, 3],
        "台山市市场监督管理局": [1, 2, 3],
        "开平市市场监督管理局": [2, 3],
        "恩平市市场监督管理局": [1, 2, 3],
    }
    assert [m["cumulative_rate"] for m in monthly_json(result)] == [
        8.6,
        14.9,
        26.4,
        30.1,
        34.8,
        38.2,
        44.5,
        53.0,
        62.1,
        71.8,
        84.0,
        100.0,
    ]


def test_execution_rate_is_cumulative_net_payments_over_adjusted_budget() -> None:
    alloc, pay = frames(
        [("A", date(2021, 1, 5), 1_000_000, "年初")],
        [("A", date(2021, 1, 10), 300_000), ("A", date(2021, 2, 10), 200_000), ("A", date(2021, 2, 11), -100_000)],
    )
    result = compute_execution(alloc, pay, year=2021, through_month=2, pace=LINEAR)
    jan, feb = result.fund.months
    assert (jan.executed_fen, jan.cumulative_fen, jan.rate) == (300_000, 300_000, Decimal(30))
    # The refund is netted: 300,000 + 200,000 - 100,000.
    assert (feb.executed_fen, feb.cumulative_fen, feb.rate) == (100_000, 400_000, Decimal(40))


def test_adjusted_budget_is_initial_plus_additions_minus_reductions_in_force_at_month_end() -> None:
    alloc, pay = frames(
        [
            ("A", date(2021, 2, 20), 1_000_000, "年初"),  # counts from January
            ("A", date(2021, 4, 1), 500_000, "追加"),
            ("A", date(2021, 7, 31), 300_000, "调减"),
        ],
        [("A", date(2021, 1, 31), 120_000)],
    )
    result = compute_execution(alloc, pay, year=2021, through_month=8, pace=LINEAR)
    budgets = [m.budget_fen for m in result.fund.months]
    assert budgets == [1_000_000] * 3 + [1_500_000] * 3 + [1_200_000] * 2
    assert result.fund.initial_fen == 1_000_000
    assert result.fund.month(1).rate == 12
    assert result.fund.month(4).rate == 8


def test_gap_points_is_rate_minus_pace() -> None:
    alloc, pay = frames([("A", date(2021, 1, 1), 1_000_000, "年初")], [("A", date(2021, 3, 1), 200_000)])
    q1 = compute_execution(alloc, pay, year=2021, through_month=3, pace=LINEAR).fund.month(3)
    assert q1.pace == 25
    assert q1.gap_points == Decimal(-5)
    jan = compute_execution(alloc, pay, year=2021, through_month=1, pace=LINEAR).fund.month(1)
    assert jan.gap_points == -jan.pace  # nothing spent yet


def _quarter_at(rate_fen: int, tolerance: str) -> object:
    alloc, pay = frames([("A", date(2021, 1, 1), 1_000_000, "年初")], [("A", date(2021, 6, 1), rate_fen)])
    cfg = PaceConfig(tolerance=Decimal(tolerance))
    return compute_execution(alloc, pay, year=2021, through_month=6, pace=cfg).fund.quarter(2)


def test_quarter_lagging_when_gap_below_minus_tolerance() -> None:
    assert _quarter_at(499_999, "0").lagging is True  # 49.9999 < 50
    assert _quarter_at(480_000, "2").lagging is False  # gap -2 is not below -2
    assert _quarter_at(479_999, "2").lagging is True


def test_quarter_not_lagging_when_exactly_on_pace() -> None:
    q = _quarter_at(500_000, "0")
    assert q.lagging is False
    assert q.gap_points == 0


def test_monthly_warning_yellow_when_behind_more_than_tolerance() -> None:
    alloc, pay = frames([("A", date(2021, 1, 1), 1_000_000, "年初")], [("A", date(2021, 6, 1), 490_000)])
    m = compute_execution(alloc, pay, year=2021, through_month=6, pace=LINEAR).fund.month(6)
    assert m.severity == YELLOW
    m = compute_execution(alloc, pay, year=2021, through_month=6, pace=PaceConfig(tolerance=Decimal(1))).fund.month(6)
    assert m.severity is None  # gap -1 is within the tolerance


def test_monthly_warning_red_when_behind_by_20_points_or_more() -> None:
    def severity(spent: int) -> str | None:
        alloc, pay = frames([("A", date(2021, 1, 1), 1_000_000, "年初")], [("A", date(2021, 6, 1), spent)])
        return compute_execution(alloc, pay, year=2021, through_month=6, pace=LINEAR).fund.month(6).severity

    assert severity(300_000) == RED  # exactly 20 points behind
    assert severity(300_001) == YELLOW
    assert severity(100_000) == RED
    assert severity(600_000) is None  # ahead of pace


def test_monthly_warning_computed_per_fund_and_per_budget_unit() -> None:
    alloc, pay = frames(
        [("A", date(2021, 1, 1), 1_000_000, "年初"), ("B", date(2021, 1, 1), 1_000_000, "年初")],
        [("A", date(2021, 6, 1), 900_000), ("B", date(2021, 6, 1), 250_000)],
    )
    result = compute_execution(alloc, pay, year=2021, through_month=6, pace=LINEAR)
    assert result.fund.month(6).severity is None  # 57.5% >= 50
    assert result.unit("A").month(6).severity is None
    assert result.unit("B").month(6).severity == RED  # 25% vs 50
    assert result.fund.quarter(2).units_behind == ("B",)
    assert result.unit("B").lagging_quarters == [1, 2]


def test_units_behind_listed_worst_gap_first() -> None:
    alloc, pay = frames(
        [(u, date(2021, 1, 1), 1_000_000, "年初") for u in "ABC"],
        [("A", date(2021, 3, 1), 200_000), ("B", date(2021, 3, 1), 100_000), ("C", date(2021, 3, 1), 900_000)],
    )
    result = compute_execution(alloc, pay, year=2021, through_month=3, pace=LINEAR)
    assert result.fund.quarter(1).units_behind == ("B", "A")


def test_to_reach_pace_is_money_still_to_spend_rounded_up_to_the_fen() -> None:
    alloc, pay = frames([("A", date(2021, 1, 1), 100_001, "年初")], [("A", date(2021, 1, 1), 1)])
    jan = compute_execution(alloc, pay, year=2021, through_month=1, pace=LINEAR).fund.month(1)
    # 100,001 / 12 = 8,333.42 fen -> 8,334 needed, 1 already spent.
    assert jan.to_reach_pace_fen == 8_333
    alloc, pay = frames([("A", date(2021, 1, 1), 1_200, "年初")], [("A", date(2021, 1, 1), 100)])
    assert compute_execution(alloc, pay, year=2021, through_month=1, pace=LINEAR).fund.month(1).to_reach_pace_fen == 0


def test_month_without_budget_in_force_has_no_rate_and_no_warning() -> None:
    alloc, pay = frames([("A", date(2021, 5, 1), 1_000_000, "追加")], [])
    result = compute_execution(alloc, pay, year=2021, through_month=6, pace=LINEAR)
    assert result.fund.month(4).rate is None and result.fund.month(4).severity is None
    assert result.fund.month(5).rate == 0 and result.fund.month(5).severity == RED


def test_payments_outside_the_year_or_after_the_month_are_ignored() -> None:
    alloc, pay = frames(
        [("A", date(2021, 1, 1), 1_000_000, "年初")],
        [("A", date(2020, 12, 31), 7), ("A", date(2021, 2, 1), 100), ("A", date(2021, 4, 1), 1_000)],
    )
    result = compute_execution(alloc, pay, year=2021, through_month=3, pace=LINEAR)
    assert result.fund.latest.cumulative_fen == 100


def test_unknown_allocation_kind_is_rejected() -> None:
    alloc, pay = frames([("A", date(2021, 1, 1), 1, "其他")], [])
    with pytest.raises(ValueError, match="年初"):
        compute_execution(alloc, pay, year=2021, through_month=1, pace=LINEAR)


def test_self_evaluation_json_shapes_follow_the_data_contract() -> None:
    result = compute_execution(*example_fund(), year=2021, through_month=12, pace=LINEAR)
    monthly = monthly_json(result)
    assert len(monthly) == 12
    assert set(monthly[0]) == {"month", "executed_yuan", "cumulative_yuan", "cumulative_rate", "pace", "gap_points"}
    assert monthly[0]["month"] == "2021-01" and monthly[0]["pace"] == 8.33
    assert monthly[-1]["cumulative_yuan"] == "3720900.00"
    # Presented gap = presented rate - presented pace: the table adds up.
    for row in monthly:
        assert row["gap_points"] == pytest.approx(round(row["cumulative_rate"] - row["pace"], 2), abs=1e-9)
    quarters = quarters_json(result)
    assert [q["quarter"] for q in quarters] == [1, 2, 3, 4]
    assert [q["lagging"] for q in quarters] == [False, True, True, False]
    assert quarters[3] == {"quarter": 4, "cumulative_rate": 100.0, "pace": 100.0, "gap_points": 0.0, "lagging": False}
    units = units_json(result)
    assert [u["unit"] for u in units] == sorted(BUDGETS)
    taishan = next(u for u in units if u["unit"] == "台山市市场监督管理局")
    assert taishan == {
        "unit": "台山市市场监督管理局",
        "budget_yuan": "700000.00",
        "executed_yuan": "700000.00",
        "execution_rate": 100.0,
        "lagging_quarters": [2, 3],
    }
    json.dumps({"monthly": monthly, "quarters": quarters, "units": units}, ensure_ascii=False)


def test_money_is_formatted_exactly_in_yuan_and_wanyuan() -> None:
    assert fen_to_yuan_str(372_090_000) == "3720900.00"
    assert fen_to_yuan_str(-5) == "-0.05"
    assert fen_to_yuan_str(0) == "0.00"
    assert fen_to_wanyuan_str(372_090_000) == "372.09"
    assert fen_to_wanyuan_str(372_095_000) == "372.10"  # half up
    assert fen_to_yuan_grouped(372_090_000) == "3,720,900.00"
    with pytest.raises(TypeError):
        fen_to_yuan_str(1.5)  # type: ignore[arg-type]
