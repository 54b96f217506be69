"""Backtest of the year-end forecast (forecast.py): old (recent months) against profiles.

    .venv/bin/python bench/forecast_backtest.py            # the full set, Markdown table
    .venv/bin/python bench/forecast_backtest.py --small    # the set tests/test_forecast.py runs

For every fund-year that has an earlier year, the forecast of the year-end
rate is made at each of the January..November closes with what the store would
have held then, and compared with the rate the year actually ended at; the
table is the mean absolute error in percentage points per close month:

- ``old``: the recent-months extrapolation (no history);
- ``own``: the fund's own earlier years;
- ``department``: the department's other funds' earlier years (the fund's own left out);
- ``new``: what forecast() picks (own, else department, else old).

The synthetic set is a seeded, pure-Python generator of special funds in
Chinese budget practice: mostly back-loaded (Q4 about a third of the year, a
December rush), some spent evenly, some front-loaded (grants paid out early);
each fund has its own shape, each year its own noise (some funds much noisier
than others), lumpy months (a contract settles early or slips to a later month),
years that end short of 100% and mid-year 追加. The two example funds
(examples/) are added as years of the department 江门市市场监督管理局: they have
no earlier year of their own, so they are forecast from the department.
Figures: docs/forecast.md. No timing is measured.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

from budget_monitor.config import PaceConfig  # noqa: E402
from budget_monitor.execution import SeriesFigures, compute_execution  # noqa: E402
from budget_monitor.forecast import DEPARTMENT, OWN, History, Profile, forecast, profile_of  # noqa: E402

LINEAR = PaceConfig()
EXAMPLE_DEPARTMENT = "江门市市场监督管理局"
UNIT = "本级"
# Share of the year's spending per month (percent), by kind of fund.
SHAPES = {
    # Q4 36%, December 18%: the usual special fund (contracts settle late, a year-end rush).
    "back": [3, 4, 8, 6, 7, 10, 7, 8, 11, 8, 10, 18],
    # Q4 47%: projects that start late (budget released in spring, tenders in summer).
    "late": [1, 2, 4, 4, 5, 8, 6, 7, 9, 10, 13, 31],
    "even": [7, 8, 9, 8, 8, 9, 8, 8, 9, 8, 9, 9],
    # Grants and subsidies paid out in the first half.
    "front": [14, 12, 12, 10, 9, 9, 7, 6, 6, 5, 5, 5],
}
KIND_WEIGHTS = {"back": 50, "late": 20, "even": 15, "front": 15}


@dataclass(frozen=True)
class FundYear:
    fund: str  # the fund across years (own history)
    department: str
    year: int
    code: str
    series: SeriesFigures

    @property
    def profile(self) -> Profile:
        return profile_of(self.series, self.code, self.year)

    @property
    def actual(self) -> Fraction:
        """Year-end rate (percent of the year-end budget)."""
        last = self.series.months[-1]
        return Fraction(last.cumulative_fen * 100, last.budget_fen)


def _series(year: int, budget: list[tuple[date, int, str]], monthly_fen: list[int]) -> SeriesFigures:
    alloc = pd.DataFrame(
        [(UNIT, d, fen, kind) for d, fen, kind in budget], columns=["unit", "date", "amount_fen", "kind"]
    )
    pay = pd.DataFrame(
        [(UNIT, date(year, m, 20), fen) for m, fen in enumerate(monthly_fen, start=1)],
        columns=["unit", "pay_date", "amount_fen"],
    )
    return compute_execution(alloc, pay, year=year, through_month=12, pace=LINEAR).fund


def _year_spending(rng: random.Random, shape: list[float], noise: float, total_fen: int) -> list[int]:
    """One year's monthly net fen: the fund's shape, month noise, lumps; sums to total_fen."""
    w = [s * rng.lognormvariate(0, noise) for s in shape]
    for m in range(11):
        if rng.random() < 0.12:  # a contract settles a month or two early
            src = min(11, m + rng.randint(1, 2))
            moved = w[src] * rng.uniform(0.3, 0.9)
            w[src] -= moved
            w[m] += moved
        elif rng.random() < 0.12:  # ... or slips to later (more often into December)
            dst = 11 if rng.random() < 0.5 else min(11, m + rng.randint(1, 3))
            moved = w[m] * rng.uniform(0.3, 0.9)
            w[m] -= moved
            w[dst] += moved
    total_w = sum(w)
    fen = [int(total_fen * x / total_w) for x in w]
    fen[-1] += total_fen - sum(fen)
    return fen


def synthetic_set(
    seed: int = 2021, departments: int = 4, funds: int = 6, years: tuple[int, int] = (2016, 2021)
) -> list[FundYear]:
    rng = random.Random(seed)
    out: list[FundYear] = []
    kinds = list(KIND_WEIGHTS)
    for d in range(departments):
        # The first department is the examples' (they join it in full_set).
        department = EXAMPLE_DEPARTMENT if d == 0 else f"部门{d}"
        for f in range(funds):
            kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
            # The fund's own shape (fixed across its years) and how noisy its years are.
            shape = [s * rng.lognormvariate(0, 0.3) for s in SHAPES[kind]]
            noise = rng.choice([0.15, 0.3, 0.5, 0.8])
            usual_rate = rng.choice([100, 100, 100, 98, 95, 90])
            code = f"D{d}F{f}"
            for year in range(years[0], years[1] + 1):
                budget_fen = rng.randint(50, 5000) * 1_000_000  # 50万..5000万元
                budget = [(date(year, 1, 1), budget_fen, "年初")]
                if rng.random() < 0.2:  # a mid-year 追加
                    extra = budget_fen * rng.randint(5, 25) // 100
                    budget.append((date(year, rng.randint(5, 9), 1), extra, "追加"))
                    budget_fen += extra
                rate = usual_rate if rng.random() < 0.7 else rng.randint(80, 100)
                spent = _year_spending(rng, shape, noise, budget_fen * rate // 100)
                out.append(FundYear(code, department, year, f"{code}-{year}", _series(year, budget, spent)))
    return out


def example_years() -> list[FundYear]:
    """The two example funds (examples/), each a year of its own without earlier years."""
    from budget_monitor.config import load_fund_config
    from budget_monitor.ingest import read_table

    out = []
    for fund_dir in sorted((REPO / "examples").iterdir()):
        if not (fund_dir / "fund.yaml").exists():
            continue
        cfg = load_fund_config(fund_dir)
        budget_file = next(p for p in fund_dir.iterdir() if p.stem == "budget")
        alloc = read_table(budget_file, "budget").df
        pay = pd.concat([read_table(p, "payments").df for p in sorted((fund_dir / "payments").iterdir())])
        series = compute_execution(alloc, pay, year=cfg.year, through_month=12, pace=LINEAR).fund
        out.append(FundYear(cfg.code, cfg.department, cfg.year, cfg.code, series))
    return out


def history_of(target: FundYear, pool: list[FundYear]) -> History:
    """What the store holds before ``target``'s year: own years and the department's other funds'."""
    earlier = [fy for fy in pool if fy.year < target.year and fy.department == target.department]
    return History(
        own=tuple(fy.profile for fy in earlier if fy.fund == target.fund),
        department=tuple(fy.profile for fy in earlier if fy.fund != target.fund),
    )


METHODS = ("old", "new", OWN, DEPARTMENT)


def _rate_at(series: SeriesFigures, month: int) -> Fraction:
    m = series.month(month)
    return Fraction(m.cumulative_fen * 100, m.budget_fen)


def errors(target: FundYear, history: History, what: str = "year") -> dict[str, list[Fraction | None]]:
    """Absolute error of the year-end forecast (``what="quarter"``: of the next quarter
    end's rate) at each close 1..11, per method (None: no data)."""
    variants = {
        "old": History(),
        "new": history,
        OWN: History(own=history.own) if history.own else None,
        DEPARTMENT: History(department=history.department) if history.department else None,
    }
    out: dict[str, list[Fraction | None]] = {}
    for name, hist in variants.items():
        row: list[Fraction | None] = []
        for m in range(1, 12):
            if hist is None:
                row.append(None)
                continue
            fc = forecast(target.series, target.year, LINEAR, as_of_month=m, history=hist)
            if what == "year":
                row.append(None if fc.year_end_rate is None else abs(Fraction(fc.year_end_rate) - target.actual))
            elif fc.quarter_end_rate is None or fc.quarter is None:
                row.append(None)
            else:
                row.append(abs(Fraction(fc.quarter_end_rate) - _rate_at(target.series, fc.quarter * 3)))
        out[name] = row
    return out


def backtest(targets: list[FundYear], pool: list[FundYear], what: str = "year") -> dict[str, list[Fraction | None]]:
    """Mean absolute error per method and close month over ``targets`` (each against ``pool``)."""
    sums = {name: [[] for _ in range(11)] for name in METHODS}
    for target in targets:
        for name, row in errors(target, history_of(target, pool), what).items():
            for i, e in enumerate(row):
                if e is not None:
                    sums[name][i].append(e)
    return {name: [sum(c, Fraction(0)) / len(c) if c else None for c in cols] for name, cols in sums.items()}


def from_june(row: list[Fraction | None]) -> Fraction | None:
    """Mean of the June..November closes."""
    tail = [e for e in row[5:] if e is not None]
    return sum(tail, Fraction(0)) / len(tail) if len(tail) == 6 else None


def overall(row: list[Fraction | None]) -> Fraction | None:
    vals = [e for e in row if e is not None]
    return sum(vals, Fraction(0)) / len(vals) if len(vals) == 11 else None


def small_set() -> list[FundYear]:
    """The set tests/test_forecast.py backtests: 2 departments x 4 funds x 4 years."""
    return synthetic_set(seed=7, departments=2, funds=4, years=(2018, 2021))


def _fmt(value: Fraction | None) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def table(rows: dict[str, dict[str, list[Fraction | None]]]) -> str:
    head = "| set | method | " + " | ".join(f"{m}月" for m in range(1, 12)) + " | 1–11 | 6–11 |"
    lines = [head, "|" + "---|" * 15]
    for set_name, result in rows.items():
        for name in METHODS:
            row = result[name]
            if all(e is None for e in row):
                continue
            cells = " | ".join(_fmt(e) for e in row)
            lines.append(f"| {set_name} | {name} | {cells} | {_fmt(overall(row))} | {_fmt(from_june(row))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the small set of tests/test_forecast.py only")
    args = parser.parse_args(argv)
    if args.small:
        pool = small_set()
        print(table({"small": backtest([fy for fy in pool if fy.year > 2018], pool)}))
        return 0
    synthetic = synthetic_set()
    examples = example_years()
    pool = synthetic + examples
    first = min(fy.year for fy in synthetic)
    rows = {
        "synthetic": backtest([fy for fy in synthetic if fy.year > first], pool),
        "synthetic, 3+ own years": backtest([fy for fy in synthetic if fy.year >= first + 3], pool),
    }
    for fy in examples:
        rows[fy.code] = backtest([fy], pool)
    n = sum(1 for fy in synthetic if fy.year > first)
    print(
        f"synthetic: {len(synthetic)} fund-years, {n} forecast (those with an earlier year); examples: {len(examples)}"
    )
    print(table(rows))
    print("\nNext quarter end's rate (the quarter alert's forecast):")
    quarter = {"synthetic": backtest([fy for fy in synthetic if fy.year > first], pool, "quarter")}
    for fy in examples:
        quarter[fy.code] = backtest([fy], pool, "quarter")
    print(table(quarter))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
