"""Execution rate against time pace, per fund and per budget unit, month by month.

Pure computation over two DataFrames (rules.md "Execution rate and pace"):

- ``allocations``: unit, date (datetime.date), amount_fen (int), kind 年初/追加/调减
- ``payments``: unit, pay_date (datetime.date), amount_fen (int, refunds negative)

For every month 1..through_month, for the fund and for each unit:

- executed_fen: net payments in the month; cumulative_fen: since 01-01.
- budget_fen (全年预算数 in force at month end): 年初 + 追加 - 调减 of rows dated on
  or before the month end; 年初 rows count from the start of the year whatever
  their date (the initial budget is the year's plan even when the document is
  issued in February).
- rate = cumulative / budget x 100; pace from ``pace.py``; gap_points = rate - pace.
- severity: "red" when gap <= -red_gap, "yellow" when gap < -tolerance, else None.
- to_reach_pace_fen: money still to spend by month end to reach the pace
  (rounded up to the fen), 0 when on or ahead of pace.

Quarters (3, 6, 9, 12 up to through_month): the quarter-end month's figures,
``lagging`` when gap < -tolerance, and the units lagging at that date.

Decisions (severity, lagging, to_reach) use exact fractions. Presented values
are rounded half up to 2 decimals; the presented gap is the presented rate minus
the presented pace, so a table always adds up for its reader.

A month whose budget in force is zero (or negative) has no rate: rate and gap
are None and it is never "behind".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pandas as pd

from budget_monitor.budget import BUDGET_SIGN, signed_amounts
from budget_monitor.config import PaceConfig
from budget_monitor.money_fmt import fen_to_yuan_str, round2
from budget_monitor.pace import fraction_to_decimal, month_end_pace_fraction

__all__ = [
    "YELLOW",
    "RED",
    "MonthFigures",
    "QuarterFigures",
    "SeriesFigures",
    "ExecutionResult",
    "compute_execution",
    "round2",
    "monthly_json",
    "quarters_json",
    "units_json",
    "budget_json",
]

YELLOW = "yellow"
RED = "red"
FUND = ""  # the "unit" of the whole-fund series


def _float2(value: Decimal | None) -> float | None:
    return None if value is None else float(round2(value))


@dataclass(frozen=True)
class MonthFigures:
    month: int
    executed_fen: int
    cumulative_fen: int
    budget_fen: int
    rate: Decimal | None
    pace: Decimal
    gap_points: Decimal | None
    severity: str | None
    to_reach_pace_fen: int
    rate_exact: Fraction | None = field(repr=False, compare=False, default=None)
    pace_exact: Fraction = field(repr=False, compare=False, default=Fraction(0))

    @property
    def behind(self) -> bool:
        return self.severity is not None

    @property
    def rate_2dp(self) -> Decimal | None:
        return None if self.rate is None else round2(self.rate)

    @property
    def pace_2dp(self) -> Decimal:
        return round2(self.pace)

    @property
    def gap_2dp(self) -> Decimal | None:
        """Presented gap: presented rate minus presented pace."""
        return None if self.rate is None else round2(self.rate) - round2(self.pace)


@dataclass(frozen=True)
class QuarterFigures:
    quarter: int
    month: int
    cumulative_fen: int
    budget_fen: int
    cumulative_rate: Decimal | None
    pace: Decimal
    gap_points: Decimal | None
    lagging: bool
    units_behind: tuple[str, ...]
    to_reach_pace_fen: int

    @property
    def rate_2dp(self) -> Decimal | None:
        return None if self.cumulative_rate is None else round2(self.cumulative_rate)

    @property
    def pace_2dp(self) -> Decimal:
        return round2(self.pace)

    @property
    def gap_2dp(self) -> Decimal | None:
        return None if self.cumulative_rate is None else round2(self.cumulative_rate) - round2(self.pace)


@dataclass(frozen=True)
class SeriesFigures:
    """Month and quarter figures of the whole fund (unit == "") or of one unit."""

    unit: str
    initial_fen: int
    months: tuple[MonthFigures, ...]
    quarters: tuple[QuarterFigures, ...]

    def month(self, month: int) -> MonthFigures:
        return self.months[month - 1]

    def quarter(self, quarter: int) -> QuarterFigures:
        for q in self.quarters:
            if q.quarter == quarter:
                return q
        raise KeyError(quarter)

    @property
    def latest(self) -> MonthFigures:
        return self.months[-1]

    @property
    def lagging_quarters(self) -> list[int]:
        return [q.quarter for q in self.quarters if q.lagging]


@dataclass(frozen=True)
class ExecutionResult:
    year: int
    through_month: int
    pace: PaceConfig
    fund: SeriesFigures
    units: tuple[SeriesFigures, ...]

    def unit(self, name: str) -> SeriesFigures:
        for series in self.units:
            if series.unit == name:
                return series
        raise KeyError(name)


# --------------------------------------------------------------------------- inputs


def _month_of(values: pd.Series, year: int) -> pd.Series:
    """Month number of each date in ``year``; 0 before the year, 13 after it."""
    ts = pd.to_datetime(values)
    month = ts.dt.month.astype("int64")
    month = month.where(ts.dt.year == year, 0)
    return month.where(ts.dt.year <= year, 13)


def _budget_table(allocations: pd.DataFrame, year: int) -> pd.DataFrame:
    """unit, effective month (0 = from the start of the year), signed amount_fen."""
    if allocations.empty:
        return pd.DataFrame({"unit": [], "month": [], "signed_fen": []})
    unknown = sorted(set(allocations["kind"]) - set(BUDGET_SIGN))
    if unknown:
        raise ValueError(f"预算指标类型无效：{unknown}（应为 年初、追加 或 调减）")
    kind = allocations["kind"]
    month = _month_of(allocations["date"], year)
    month = month.where(kind != "年初", 0)
    return pd.DataFrame(
        {
            "unit": allocations["unit"].astype(str).to_numpy(),
            "month": month.to_numpy(),
            "kind": kind.to_numpy(),
            # astype first: a null amount still fails loudly, as before the
            # arithmetic moved to budget.py (which counts nulls as 0 for validation).
            "signed_fen": signed_amounts(kind, allocations["amount_fen"].astype("int64")),
        }
    )


def _spent_by_month(payments: pd.DataFrame, year: int, through_month: int) -> dict[tuple[str, int], int]:
    if payments.empty:
        return {}
    month = _month_of(payments["pay_date"], year)
    frame = pd.DataFrame(
        {
            "unit": payments["unit"].astype(str).to_numpy(),
            "month": month.to_numpy(),
            "fen": payments["amount_fen"].astype("int64").to_numpy(),
        }
    )
    frame = frame[(frame["month"] >= 1) & (frame["month"] <= through_month)]
    sums = frame.groupby(["unit", "month"], sort=False)["fen"].sum()
    return {(str(u), int(m)): int(v) for (u, m), v in sums.items()}


# ---------------------------------------------------------------------- computation


def _severity(gap: Fraction | None, cfg: PaceConfig) -> str | None:
    if gap is None:
        return None
    if gap <= -Fraction(cfg.red_gap):
        return RED
    if gap < -Fraction(cfg.tolerance):
        return YELLOW
    return None


def _month_figures(
    month: int, executed: int, cumulative: int, budget: int, pace: Fraction, cfg: PaceConfig
) -> MonthFigures:
    if budget > 0:
        rate = Fraction(cumulative * 100, budget)
        gap: Fraction | None = rate - pace
        to_reach = max(0, math.ceil(pace * budget / 100) - cumulative)
    else:
        rate, gap, to_reach = None, None, 0
    return MonthFigures(
        month=month,
        executed_fen=executed,
        cumulative_fen=cumulative,
        budget_fen=budget,
        rate=None if rate is None else fraction_to_decimal(rate),
        pace=fraction_to_decimal(pace),
        gap_points=None if gap is None else fraction_to_decimal(gap),
        severity=_severity(gap, cfg),
        to_reach_pace_fen=to_reach,
        rate_exact=rate,
        pace_exact=pace,
    )


def _lagging(m: MonthFigures, cfg: PaceConfig) -> bool:
    if m.rate_exact is None:
        return False
    return m.rate_exact - m.pace_exact < -Fraction(cfg.tolerance)


def _series(
    spent: dict[int, int],
    budget_delta: dict[int, int],
    paces: list[Fraction],
    through_month: int,
    cfg: PaceConfig,
) -> list[MonthFigures]:
    """``budget_delta``: signed budget change taking effect in each month (0 = from 01-01)."""
    months: list[MonthFigures] = []
    cumulative = 0
    budget = budget_delta.get(0, 0)
    for m in range(1, through_month + 1):
        executed = spent.get(m, 0)
        cumulative += executed
        budget += budget_delta.get(m, 0)
        months.append(_month_figures(m, executed, cumulative, budget, paces[m - 1], cfg))
    return months


def _by_unit(sums: dict[tuple[str, int], int]) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    for (unit, month), fen in sums.items():
        out.setdefault(unit, {})[month] = fen
    return out


def _total(by_unit: dict[str, dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for months in by_unit.values():
        for month, fen in months.items():
            out[month] = out.get(month, 0) + fen
    return out


def _quarters(
    months: list[MonthFigures], cfg: PaceConfig, behind: dict[int, tuple[str, ...]]
) -> tuple[QuarterFigures, ...]:
    out = []
    for q in range(1, 5):
        end = q * 3
        if end > len(months):
            break
        m = months[end - 1]
        out.append(
            QuarterFigures(
                quarter=q,
                month=end,
                cumulative_fen=m.cumulative_fen,
                budget_fen=m.budget_fen,
                cumulative_rate=m.rate,
                pace=m.pace,
                gap_points=m.gap_points,
                lagging=_lagging(m, cfg),
                units_behind=behind.get(end, ()),
                to_reach_pace_fen=m.to_reach_pace_fen,
            )
        )
    return tuple(out)


def compute_execution(
    allocations: pd.DataFrame,
    payments: pd.DataFrame,
    *,
    year: int,
    through_month: int,
    pace: PaceConfig,
) -> ExecutionResult:
    """Month and quarter figures of the fund and of each unit, months 1..through_month."""
    if not 1 <= through_month <= 12:
        raise ValueError(f"月份应为 1-12，而不是 {through_month}")
    paces = [month_end_pace_fraction(year, m, pace) for m in range(1, through_month + 1)]
    budget = _budget_table(allocations, year)
    spent = _by_unit(_spent_by_month(payments, year, through_month))
    if len(budget):
        deltas = _by_unit(
            {
                (str(u), int(m)): int(v)
                for (u, m), v in budget.groupby(["unit", "month"], sort=False)["signed_fen"].sum().items()
            }
        )
        initial_rows = budget[budget["kind"] == "年初"]
        initial = {str(u): int(v) for u, v in initial_rows.groupby("unit", sort=False)["signed_fen"].sum().items()}
    else:
        deltas, initial = {}, {}

    unit_names = sorted(set(deltas) | set(spent))
    unit_months = {
        name: (initial.get(name, 0), _series(spent.get(name, {}), deltas.get(name, {}), paces, through_month, pace))
        for name in unit_names
    }
    fund_initial = sum(initial.values())
    fund_months = _series(_total(spent), _total(deltas), paces, through_month, pace)

    # Units lagging at each quarter end, worst gap first (what an alert reads first).
    behind: dict[int, tuple[str, ...]] = {}
    for end in range(3, through_month + 1, 3):
        lagging = [
            (months[end - 1].rate_exact - months[end - 1].pace_exact, name)
            for name, (_, months) in unit_months.items()
            if _lagging(months[end - 1], pace)
        ]
        behind[end] = tuple(name for _, name in sorted(lagging))

    units = tuple(
        SeriesFigures(
            unit=name,
            initial_fen=unit_initial,
            months=tuple(months),
            quarters=_quarters(months, pace, {e: ((name,) if name in v else ()) for e, v in behind.items()}),
        )
        for name, (unit_initial, months) in unit_months.items()
    )
    fund = SeriesFigures(FUND, fund_initial, tuple(fund_months), _quarters(fund_months, pace, behind))
    return ExecutionResult(year=year, through_month=through_month, pace=pace, fund=fund, units=units)


# ----------------------------------------------------------------- JSON (data contract)


def monthly_json(result: ExecutionResult) -> list[dict[str, Any]]:
    """self_evaluation.json "monthly": the fund's months."""
    return [
        {
            "month": f"{result.year}-{m.month:02d}",
            "executed_yuan": fen_to_yuan_str(m.executed_fen),
            "cumulative_yuan": fen_to_yuan_str(m.cumulative_fen),
            "cumulative_rate": _float2(m.rate),
            "pace": _float2(m.pace),
            "gap_points": None if m.gap_2dp is None else float(m.gap_2dp),
        }
        for m in result.fund.months
    ]


def quarters_json(result: ExecutionResult) -> list[dict[str, Any]]:
    """self_evaluation.json "quarters": the fund's closed quarters."""
    return [
        {
            "quarter": q.quarter,
            "cumulative_rate": _float2(q.cumulative_rate),
            "pace": _float2(q.pace),
            "gap_points": None if q.gap_2dp is None else float(q.gap_2dp),
            "lagging": q.lagging,
        }
        for q in result.fund.quarters
    ]


def units_json(result: ExecutionResult) -> list[dict[str, Any]]:
    """self_evaluation.json "units": each unit's figures at ``through_month``."""
    return [
        {
            "unit": s.unit,
            "budget_yuan": fen_to_yuan_str(s.latest.budget_fen),
            "executed_yuan": fen_to_yuan_str(s.latest.cumulative_fen),
            "execution_rate": _float2(s.latest.rate),
            "lagging_quarters": s.lagging_quarters,
        }
        for s in result.units
    ]


def budget_json(result: ExecutionResult) -> dict[str, Any]:
    """self_evaluation.json "budget": the fund's totals at ``through_month``."""
    latest = result.fund.latest
    return {
        "initial_yuan": fen_to_yuan_str(result.fund.initial_fen),
        "adjusted_yuan": fen_to_yuan_str(latest.budget_fen),
        "executed_yuan": fen_to_yuan_str(latest.cumulative_fen),
        "execution_rate": _float2(latest.rate),
    }
