"""自评报告.docx: the report sections rendered into the Word template, the charts embedded.

The template engine (docxtpl with the bounded, compile-once jinja
environment) lives in report.py; this writer feeds it the model's sections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from budget_monitor.writers.sections import CHART_NAME, UNIT_CHART_NAME
from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    from budget_monitor.writers import Output

DOCX_NAME = "自评报告.docx"


def write(model: YearEnd, out: Output) -> list[str]:
    from budget_monitor import report

    report.write_docx(
        out.sections(model), out.stage.path(DOCX_NAME), out.written.get(CHART_NAME), out.written.get(UNIT_CHART_NAME)
    )
    return [DOCX_NAME]
