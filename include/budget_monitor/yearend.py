"""The year-end result of one fund-year, built once, read by every writer.

:func:`build_year_end` puts together what the year end knows: the execution
result (execution.py), the measured actuals (measures.py), the score sheet
(scoring.py) and the narrative (narrative.py). The :class:`YearEnd` it returns
holds money as integer fen, rates as exact ``Fraction`` (percent points) and
scores as the ``Decimal`` scoring.py rounded once. Nothing in it is formatted:
each writer (``budget_monitor.writers``) formats money and rates at its own
edge, so no writer ever reads a formatted number back.

:func:`from_json` is the one reader of a self_evaluation.json-shaped mapping
(a stored file, or the contract-shaped rows of older callers). The pipeline
never goes through it: it builds the model from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from budget_monitor.config import FundConfig
    from budget_monitor.execution import ExecutionResult
    from budget_monitor.measures import Actual

__all__ = [
    "FundInfo",
    "MonthRow",
    "QuarterRow",
    "UnitRow",
    "IndicatorRow",
    "FundingRow",
    "SelfEvaluationForm",
    "FUND_SOURCES",
    "TOTAL_SOURCE",
    "YearEnd",
    "build_form",
    "with_provenance",
    "InputFile",
    "Provenance",
    "build_year_end",
    "assemble",
    "from_json",
    "with_draft",
]


@dataclass(frozen=True)
class FundInfo:
    code: str
    name: str
    year: int
    department: str


@dataclass(frozen=True)
class MonthRow:
    """The fund at a month end: money in the month and since 01-01, rate and pace (percent)."""

    month: str  # YYYY-MM
    executed_fen: int
    cumulative_fen: int
    rate: Fraction | None  # None while the budget in force is zero
    pace: Fraction


@dataclass(frozen=True)
class QuarterRow:
    """The fund at a closed quarter's end."""

    quarter: int
    rate: Fraction | None
    pace: Fraction
    lagging: bool


@dataclass(frozen=True)
class UnitRow:
    """A budget unit at the year end (budget and spending may be unknown in an old JSON)."""

    unit: str
    budget_fen: int | None
    executed_fen: int | None
    rate: Fraction | None
    lagging_quarters: tuple[int, ...]

    @property
    def short(self) -> bool:
        """Spent less than its budget: exact from the fen, else from the rate."""
        if self.budget_fen is not None and self.executed_fen is not None:
            return self.executed_fen < self.budget_fen
        return self.rate is not None and self.rate < 100


@dataclass(frozen=True)
class IndicatorRow:
    """One goal's line of the 自评表 (scoring.IndicatorScore without the internals)."""

    level1: str
    level2: str
    name: str
    target: str
    actual: str | None  # None: not measured (未取得)
    weight: Decimal
    score: Decimal  # rounded once by scoring.py
    met: bool
    deviation: str


@dataclass(frozen=True)
class InputFile:
    """One input file of the fund-year as the store recorded its load (provenance.py reads them)."""

    kind: str  # fund (fund.yaml), goals, budget, payments, inspections, outputs
    name: str  # path inside the fund directory
    sha256: str
    rows: int | None  # data rows loaded (None for fund.yaml)
    rows_in_force: int | None  # of them, still in the store now (None for fund.yaml)
    loaded_at: datetime | None  # naive Asia/Shanghai, as stored
    corrected_by: tuple[str, ...] = ()  # names of later files that replaced its rows


@dataclass(frozen=True)
class Provenance:
    """Where a year-end came from: generation time, code, rules and templates, input files."""

    generated_at: datetime  # aware, Asia/Shanghai
    code_version: str
    rules_sha256: str
    templates_sha256: str
    inputs: tuple[InputFile, ...]


# Renders 绩效目标完成情况 (cfg, scored indicators) -> texts: writers.sections.achievement_texts.
Achievements = Callable[["FundConfig", Sequence["IndicatorRow"]], Sequence[str]]

TOTAL_SOURCE = "年度资金总额"
# The 自评表's funding rows under 年度资金总额, in the form's order (财预〔2020〕10号 附件).
FUND_SOURCES = ("当年财政拨款", "上年结转资金", "其他资金")


@dataclass(frozen=True)
class FundingRow:
    """One funding source of the 自评表's 项目资金 block (money in fen)."""

    source: str  # one of FUND_SOURCES
    initial_fen: int
    adjusted_fen: int
    executed_fen: int

    @property
    def rate(self) -> Fraction | None:
        """Exact execution rate in percent; None without a budget (the form shows —)."""
        return Fraction(self.executed_fen * 100, self.adjusted_fen) if self.adjusted_fen else None


@dataclass(frozen=True)
class SelfEvaluationForm:
    """The 项目支出绩效自评表's fields beyond the scores: the official template's
    header (实施单位), funding sources, 年度总体目标 and signatures."""

    implementing_unit: str
    funding: tuple[FundingRow, ...]  # FUND_SOURCES, in order; they add up to the model's totals
    overall_goal: tuple[str, ...]  # 预期目标
    overall_result: tuple[str, ...]  # 实际完成情况 (the numbered 绩效目标完成情况)
    project_lead: str = ""
    finance_lead: str = ""
    filled_date: date | None = None  # 填报日期 = the day the report was generated


@dataclass(frozen=True)
class YearEnd:
    """Everything a year-end output says, unformatted (see the module doc)."""

    fund: FundInfo
    initial_fen: int
    adjusted_fen: int
    executed_fen: int
    execution_rate: Fraction  # exact; 0 when there is no budget
    execution_met: bool  # the exact rate reaches 100
    execution_weight: Decimal
    execution_score: Decimal
    total_score: Decimal
    grade: str
    monthly: tuple[MonthRow, ...]
    quarters: tuple[QuarterRow, ...]
    units: tuple[UnitRow, ...]
    indicators: tuple[IndicatorRow, ...]
    problems: tuple[str, ...]
    improvements: tuple[str, ...]
    draft: bool = False  # made before December was closed: every output says so
    form: SelfEvaluationForm | None = None  # None only when read from an older JSON
    provenance: Provenance | None = None  # set by the pipeline (provenance.read_provenance)
    # The finance office's sign-off (approval.Decision.provenance()) of a final report.
    approval: Mapping[str, Any] | None = None

    @property
    def unspent_fen(self) -> int:
        return self.adjusted_fen - self.executed_fen

    @property
    def lagging_quarters(self) -> list[int]:
        return [q.quarter for q in self.quarters if q.lagging]


def with_draft(model: YearEnd, draft: bool = True) -> YearEnd:
    return replace(model, draft=draft)


def with_approval(model: YearEnd, approval: Mapping[str, Any]) -> YearEnd:
    return replace(model, approval=dict(approval))


def with_provenance(model: YearEnd, provenance: Provenance) -> YearEnd:
    """The model stamped with where it came from; the form's 填报日期 is the generation day."""
    form = model.form
    if form is not None:
        form = replace(form, filled_date=provenance.generated_at.date())
    return replace(model, provenance=provenance, form=form)


# ----------------------------------------------------------------- the 自评表 form


def numbered(items: Sequence[str]) -> tuple[str, ...]:
    """ "1.text" for each item not numbered already."""
    import re

    pattern = re.compile(r"^\s*\d+\s*[.．、]")
    return tuple(t if pattern.match(t) else f"{i}.{t}" for i, t in enumerate(items, start=1))


def funding_rows(
    totals: tuple[int, int, int], by_source: Mapping[str, tuple[int, int, int]] | None = None
) -> tuple[FundingRow, ...]:
    """The three source rows: 上年结转资金 and 其他资金 as tagged, 当年财政拨款 the rest,
    so the rows always add up to the totals (年度资金总额)."""
    by_source = by_source or {}
    rows = {s: by_source.get(s, (0, 0, 0)) for s in FUND_SOURCES[1:]}
    rest = tuple(total - sum(r[k] for r in rows.values()) for k, total in enumerate(totals))
    rows = {FUND_SOURCES[0]: rest, **rows}
    return tuple(FundingRow(s, *rows[s]) for s in FUND_SOURCES)


def build_form(
    cfg: FundConfig | None,
    *,
    totals: tuple[int, int, int],
    units: Sequence[UnitRow],
    indicators: Sequence[IndicatorRow],
    department: str,
    result: Sequence[str] = (),
    by_source: Mapping[str, tuple[int, int, int]] | None = None,
) -> SelfEvaluationForm:
    """The form from fund.yaml's self_evaluation block and the year's facts; ``result`` is
    实际完成情况 (the rendered 绩效目标完成情况). ``cfg`` None: an older JSON rendered
    without its fund.yaml; the goal stays empty."""
    se = getattr(cfg, "self_evaluation", None)
    unit_names = "、".join(u.unit for u in units)
    implementing = (se.implementing_unit if se else "") or unit_names or department
    goal: tuple[str, ...] = ()
    if cfg is not None:
        goal = numbered(list(se.overall_goal) if se and se.overall_goal else list(cfg.goal_paragraphs))
    return SelfEvaluationForm(
        implementing_unit=implementing,
        funding=funding_rows(totals, by_source),
        overall_goal=goal,
        overall_result=tuple(result),
        project_lead=se.project_lead if se else "",
        finance_lead=se.finance_lead if se else "",
    )


# ----------------------------------------------------------------- building


def _rows_from_execution(
    result: ExecutionResult,
) -> tuple[tuple[MonthRow, ...], tuple[QuarterRow, ...], tuple[UnitRow, ...]]:
    fund = result.fund
    monthly = tuple(
        MonthRow(f"{result.year}-{m.month:02d}", m.executed_fen, m.cumulative_fen, m.rate_exact, m.pace_exact)
        for m in fund.months
    )
    # A quarter's figures are those of its last month (execution._quarters).
    quarters = tuple(
        QuarterRow(q.quarter, fund.month(q.month).rate_exact, fund.month(q.month).pace_exact, q.lagging)
        for q in fund.quarters
    )
    units = tuple(
        UnitRow(s.unit, s.latest.budget_fen, s.latest.cumulative_fen, s.latest.rate_exact, tuple(s.lagging_quarters))
        for s in result.units
    )
    return monthly, quarters, units


def build_year_end(
    cfg: FundConfig,
    goals: pd.DataFrame,
    actuals: Mapping[str, Actual],
    execution: ExecutionResult,
    *,
    causes: Mapping[int, str] | None = None,
    measures: Mapping[int, Sequence[str]] | None = None,
    answered: Iterable[int] = (),
    by_source: Mapping[str, tuple[int, int, int]] | None = None,
    achievements: Achievements | None = None,
) -> YearEnd:
    """The fund-year's result from the execution through December, the actuals and the goals.

    The execution rate is the one execution.py computed (exact); when the
    year has no budget it is 0. ``by_source``: (initial, adjusted, executed)
    fen of the 上年结转资金 / 其他资金 allocations (fund.yaml fund_sources).
    """
    latest = execution.fund.latest
    monthly, quarters, units = _rows_from_execution(execution)
    rate = latest.rate_exact if latest.rate_exact is not None else Fraction(0)
    return assemble(
        cfg,
        goals,
        actuals,
        initial_fen=execution.fund.initial_fen,
        adjusted_fen=latest.budget_fen,
        executed_fen=latest.cumulative_fen,
        monthly=monthly,
        quarters=quarters,
        units=units,
        causes=causes,
        measures=measures,
        answered=answered,
        execution_rate=rate,
        by_source=by_source,
        achievements=achievements,
    )


def assemble(
    cfg: FundConfig,
    goals: pd.DataFrame | Iterable[Mapping[str, Any]],
    actuals: Mapping[str, Actual],
    *,
    initial_fen: int,
    adjusted_fen: int,
    executed_fen: int,
    monthly: Sequence[MonthRow],
    quarters: Sequence[QuarterRow],
    units: Sequence[UnitRow],
    causes: Mapping[int, str] | None = None,
    measures: Mapping[int, Sequence[str]] | None = None,
    answered: Iterable[int] = (),
    execution_rate: Fraction | None = None,
    by_source: Mapping[str, tuple[int, int, int]] | None = None,
    achievements: Achievements | None = None,
) -> YearEnd:
    """Score and narrate typed rows into a :class:`YearEnd`.

    ``achievements`` renders 绩效目标完成情况 from fund.yaml and the scored
    indicators (writers.sections.achievement_texts; the model stays free of
    template code); without it the 自评表 form is left out, and the writers
    build it when they write (the dict API).

    ``execution_rate`` defaults to executed / adjusted (exact, 0 without a
    budget); ``causes`` (quarter -> cause text) to ``cfg.lag_causes``.
    """
    from budget_monitor.narrative import load_texts, narrate
    from budget_monitor.scoring import score_fund

    initial, adjusted, executed = int(initial_fen), int(adjusted_fen), int(executed_fen)
    if execution_rate is None:
        execution_rate = Fraction(executed * 100, adjusted) if adjusted else Fraction(0)
    sheet = score_fund(goals, actuals, execution_rate, cfg.scoring, texts=load_texts()["deviation"])
    indicators = tuple(
        IndicatorRow(i.level1, i.level2, i.name, i.target, i.actual, i.weight, i.score, i.met, i.deviation)
        for i in sheet.indicators
    )
    if causes is None:
        causes = getattr(cfg, "lag_causes", None)
    story = narrate(
        quarters,
        indicators,
        units,
        execution_rate=execution_rate,
        execution_met=sheet.execution_met,
        unspent_fen=adjusted - executed,
        causes=causes,
        measures=measures,
        answered=answered,
    )
    return YearEnd(
        fund=FundInfo(cfg.code, cfg.name, cfg.year, cfg.department),
        initial_fen=initial,
        adjusted_fen=adjusted,
        executed_fen=executed,
        execution_rate=Fraction(execution_rate),
        execution_met=sheet.execution_met,
        execution_weight=sheet.execution_weight,
        execution_score=sheet.execution_score,
        total_score=sheet.total,
        grade=sheet.grade,
        monthly=tuple(monthly),
        quarters=tuple(quarters),
        units=tuple(units),
        indicators=indicators,
        problems=tuple(story.problems),
        improvements=tuple(story.improvements),
        form=build_form(
            cfg,
            totals=(initial, adjusted, executed),
            units=units,
            indicators=indicators,
            department=cfg.department,
            result=achievements(cfg, indicators),
            by_source=by_source,
        )
        if achievements is not None
        else None,
    )


# ----------------------------------------------------------------- reading a self_evaluation.json
#
# The inverse of writers/json_writer.py, for a stored file or contract-shaped
# rows handed in by older callers (tests build reports from such rows). Its
# values were rounded to 2 decimals when written: a model read back carries
# those rounded rates, never better ones.


def _fen(yuan: Any) -> int | None:
    from budget_monitor.money_fmt import yuan_str_to_fen

    return None if yuan is None else yuan_str_to_fen(str(yuan))


def _rate(value: Any) -> Fraction | None:
    # str(): a JSON float 12.35 means the decimal 12.35, not its binary neighbour.
    return None if value is None else Fraction(str(value))


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def month_from_json(m: Mapping[str, Any]) -> MonthRow:
    return MonthRow(
        str(m["month"]),
        _fen(m.get("executed_yuan")) or 0,
        _fen(m.get("cumulative_yuan")) or 0,
        _rate(m.get("cumulative_rate")),
        _rate(m.get("pace")) or Fraction(0),
    )


def quarter_from_json(q: Mapping[str, Any]) -> QuarterRow:
    return QuarterRow(
        int(q["quarter"]), _rate(q.get("cumulative_rate")), _rate(q.get("pace")) or Fraction(0), bool(q.get("lagging"))
    )


def unit_from_json(u: Mapping[str, Any]) -> UnitRow:
    return UnitRow(
        str(u["unit"]),
        _fen(u.get("budget_yuan")),
        _fen(u.get("executed_yuan")),
        _rate(u.get("execution_rate")),
        tuple(int(q) for q in u.get("lagging_quarters") or ()),
    )


def indicator_from_json(i: Mapping[str, Any]) -> IndicatorRow:
    return IndicatorRow(
        str(i.get("level1", "")),
        str(i.get("level2", "")),
        str(i.get("name", "")),
        str(i.get("target", "")),
        i.get("actual"),
        _dec(i.get("weight", 0)),
        _dec(i.get("score", 0)),
        bool(i.get("met")),
        str(i.get("deviation", "")),
    )


def form_from_json(f: Mapping[str, Any]) -> SelfEvaluationForm:
    filled = f.get("filled_date")
    return SelfEvaluationForm(
        implementing_unit=str(f.get("implementing_unit", "")),
        funding=tuple(
            FundingRow(
                str(r["source"]),
                _fen(r.get("initial_yuan")) or 0,
                _fen(r.get("adjusted_yuan")) or 0,
                _fen(r.get("executed_yuan")) or 0,
            )
            for r in f.get("funding", ())
        ),
        overall_goal=tuple(f.get("overall_goal", ())),
        overall_result=tuple(f.get("overall_result", ())),
        project_lead=str(f.get("project_lead", "")),
        finance_lead=str(f.get("finance_lead", "")),
        filled_date=date.fromisoformat(filled) if filled else None,
    )


def provenance_from_json(p: Mapping[str, Any]) -> Provenance:
    def naive(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text).replace(tzinfo=None)

    return Provenance(
        generated_at=datetime.fromisoformat(p["generated_at"]),
        code_version=str(p.get("code_version", "")),
        rules_sha256=str(p.get("rules_sha256", "")),
        templates_sha256=str(p.get("templates_sha256", "")),
        inputs=tuple(
            InputFile(
                str(f["kind"]),
                str(f["name"]),
                str(f["sha256"]),
                f.get("rows"),
                f.get("rows_in_force"),
                naive(f.get("loaded_at")),
                tuple(f.get("corrected_by", ())),
            )
            for f in p.get("inputs", ())
        ),
    )


def from_json(evaluation: Mapping[str, Any]) -> YearEnd:
    """A :class:`YearEnd` from a self_evaluation.json mapping; absent lists read as empty."""
    fund, budget = evaluation["fund"], evaluation.get("budget", {})
    ex = evaluation.get("execution_score", {})
    rate = _rate(budget.get("execution_rate")) or Fraction(0)
    return YearEnd(
        fund=FundInfo(
            str(fund.get("code", "")), str(fund.get("name", "")), int(fund["year"]), str(fund.get("department", ""))
        ),
        initial_fen=_fen(budget.get("initial_yuan")) or 0,
        adjusted_fen=_fen(budget.get("adjusted_yuan")) or 0,
        executed_fen=_fen(budget.get("executed_yuan")) or 0,
        execution_rate=rate,
        execution_met=rate >= 100,
        execution_weight=_dec(ex.get("weight", 0)),
        execution_score=_dec(ex.get("score", 0)),
        total_score=_dec(evaluation.get("total_score", 0)),
        grade=str(evaluation.get("grade", "")),
        monthly=tuple(month_from_json(m) for m in evaluation.get("monthly", ())),
        quarters=tuple(quarter_from_json(q) for q in evaluation.get("quarters", ())),
        units=tuple(unit_from_json(u) for u in evaluation.get("units", ())),
        indicators=tuple(indicator_from_json(i) for i in evaluation.get("indicators", ())),
        problems=tuple(evaluation.get("problems", ())),
        improvements=tuple(evaluation.get("improvements", ())),
        draft=bool(evaluation.get("draft", False)),
        form=form_from_json(evaluation["self_evaluation_form"]) if "self_evaluation_form" in evaluation else None,
        provenance=provenance_from_json(evaluation["provenance"]) if "provenance" in evaluation else None,
    )
