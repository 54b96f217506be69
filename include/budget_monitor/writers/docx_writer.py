"""自评报告.docx: the report sections rendered into the Word template, the charts embedded.

The template engine (docxtpl with the bounded, compile-once jinja
environment) lives in report.py; this writer feeds it the model's sections.
After rendering, :func:`finish` paints the 自评表 (writers/form_layout.py,
the grid the .xlsx and .html share) at the template's marker paragraph and
sets the document's core properties (title, author = the department,
created/modified = the generation time), so no template value is left over.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from budget_monitor.writers.sections import CHART_NAME, UNIT_CHART_NAME, cell_text
from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    from budget_monitor.writers import Output
    from budget_monitor.writers.form_layout import FormLayout

DOCX_NAME = "自评报告.docx"
FORM_MARKER = "[[项目支出绩效自评表]]"  # scripts/make_report_template.py puts it where the table goes
# Column widths A–I in mm: the 156 mm text width of the template's A4 page.
FORM_WIDTHS_MM = (17, 12, 13, 24, 15, 13, 10, 10, 42)
SHADE = "E7ECF3"


def write(model: YearEnd, out: Output) -> list[str]:
    from budget_monitor import report

    report.write_docx(
        out.sections(model), out.stage.path(DOCX_NAME), out.written.get(CHART_NAME), out.written.get(UNIT_CHART_NAME)
    )
    return [DOCX_NAME]


def finish(doc: Any, sections: dict[str, Any]) -> None:
    """Paint the 自评表 at its marker and set the core properties (python-docx ``Document``)."""
    form = sections.get("form")
    marker = next((p for p in doc.paragraphs if p.text.strip() == FORM_MARKER), None)
    if form is not None and marker is not None:
        _paint_form(doc, marker, form)
    _core_properties(doc, sections)


def _core_properties(doc: Any, sections: dict[str, Any]) -> None:
    cp = doc.core_properties
    when: datetime = sections["generated_at"]
    # python-docx writes W3CDTF with a "Z": hand it UTC.
    utc = when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when
    cp.title = sections["doc_title"]
    cp.subject = f"{sections['year']}年度项目支出绩效自评"
    cp.author = cp.last_modified_by = sections["department"]
    cp.category = "绩效自评报告"
    cp.comments = cp.keywords = cp.content_status = cp.identifier = cp.version = ""
    cp.language = "zh-CN"
    cp.created = cp.modified = utc
    cp.revision = 1


def _shade(cell: Any) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), SHADE)
    cell._tc.get_or_add_tcPr().append(shd)


def _grid(table: Any) -> None:
    """Widths in w:tblGrid (LibreOffice lays out from it) and narrow cell margins."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Mm

    mar = OxmlElement("w:tblCellMar")
    for side in ("left", "right"):
        el = OxmlElement(f"w:{side}")
        el.set(qn("w:w"), "57")
        el.set(qn("w:type"), "dxa")
        mar.append(el)
    table._tbl.tblPr.append(mar)
    for col, w in zip(table._tbl.tblGrid.findall(qn("w:gridCol")), FORM_WIDTHS_MM):
        col.set(qn("w:w"), str(int(Mm(w).twips)))
    for row in table.rows:
        for i, cell in enumerate(row.cells):
            cell.width = Mm(FORM_WIDTHS_MM[i])


def _paint_form(doc: Any, marker: Any, form: FormLayout) -> None:
    from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH

    title = marker.insert_paragraph_before(form.title, style="Title")
    title.paragraph_format.keep_with_next = True
    sub = marker.insert_paragraph_before(form.subtitle, style="Subtitle")
    sub.paragraph_format.keep_with_next = True
    table = doc.add_table(rows=form.rows, cols=len(FORM_WIDTHS_MM))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    _grid(table)
    for c in form.cells:
        cell = table.cell(c.row, c.col)
        if c.rowspan > 1 or c.colspan > 1:
            cell = cell.merge(table.cell(c.row + c.rowspan - 1, c.col + c.colspan - 1))
        cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER
        align = WD_ALIGN_PARAGRAPH.LEFT if c.kind == "left" else WD_ALIGN_PARAGRAPH.CENTER
        for k, line in enumerate(cell_text(c).split("\n")):
            p = cell.paragraphs[0] if k == 0 else cell.add_paragraph()
            p.style = "Table Text"
            p.alignment = align
            run = p.add_run(line)
            run.bold = c.kind == "head"
        if c.kind == "head":
            _shade(cell)
    marker._p.addprevious(table._tbl)
    # The marker paragraph becomes the signature line under the table.
    for run in list(marker.runs):
        run._r.getparent().remove(run._r)
    marker.style = "Table Text"
    marker.alignment = WD_ALIGN_PARAGRAPH.LEFT
    marker.paragraph_format.space_before = doc.styles["Table Text"].font.size
    marker.add_run("　　　　".join(f"{label}：{value}" for label, value in form.footer))
