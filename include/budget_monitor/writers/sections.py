"""The report's texts and table rows, shared by the .docx, .html and .md writers.

Built from the model's exact values; each figure is formatted here, once,
for all three (万元 text, plain numbers without trailing zeros, "100%").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from budget_monitor.config import FundConfig
from budget_monitor.money_fmt import round2
from budget_monitor.narrative import load_texts, quarter_phrase
from budget_monitor.writers.edge import pct_text, plain_number, wan
from budget_monitor.yearend import YearEnd

CHART_NAME = "执行进度.png"
UNIT_CHART_NAME = "单位执行率.png"

# A report made before December is closed (``year-end --draft``): every
# output says so at its top, and it is never mailed (pipeline.run_year_end).
DRAFT_NOTICE = "【草稿】本年度12月尚未结账，数据不完整，仅供预览，不得报送。"


class _Actuals(dict):
    """actual['名称'] in achievement templates; unknown names read as 未取得."""

    def __missing__(self, key: str) -> str:
        return load_texts()["basic"]["actual_missing"]


_NUMBERED = re.compile(r"^\s*\d+\s*[.．、]")


def _numbered(items: Sequence[str]) -> list[str]:
    return [t if _NUMBERED.match(t) else f"{i}.{t}" for i, t in enumerate(items, start=1)]


def report_sections(model: YearEnd, cfg: FundConfig) -> dict[str, Any]:
    """The report's texts and table rows for ``model``."""
    from budget_monitor.report import render_fund_text
    from budget_monitor.writers.json_writer import indicator_json

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
    actual = _Actuals({i.name: (i.actual if i.actual is not None else missing) for i in model.indicators})
    if cfg.achievement_templates:
        # fund.yaml templates see the indicators as self_evaluation.json has them.
        indicators = [indicator_json(i) for i in model.indicators]
        achievements = [
            render_fund_text(
                src, f"fund.yaml 的 achievement_templates 第{n}条", actual=actual, fund=cfg, indicators=indicators
            ).strip()
            for n, src in enumerate(cfg.achievement_templates, start=1)
        ]
    else:
        achievements = [
            t["basic"]["achievement_default"].format(name=i.name, target=i.target, actual=actual[i.name])
            for i in model.indicators
        ]

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
        "goal_paragraphs": _numbered(cfg.goal_paragraphs),
        "score_text": score_text,
        "achievements": _numbered(achievements),
        "problems": list(model.problems),
        "improvements": list(model.improvements),
        "table": table,
        "indicators": rows,
        "units": unit_rows,
        "grade": grade,
        "chart": CHART_NAME,
        "unit_chart": UNIT_CHART_NAME if unit_rows else None,
        "draft_notice": DRAFT_NOTICE if model.draft else "",
    }
