"""自评报告.html: the report sections through templates/report.html.j2 (autoescaped, bounded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    from budget_monitor.writers import Output

HTML_NAME = "自评报告.html"


def write(model: YearEnd, out: Output) -> list[str]:
    from budget_monitor import report

    out.stage.write_text(HTML_NAME, report.render_html(out.sections(model)))
    return [HTML_NAME]
