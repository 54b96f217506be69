"""The report's texts and table rows, shared by the .docx, .html and .md writers.

Built from the model's exact values; each figure is formatted here, once,
for all three (万元 text, plain numbers without trailing zeros, "100%").
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from budget_monitor.config import FundConfig
from budget_monitor.money_fmt import round2
from budget_monitor.narrative import load_texts, quarter_phrase
from budget_monitor.writers.edge import pct_text, plain_number, wan
from budget_monitor.writers.form_layout import Cell, FormLayout, date_text, form_of, layout
from budget_monitor.yearend import YearEnd, numbered

CHART_NAME = "执行进度.png"
UNIT_CHART_NAME = "单位执行率.png"

# A report made before December is closed (``year-end --draft``): every
# output says so at its top, and it is never mailed (pipeline.run_year_end).
DRAFT_NOTICE = "【草稿】本年度12月尚未结账，数据不完整，仅供预览，不得报送。"


# The annexes, named once for every format (docx, html, md) and the mail.
ANNEXES = (("附件1", "项目支出绩效自评表"), ("附件2", "支出进度情况"), ("附件3", "数据来源"))
FIGURES = ("图1　累计支出进度与序时进度（阴影为支出进度落后的季度）", "图2　各预算单位全年执行率")
UNIT_TABLE_CAPTION = "表1　各预算单位支出执行情况"
KIND_NAMES = {
    "fund": "资金配置",
    "goals": "绩效目标表",
    "budget": "预算指标",
    "payments": "支出明细",
    "inspections": "抽检记录",
    "outputs": "产出数据",
}
DASH = "—"


def cell_text(c: Cell) -> str:
    """A form cell as the documents show it: 万元 with 2 decimals, "100%", "12.75", — for none."""
    if c.kind == "money":
        return wan(int(c.value))
    if c.kind == "rate":
        return DASH if c.value is None else pct_text(c.value)
    if c.kind == "score":
        return DASH if c.value is None else plain_number(c.value)
    return "" if c.value is None else str(c.value)


def form_rows(form: FormLayout) -> list[list[dict[str, Any]]]:
    """The grid as rows of cells (merged-away positions left out) for the html table."""
    rows: list[list[dict[str, Any]]] = [[] for _ in range(form.rows)]
    for c in sorted(form.cells, key=lambda c: (c.row, c.col)):
        rows[c.row].append(
            {
                "text": cell_text(c),
                "lines": cell_text(c).split("\n"),
                "head": c.kind == "head",
                "left": c.kind == "left",
                "rowspan": c.rowspan,
                "colspan": c.colspan,
            }
        )
    return rows


def _sources(model: YearEnd) -> dict[str, Any]:
    """附件3 数据来源: the input files (short digests; the JSON has them whole)."""
    p = model.provenance
    if p is None:
        return {"rows": [], "note": ""}
    rows = [
        {
            "kind": KIND_NAMES.get(f.kind, f.kind),
            "name": f.name,
            "rows": "" if f.rows is None else str(f.rows),
            "loaded_at": "" if f.loaded_at is None else f.loaded_at.strftime("%Y-%m-%d %H:%M"),
            "sha": f.sha256[:16],
            "corrected_by": "、".join(f.corrected_by) if f.corrected_by else "",
        }
        for f in p.inputs
    ]
    note = (
        f"本报告于{p.generated_at:%Y-%m-%d %H:%M}生成，程序版本{p.code_version}，"
        f"校验规则摘要{p.rules_sha256[:16]}，模板摘要{p.templates_sha256[:16]}。"
        "表中SHA-256为文件摘要的前16位，完整摘要及入库记录见self_evaluation.json。"
    )
    if model.approval:  # the finance office's sign-off (approval.py), as recorded in Airflow
        a = model.approval
        when = str(a.get("decided_at", "")).replace("T", " ")[:16]
        note += f"本报告经{a.get('decided_by', '')}于{when}审核批准" + (
            f"（意见：{a['comment']}）。" if a.get("comment") else "。"
        )
    return {"rows": rows, "note": note}


def report_sections(model: YearEnd, cfg: FundConfig) -> dict[str, Any]:
    """The report's texts and table rows for ``model``."""
    t = load_texts()
    name = model.fund.name
    initial, adjusted, executed = wan(model.initial_fen), wan(model.adjusted_fen), wan(model.executed_fen)
    # The seed opens with the region ("江门市2021年…专项资金"); the fund name itself may not carry it.
    region = cfg.region if cfg.region and not name.startswith(cfg.region) else ""
    basic = t["basic"]["budget"].format(
        name=region + name, adjusted=adjusted, executed=executed, rate=plain_number(model.execution_rate)
    )
    if initial != adjusted:
        basic += t["basic"]["adjusted_differs"].format(initial=initial, adjusted=adjusted)
    if cfg.uses:
        basic += t["basic"]["uses"].format(uses=cfg.uses.rstrip("。"))

    s = t["score"]
    grade = model.grade
    score_text = (
        (s["basis"].format(basis=cfg.basis_document) if cfg.basis_document else s["no_basis"])
        + s["effect"].get(grade, s["effect_default"]).format(name=name)
        + s["result"].format(score=plain_number(model.total_score), grade=grade)
    )

    missing = t["basic"]["actual_missing"]
    form = form_of(model, cfg)
    achievements = list(form.overall_result)

    # The total of the weights as shown: each rounded to 2 decimals, as the table lists them.
    total_weight = sum((round2(i.weight) for i in model.indicators), round2(model.execution_weight))
    table = {
        "initial_wan": initial,
        "adjusted_wan": adjusted,
        "executed_wan": executed,
        "exec_weight": plain_number(model.execution_weight),
        "exec_rate": pct_text(model.execution_rate),
        "exec_score": plain_number(model.execution_score),
        "total_weight": plain_number(total_weight),
        "total_score": plain_number(model.total_score),
    }
    rows = [
        {
            "level1": i.level1,
            "level2": i.level2,
            "name": i.name,
            "target": i.target,
            "actual": i.actual if i.actual is not None else missing,
            "weight": plain_number(i.weight),
            "score": plain_number(i.score),
            "deviation": i.deviation,
        }
        for i in model.indicators
    ]
    form_layout = layout(model, form)
    # 附件3 数据来源 only when the model knows its inputs (the pipeline's; not an older JSON).
    annexes = ANNEXES if model.provenance is not None else ANNEXES[:2]
    unit_rows = [
        {
            "unit": u.unit,
            "budget_wan": wan(u.budget_fen) if u.budget_fen is not None else "",
            "executed_wan": wan(u.executed_fen) if u.executed_fen is not None else "",
            "rate": pct_text(u.rate) if u.rate is not None else "",
            "lagging": quarter_phrase(u.lagging_quarters) or "无",
        }
        for u in model.units
    ]
    return {
        "fund_name": name,
        "department": model.fund.department,
        "year": model.fund.year,
        "basic": basic,
        "goal_paragraphs": list(numbered(cfg.goal_paragraphs)),
        "score_text": score_text,
        "achievements": achievements,
        "problems": list(model.problems),
        "improvements": list(model.improvements),
        "table": table,
        "indicators": rows,
        "units": unit_rows,
        "grade": grade,
        "chart": CHART_NAME,
        "unit_chart": UNIT_CHART_NAME if unit_rows else None,
        "draft_notice": DRAFT_NOTICE if model.draft else "",
        "annexes": {label: title for label, title in annexes},
        "annex_list": "附件：" + "　".join(f"{n}．{title}" for n, (_, title) in enumerate(annexes, start=1)),
        "figures": list(FIGURES),
        "unit_table_caption": UNIT_TABLE_CAPTION,
        "signature": {"department": model.fund.department, "date": date_text(_report_date(model, form))},
        "form": form_layout,
        "form_rows": form_rows(form_layout),
        "form_footer": [{"label": k, "value": v} for k, v in form_layout.footer],
        "funding_rows": _funding_rows(form_layout),
        "overall_goal": list(form.overall_goal),
        "implementing_unit": form.implementing_unit,
        "doc_title": f"{name}绩效自评报告",
        "generated_at": _generated_at(model),
        "sources": _sources(model),
    }


def _generated_at(model: YearEnd) -> datetime:
    """When the report was made: the provenance's time, else now (a model read from an older JSON)."""
    from budget_monitor.provenance import generation_time

    return model.provenance.generated_at if model.provenance is not None else generation_time()


def _report_date(model: YearEnd, form: Any) -> date:
    """成文日期 = 填报日期: the generation day."""
    return form.filled_date if form.filled_date is not None else _generated_at(model).date()


def _funding_rows(form: FormLayout) -> list[list[str]]:
    """The 项目资金 block (grid rows 3–6) as text rows for the markdown table."""
    grid = form.grid()
    return [[cell_text(grid[r][1])] + [cell_text(grid[r][c]) for c in range(3, 9)] for r in range(3, 7)]
