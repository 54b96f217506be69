"""执行进度.png and 单位执行率.png (charts.py draws them; this writer hands it the model's figures).

Rates reach the chart as floats rounded to 2 decimals: a chart is a float boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from budget_monitor.writers.edge import opt_num2
from budget_monitor.writers.sections import CHART_NAME, UNIT_CHART_NAME
from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    from budget_monitor.writers import Output


def monthly_points(model: YearEnd) -> list[dict[str, Any]]:
    return [{"month": m.month, "cumulative_rate": opt_num2(m.rate), "pace": opt_num2(m.pace)} for m in model.monthly]


def quarter_marks(model: YearEnd) -> list[dict[str, Any]]:
    return [{"quarter": q.quarter, "lagging": q.lagging} for q in model.quarters]


def unit_bars(model: YearEnd) -> list[dict[str, Any]]:
    return [
        {"unit": u.unit, "execution_rate": opt_num2(u.rate), "lagging_quarters": list(u.lagging_quarters)}
        for u in model.units
    ]


def write(model: YearEnd, out: Output) -> list[str]:
    from budget_monitor.charts import execution_chart, unit_chart

    execution_chart(
        monthly_points(model),
        quarter_marks(model),
        out.stage.path(CHART_NAME),
        title=f"{model.fund.year}年累计支出进度与序时进度",
    )
    names = [CHART_NAME]
    if model.units:
        unit_chart(unit_bars(model), out.stage.path(UNIT_CHART_NAME))
        names.append(UNIT_CHART_NAME)
    return names
