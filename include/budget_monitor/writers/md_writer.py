"""自评报告.md: the report sections through templates/report.md.j2 (every value escaped, bounded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    from budget_monitor.writers import Output

MD_NAME = "自评报告.md"


def write(model: YearEnd, out: Output) -> list[str]:
    from budget_monitor import report

    out.stage.write_text(MD_NAME, report.render_markdown(out.sections(model)))
    return [MD_NAME]
