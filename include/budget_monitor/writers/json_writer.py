"""self_evaluation.json: the model in the data contract's shape (data-contract.md "Outputs").

Money as exact 元 text ("3720900.00"), rates and scores as floats rounded to
2 decimals, keys in the contract's order; ``"draft": true`` last for a draft.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from budget_monitor.money_fmt import fen_to_yuan_str, round2
from budget_monitor.writers.edge import num2, opt_num2, presented_gap
from budget_monitor.yearend import IndicatorRow, YearEnd

if TYPE_CHECKING:
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
    if model.draft:
        out["draft"] = True
    return out


def json_text(model: YearEnd) -> str:
    return json.dumps(to_json(model), ensure_ascii=False, indent=2) + "\n"


def write(model: YearEnd, out: Output) -> list[str]:
    out.stage.write_text(JSON_NAME, json_text(model))
    return [JSON_NAME]
