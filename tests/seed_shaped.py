"""A fund shaped like the seed report, as plain frames: 372.09 万元 over the city
bureau and three county bureaus, Q2 and Q3 behind linear pace, 100% at year end.

Shared by the execution, forecast, alerts and outbox tests (pure data, no files).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from budget_monitor.config import FundConfig, PaceConfig
from budget_monitor.execution import ExecutionResult, compute_execution

LINEAR = PaceConfig()
CITY = "江门市市场监督管理局"
COUNTIES = ["台山市市场监督管理局", "开平市市场监督管理局", "恩平市市场监督管理局"]
# Cumulative percent of each unit's budget spent at each month end.
CITY_PLAN = [5, 12, 26, 30, 35, 42, 50, 58, 68, 80, 90, 100]
COUNTY_PLAN = [3, 10, 27, 30, 34, 38, 45, 55, 65, 78, 88, 100]
BUDGETS = {CITY: 162_090_000, **{c: 70_000_000 for c in COUNTIES}}  # 3,720,900.00 元 in total

CFG = FundConfig(
    code="jiangmen-2021",
    name="2021年促进经济高质量发展专项资金（市场监督管理-药品监督管理）",
    short_name="药品监督管理专项资金",
    year=2021,
    department="江门市市场监督管理局",
    recipients=["caiwu@example.com", "jihua@example.com"],
)


def frames(alloc: list[tuple], pay: list[tuple]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(allocations, payments) frames in the columns execution.py reads."""
    return (
        pd.DataFrame(alloc, columns=["unit", "date", "amount_fen", "kind"]),
        pd.DataFrame(pay, columns=["unit", "pay_date", "amount_fen"]),
    )


def seed_shaped_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    alloc = [(u, date(2021, 1, 1), fen, "年初") for u, fen in BUDGETS.items()]
    pay = []
    for unit, fen in BUDGETS.items():
        done = 0
        for month, pct in enumerate(CITY_PLAN if unit == CITY else COUNTY_PLAN, start=1):
            pay.append((unit, date(2021, month, 20), fen * pct // 100 - done))
            done = fen * pct // 100
    return frames(alloc, pay)


def seed_shaped(through_month: int) -> ExecutionResult:
    return compute_execution(*seed_shaped_frames(), year=2021, through_month=through_month, pace=LINEAR)
