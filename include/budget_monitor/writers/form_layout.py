"""The 项目支出绩效自评表 laid out once, as the official template has it; the .docx,
.xlsx and .html writers paint this grid, so the table is the same in each.

Layout (财预〔2020〕10号 附件 项目支出绩效自评表, nine columns A–I)::

    项目名称 | name
    主管部门 | department        | 实施单位 | unit
    项目资金（万元） |  | 年初预算数 | 全年预算数 | 全年执行数 | 分值 | 执行率 | 得分
        年度资金总额 / 其中：当年财政拨款 / 上年结转资金 / 其他资金
    年度总体目标 | 预期目标 | 实际完成情况
    绩效指标 | 一级指标 | 二级指标 | 三级指标 | 年度指标值 | 实际完成值 | 分值 | 得分 | 偏差原因分析及改进措施
        one row per indicator; 一级 and 二级 merged over their runs
    总分 | total weight | total score | 绩效等级
    (below the table) 项目负责人 / 财务负责人 / 填报日期

Cells hold the model's typed values (fen, Fraction percent, Decimal); each
writer formats them at its own edge. A total carries the cells it adds up
(``sum_of``): the spreadsheet writes it as a formula, the documents as its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from budget_monitor.money_fmt import round2
from budget_monitor.yearend import (
    FUND_SOURCES,
    TOTAL_SOURCE,
    IndicatorRow,
    SelfEvaluationForm,
    YearEnd,
    build_form,
    numbered,
)

if TYPE_CHECKING:
    from budget_monitor.config import FundConfig

__all__ = ["Cell", "FormLayout", "layout", "COLUMNS", "date_text", "SIGN_BLANK", "achievement_texts", "form_of"]

COLUMNS = 9
TITLE = "项目支出绩效自评表"
SOURCE_LABELS = {"当年财政拨款": "其中：当年财政拨款", "上年结转资金": "上年结转资金", "其他资金": "其他资金"}
INDICATOR_HEADS = (
    "一级指标",
    "二级指标",
    "三级指标",
    "年度指标值",
    "实际完成值",
    "分值",
    "得分",
    "偏差原因分析及改进措施",
)
FUNDING_HEADS = ("年初预算数", "全年预算数", "全年执行数", "分值", "执行率", "得分")
MISSING_ACTUAL = "未取得"
SIGN_BLANK = "　" * 6  # room to sign by hand when fund.yaml names nobody


@dataclass(frozen=True)
class Cell:
    """One cell of the grid (0-based row/col of its top-left corner).

    kind: head (bold, shaded), text (centred), left (left-aligned prose),
    money (fen), rate (Fraction percent or None = —), score (Decimal or None = —).
    """

    row: int
    col: int
    value: Any
    kind: str
    rowspan: int = 1
    colspan: int = 1
    sum_of: tuple[tuple[int, int, int, int], ...] = ()  # (row1, col1, row2, col2) ranges it totals


@dataclass(frozen=True)
class FormLayout:
    title: str
    subtitle: str  # （2021年度）
    cells: tuple[Cell, ...]
    rows: int
    footer: tuple[tuple[str, str], ...]  # (label, value) under the table
    header_rows: int  # rows to repeat on every printed page (the indicator head row is the last of them)
    indicator_head_row: int

    def grid(self) -> list[list[Cell | None]]:
        """rows × COLUMNS, each position holding the cell that starts there (None under a merge)."""
        g: list[list[Cell | None]] = [[None] * COLUMNS for _ in range(self.rows)]
        for c in self.cells:
            g[c.row][c.col] = c
        return g


def achievement_texts(cfg: FundConfig, indicators: Sequence[IndicatorRow]) -> tuple[str, ...]:
    """二（二）绩效目标完成情况 (= the form's 实际完成情况), numbered: fund.yaml's
    achievement_templates rendered (sandboxed, bounded) with the measured actuals,
    else one default line per indicator."""
    from budget_monitor.narrative import load_texts

    t = load_texts()["basic"]
    missing = t["actual_missing"]

    class _Actuals(dict):
        """actual['名称'] in achievement templates; unknown names read as 未取得."""

        def __missing__(self, key: str) -> str:
            return missing

    actual = _Actuals({i.name: (i.actual if i.actual is not None else missing) for i in indicators})
    if not cfg.achievement_templates:
        return numbered(
            [t["achievement_default"].format(name=i.name, target=i.target, actual=actual[i.name]) for i in indicators]
        )
    from budget_monitor.report import render_fund_text
    from budget_monitor.writers.json_writer import indicator_json

    # fund.yaml templates see the indicators as self_evaluation.json has them.
    rows = [indicator_json(i) for i in indicators]
    return numbered(
        [
            render_fund_text(
                src, f"fund.yaml 的 achievement_templates 第{n}条", actual=actual, fund=cfg, indicators=rows
            ).strip()
            for n, src in enumerate(cfg.achievement_templates, start=1)
        ]
    )


def form_of(model: YearEnd, cfg: FundConfig | None = None) -> SelfEvaluationForm:
    """The model's form, or one built now for a model without it (read from an older JSON,
    or made by the dict API): from fund.yaml when ``cfg`` is given."""
    if model.form is not None:
        return model.form
    return build_form(
        cfg,
        totals=(model.initial_fen, model.adjusted_fen, model.executed_fen),
        units=model.units,
        indicators=model.indicators,
        department=model.fund.department,
        result=achievement_texts(cfg, model.indicators) if cfg is not None else (),
    )


def date_text(d: date | None) -> str:
    """2022年1月5日 (GB/T 9704: Arabic numerals, no leading zeros); blanks to fill by hand without a date."""
    return f"{d.year}年{d.month}月{d.day}日" if d else "　　年　月　日"


def _runs(values: list[str]) -> list[tuple[int, int]]:
    """(start, length) of each run of equal consecutive values."""
    out: list[tuple[int, int]] = []
    for i, v in enumerate(values):
        if out and values[out[-1][0]] == v:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


def layout(model: YearEnd, form: SelfEvaluationForm | None = None) -> FormLayout:
    """The 自评表 of ``model`` (its form, or ``form`` for a model read from an older JSON)."""
    form = form or form_of(model)
    f = model.fund
    cells: list[Cell] = []
    add = cells.append

    add(Cell(0, 0, "项目名称", "head", colspan=2))
    add(Cell(0, 2, f.name, "left", colspan=7))
    add(Cell(1, 0, "主管部门", "head", colspan=2))
    add(Cell(1, 2, f.department, "left", colspan=3))
    add(Cell(1, 5, "实施单位", "head"))
    add(Cell(1, 6, form.implementing_unit, "left", colspan=3))

    # 项目资金（万元）: rows 2 (heads), 3 (total), 4–6 (sources)
    add(Cell(2, 0, "项目资金\n（万元）", "head", rowspan=5))
    add(Cell(2, 1, "", "head", colspan=2))
    for i, h in enumerate(FUNDING_HEADS):
        add(Cell(2, 3 + i, h, "head"))
    add(Cell(3, 1, TOTAL_SOURCE, "text", colspan=2))
    totals = (model.initial_fen, model.adjusted_fen, model.executed_fen)
    for i, fen in enumerate(totals):
        add(Cell(3, 3 + i, fen, "money", sum_of=((4, 3 + i, 6, 3 + i),)))
    add(Cell(3, 6, model.execution_weight, "score"))
    add(Cell(3, 7, model.execution_rate, "rate"))
    add(Cell(3, 8, model.execution_score, "score"))
    by_source = {r.source: r for r in form.funding}
    for k, source in enumerate(FUND_SOURCES):
        r = 4 + k
        row = by_source.get(source)
        add(Cell(r, 1, SOURCE_LABELS[source], "text", colspan=2))
        for i, fen in enumerate((row.initial_fen, row.adjusted_fen, row.executed_fen) if row else (0, 0, 0)):
            add(Cell(r, 3 + i, fen, "money"))
        add(Cell(r, 6, None, "score"))
        add(Cell(r, 7, row.rate if row else None, "rate"))
        add(Cell(r, 8, None, "score"))

    # 年度总体目标: rows 7 (heads), 8 (texts)
    add(Cell(7, 0, "年度总体目标", "head", rowspan=2))
    add(Cell(7, 1, "预期目标", "head", colspan=4))
    add(Cell(7, 5, "实际完成情况", "head", colspan=4))
    add(Cell(8, 1, "\n".join(form.overall_goal), "left", colspan=4))
    add(Cell(8, 5, "\n".join(form.overall_result), "left", colspan=4))

    # 绩效指标: row 9 heads, then one row per indicator
    head = 9
    n = len(model.indicators)
    add(Cell(head, 0, "绩效指标", "head", rowspan=n + 1))
    for i, h in enumerate(INDICATOR_HEADS):
        add(Cell(head, 1 + i, h, "head"))
    first = head + 1
    inds = model.indicators
    for start, length in _runs([i.level1 for i in inds]):
        add(Cell(first + start, 1, inds[start].level1, "text", rowspan=length))
    for start, length in _runs([f"{i.level1}\x00{i.level2}" for i in inds]):
        add(Cell(first + start, 2, inds[start].level2, "text", rowspan=length))
    for k, ind in enumerate(inds):
        r = first + k
        add(Cell(r, 3, ind.name, "left"))
        add(Cell(r, 4, ind.target, "text"))
        add(Cell(r, 5, ind.actual if ind.actual is not None else MISSING_ACTUAL, "text"))
        add(Cell(r, 6, ind.weight, "score"))
        add(Cell(r, 7, ind.score, "score"))
        add(Cell(r, 8, ind.deviation, "left"))
    last = first + n - 1
    total = first + n
    # The total of the weights as the rows show them (each rounded to 2 decimals).
    total_weight = sum((round2(i.weight) for i in inds), round2(model.execution_weight))
    add(Cell(total, 0, "总分", "head", colspan=6))
    ranges = ((3, 6, 3, 6),) + (((first, 6, last, 6),) if n else ())
    add(Cell(total, 6, Decimal(total_weight), "score", sum_of=ranges))
    ranges = ((3, 8, 3, 8),) + (((first, 7, last, 7),) if n else ())
    add(Cell(total, 7, model.total_score, "score", sum_of=ranges))
    add(Cell(total, 8, f"绩效等级：{model.grade}", "head"))

    footer = (
        ("项目负责人", form.project_lead or SIGN_BLANK),
        ("财务负责人", form.finance_lead or SIGN_BLANK),
        ("填报日期", date_text(form.filled_date)),
    )
    return FormLayout(
        title=TITLE,
        subtitle=f"（{f.year}年度）" + ("（草稿）" if model.draft else ""),
        cells=tuple(cells),
        rows=total + 1,
        footer=footer,
        header_rows=head + 1,
        indicator_head_row=head,
    )
