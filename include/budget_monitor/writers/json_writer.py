"""self_evaluation.json: the model in the data contract's shape (data-contract.md "Outputs").

Money as exact 元 text ("3720900.00"), rates and scores as floats rounded to
2 decimals, keys in the contract's order; ``"draft": true`` last for a draft.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from budget_monitor.money_fmt import fen_to_yuan_str, round2
from budget_monitor.periods import TZ
from budget_monitor.writers.edge import num2, opt_num2, presented_gap
from budget_monitor.yearend import IndicatorRow, SelfEvaluationForm, YearEnd

if TYPE_CHECKING:
    from budget_monitor.provenance import Provenance
    from budget_monitor.writers import Output

JSON_NAME = "self_evaluation.json"


def indicator_json(i: IndicatorRow) -> dict[str, Any]:
    return {
        "level1": i.level1,
        "level2": i.level2,
        "name": i.name,
        "target": i.target,
        "actual": i.actual,
        "weight": num2(i.weight),
        "score": float(round2(i.score)),
        "met": i.met,
        "deviation": i.deviation,
    }


def form_json(form: SelfEvaluationForm) -> dict[str, Any]:
    """The 自评表's own fields; its 年度资金总额 row is "budget" (the sources add up to it)."""
    return {
        "implementing_unit": form.implementing_unit,
        "funding": [
            {
                "source": r.source,
                "initial_yuan": fen_to_yuan_str(r.initial_fen),
                "adjusted_yuan": fen_to_yuan_str(r.adjusted_fen),
                "executed_yuan": fen_to_yuan_str(r.executed_fen),
                "execution_rate": opt_num2(r.rate),
            }
            for r in form.funding
        ],
        "overall_goal": list(form.overall_goal),
        "overall_result": list(form.overall_result),
        "project_lead": form.project_lead,
        "finance_lead": form.finance_lead,
        "filled_date": None if form.filled_date is None else form.filled_date.isoformat(),
    }


def provenance_json(p: Provenance) -> dict[str, Any]:
    return {
        "generated_at": p.generated_at.isoformat(),
        "code_version": p.code_version,
        "rules_sha256": p.rules_sha256,
        "templates_sha256": p.templates_sha256,
        "inputs": [
            {
                "kind": f.kind,
                "name": f.name,
                "sha256": f.sha256,
                "rows": f.rows,
                "rows_in_force": f.rows_in_force,
                # Stored naive in Asia/Shanghai (store.now_local).
                "loaded_at": None if f.loaded_at is None else f.loaded_at.replace(tzinfo=TZ).isoformat(),
                "corrected_by": list(f.corrected_by),
            }
            for f in p.inputs
        ],
    }


def to_json(model: YearEnd) -> dict[str, Any]:
    """The self_evaluation.json dict of ``model``."""
    f = model.fund
    out: dict[str, Any] = {
        "fund": {"code": f.code, "name": f.name, "year": f.year, "department": f.department},
        "budget": {
            "initial_yuan": fen_to_yuan_str(model.initial_fen),
            "adjusted_yuan": fen_to_yuan_str(model.adjusted_fen),
            "executed_yuan": fen_to_yuan_str(model.executed_fen),
            "execution_rate": num2(model.execution_rate),
        },
        "monthly": [
            {
                "month": m.month,
                "executed_yuan": fen_to_yuan_str(m.executed_fen),
                "cumulative_yuan": fen_to_yuan_str(m.cumulative_fen),
                "cumulative_rate": opt_num2(m.rate),
                "pace": num2(m.pace),
                "gap_points": presented_gap(m.rate, m.pace),
            }
            for m in model.monthly
        ],
        "quarters": [
            {
                "quarter": q.quarter,
                "cumulative_rate": opt_num2(q.rate),
                "pace": num2(q.pace),
                "gap_points": presented_gap(q.rate, q.pace),
                "lagging": q.lagging,
            }
            for q in model.quarters
        ],
        "units": [
            {
                "unit": u.unit,
                "budget_yuan": None if u.budget_fen is None else fen_to_yuan_str(u.budget_fen),
                "executed_yuan": None if u.executed_fen is None else fen_to_yuan_str(u.executed_fen),
                "execution_rate": opt_num2(u.rate),
                "lagging_quarters": list(u.lagging_quarters),
            }
            for u in model.units
        ],
        "indicators": [indicator_json(i) for i in model.indicators],
        "execution_score": {"weight": num2(model.execution_weight), "score": num2(model.execution_score)},
        "total_score": num2(model.total_score),
        "grade": model.grade,
        "problems": list(model.problems),
        "improvements": list(model.improvements),
    }
    # Fields added after the data contract's (issue 15), before "draft" which stays last.
    if model.form is not None:
        out["self_evaluation_form"] = form_json(model.form)
    if model.provenance is not None:
        out["provenance"] = provenance_json(model.provenance)
    if model.draft:
        out["draft"] = True
    if model.approval:
        out["approval"] = dict(model.approval)
    return out


def json_text(model: YearEnd) -> str:
    return json.dumps(to_json(model), ensure_ascii=False, indent=2) + "\n"


def write(model: YearEnd, out: Output) -> list[str]:
    out.stage.write_text(JSON_NAME, json_text(model))
    return [JSON_NAME]
