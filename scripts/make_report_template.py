"""Build include/budget_monitor/templates/self_evaluation_template.docx.

The 自评报告 template is generated (python-docx) rather than hand-edited so
that its layout is reviewable as code. It holds docxtpl (jinja2) tags; report.py
fills them. Layout follows the usual look of a government report (GB/T 9704):
A4, margins 37/35/28/26 mm, body 仿宋 三号 with 2-character first-line indent,
一、 headings 黑体, （一） headings 楷体, title 宋体 bold 二号, the 自评表 as a
real table (仿宋 五号), pages numbered "— n —".

East Asian font names are set in w:rFonts/@w:eastAsia so Word picks 仿宋/黑体/
楷体; the font table lists a Noto CJK alternative (w:altName) for machines
without them (LibreOffice then falls back through fontconfig to Noto CJK).

Run:  .venv/bin/python scripts/make_report_template.py
"""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT, WD_CELL_VERTICAL_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

OUT = Path(__file__).resolve().parents[1] / "include" / "budget_monitor" / "templates" / "self_evaluation_template.docx"

LATIN = "Times New Roman"
BODY_CJK = "仿宋"
H1_CJK = "黑体"
H2_CJK = "楷体"
TITLE_CJK = "宋体"
FALLBACK = {
    "仿宋": "Noto Serif CJK SC",
    "宋体": "Noto Serif CJK SC",
    "楷体": "Noto Serif CJK SC",
    "黑体": "Noto Sans CJK SC",
}

# The 自评表 itself is painted by writers/docx_writer.py (from writers/form_layout.py,
# the grid the .xlsx and .html share) at this marker paragraph.
FORM_MARKER = "[[项目支出绩效自评表]]"


def set_fonts(rpr_owner, cjk: str, latin: str = LATIN) -> None:
    """Set ascii/hAnsi/eastAsia fonts explicitly, dropping theme fonts that would win."""
    if hasattr(rpr_owner, "get_or_add_rPr"):
        rpr = rpr_owner.get_or_add_rPr()
    else:  # plain lxml element such as w:rPrDefault
        rpr = rpr_owner.find(qn("w:rPr"))
        if rpr is None:
            rpr = OxmlElement("w:rPr")
            rpr_owner.append(rpr)
    rfonts = rpr.find(qn("w:rFonts"))
    if rfonts is None:
        rfonts = OxmlElement("w:rFonts")
        rpr.insert(0, rfonts)
    for attr in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        rfonts.attrib.pop(qn(attr), None)
    rfonts.set(qn("w:ascii"), latin)
    rfonts.set(qn("w:hAnsi"), latin)
    rfonts.set(qn("w:cs"), latin)
    rfonts.set(qn("w:eastAsia"), cjk)
    lang = rpr.find(qn("w:lang"))
    if lang is None:
        lang = OxmlElement("w:lang")
        rpr.append(lang)
    lang.set(qn("w:eastAsia"), "zh-CN")


def style(
    doc,
    name: str,
    cjk: str,
    size: float,
    *,
    bold: bool = False,
    indent: bool = False,
    align=WD_ALIGN_PARAGRAPH.JUSTIFY,
    before: float = 0,
    after: float = 0,
    line: float = 28,
) -> None:
    st = doc.styles[name]
    st.font.size = Pt(size)
    st.font.bold = bold
    st.font.italic = False
    st.font.color.rgb = RGBColor(0, 0, 0)
    set_fonts(st.element, cjk)
    pf = st.paragraph_format
    pf.alignment = align
    pf.space_before = Pt(before)
    pf.space_after = Pt(after)
    pf.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    pf.line_spacing = Pt(line)
    pf.first_line_indent = Pt(size * 2) if indent else Pt(0)
    pf.keep_with_next = name.startswith("Heading")


def para(doc, text: str, style_name: str = "Normal", align=None):
    p = doc.add_paragraph(text, style=style_name)
    if align is not None:
        p.alignment = align
    return p


def add_page_number(section) -> None:
    """Footer "— n —" with a PAGE field (w:fldSimple must sit in the paragraph)."""
    p = section.footer.paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    left = p.add_run("— ")
    fld = OxmlElement("w:fldSimple")
    fld.set(qn("w:instr"), "PAGE")
    r = OxmlElement("w:r")
    t = OxmlElement("w:t")
    t.text = "1"
    r.append(t)
    fld.append(r)
    left._r.addnext(fld)
    p.add_run(" —")
    for run in p.runs:
        run.font.size = Pt(14)
        set_fonts(run._r, TITLE_CJK)
    rpr = OxmlElement("w:rPr")
    sz = OxmlElement("w:sz")
    sz.set(qn("w:val"), "28")
    rpr.append(sz)
    r.insert(0, rpr)


def set_grid(table, widths_mm) -> None:
    """Column widths in w:tblGrid too: LibreOffice lays tables out from the grid."""
    # Narrow cell margins (1 mm) so short CJK headers fit the narrow columns.
    mar = OxmlElement("w:tblCellMar")
    for side in ("left", "right"):
        el = OxmlElement(f"w:{side}")
        el.set(qn("w:w"), "57")
        el.set(qn("w:type"), "dxa")
        mar.append(el)
    table._tbl.tblPr.append(mar)
    grid = table._tbl.tblGrid
    for col, w in zip(grid.findall(qn("w:gridCol")), widths_mm):
        col.set(qn("w:w"), str(int(Mm(w).twips)))
    for row in table.rows:
        for i, cell in enumerate(row.cells):
            cell.width = Mm(widths_mm[i])


def cell_text(cell, text: str, *, bold: bool = False, align=WD_ALIGN_PARAGRAPH.CENTER) -> None:
    cell.text = ""
    p = cell.paragraphs[0]
    p.style = "Table Text"
    p.alignment = align
    run = p.add_run(text)
    run.bold = bold
    cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER


def shade(cell, fill: str = "E7ECF3") -> None:
    tcpr = cell._tc.get_or_add_tcPr()
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), fill)
    tcpr.append(shd)


def repeat_header(row) -> None:
    trpr = row._tr.get_or_add_trPr()
    el = OxmlElement("w:tblHeader")
    el.set(qn("w:val"), "true")
    trpr.append(el)


UNIT_WIDTHS_MM = [52, 27, 27, 20, 30]


def unit_table(doc) -> None:
    t = doc.add_table(rows=4, cols=5)
    t.style = "Table Grid"
    t.alignment = WD_TABLE_ALIGNMENT.CENTER
    t.autofit = False
    set_grid(t, UNIT_WIDTHS_MM)
    r = t.rows
    for i, h in enumerate(["预算单位", "全年预算数（万元）", "全年执行数（万元）", "执行率", "支出进度落后的季度"]):
        cell_text(r[0].cells[i], h, bold=True)
        shade(r[0].cells[i])
    repeat_header(r[0])
    cell_text(r[1].cells[0], "{%tr for u in units %}")
    for i, key in enumerate(["unit", "budget_wan", "executed_wan", "rate", "lagging"]):
        cell_text(
            r[2].cells[i],
            "{{ u.%s }}" % key,
            align=WD_ALIGN_PARAGRAPH.LEFT if key == "unit" else WD_ALIGN_PARAGRAPH.CENTER,
        )
    cell_text(r[3].cells[0], "{%tr endfor %}")


SOURCE_WIDTHS_MM = [18, 46, 10, 30, 34, 18]


def sources_table(doc) -> None:
    t = doc.add_table(rows=4, cols=6)
    t.style = "Table Grid"
    t.alignment = WD_TABLE_ALIGNMENT.CENTER
    t.autofit = False
    set_grid(t, SOURCE_WIDTHS_MM)
    r = t.rows
    for i, h in enumerate(["类别", "文件", "行数", "入库时间", "SHA-256（前16位）", "更正文件"]):
        cell_text(r[0].cells[i], h, bold=True)
        shade(r[0].cells[i])
    repeat_header(r[0])
    cell_text(r[1].cells[0], "{%tr for s in sources.rows %}")
    for i, key in enumerate(["kind", "name", "rows", "loaded_at", "sha", "corrected_by"]):
        cell_text(
            r[2].cells[i],
            "{{ s.%s }}" % key,
            align=WD_ALIGN_PARAGRAPH.LEFT if key in ("name", "corrected_by") else WD_ALIGN_PARAGRAPH.CENTER,
        )
    cell_text(r[3].cells[0], "{%tr endfor %}")


def add_font_fallbacks(doc) -> None:
    """List the CJK fonts in word/fontTable.xml with a Noto alternative name."""
    from lxml import etree

    part = next(p for p in doc.part.package.iter_parts() if str(p.partname) == "/word/fontTable.xml")
    root = etree.fromstring(part.blob)
    for name, alt in FALLBACK.items():
        font = etree.SubElement(root, qn("w:font"))
        font.set(qn("w:name"), name)
        alt_el = etree.SubElement(font, qn("w:altName"))
        alt_el.set(qn("w:val"), alt)
        charset = etree.SubElement(font, qn("w:charset"))
        charset.set(qn("w:val"), "86")  # GB2312
        family = etree.SubElement(font, qn("w:family"))
        family.set(qn("w:val"), "modern" if name == "黑体" else "roman")
    part._blob = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def build(out: Path = OUT) -> Path:
    doc = Document()
    sec = doc.sections[0]
    sec.orientation = WD_ORIENT.PORTRAIT
    sec.page_width, sec.page_height = Mm(210), Mm(297)
    sec.top_margin, sec.bottom_margin = Mm(37), Mm(35)
    sec.left_margin, sec.right_margin = Mm(28), Mm(26)
    sec.footer_distance = Mm(20)

    # docDefaults: every run gets the East Asian font even without a style.
    set_fonts(doc.styles.element.find(qn("w:docDefaults")).find(qn("w:rPrDefault")), BODY_CJK)
    style(doc, "Normal", BODY_CJK, 16, indent=True)
    style(doc, "Title", TITLE_CJK, 22, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, after=6, line=36)
    style(doc, "Subtitle", BODY_CJK, 16, align=WD_ALIGN_PARAGRAPH.CENTER, after=18)
    # Bold so the level stays visible where 黑体 falls back to the body's sans font.
    style(doc, "Heading 1", H1_CJK, 16, bold=True, align=WD_ALIGN_PARAGRAPH.LEFT, indent=True)
    style(doc, "Heading 2", H2_CJK, 16, align=WD_ALIGN_PARAGRAPH.LEFT, indent=True)
    style(doc, "Caption", H1_CJK, 14, align=WD_ALIGN_PARAGRAPH.CENTER, before=6, after=6)
    for name in ("Title", "Subtitle"):  # the default Title has a blue bottom border
        ppr = doc.styles[name].element.find(qn("w:pPr"))
        if ppr is not None and ppr.find(qn("w:pBdr")) is not None:
            ppr.remove(ppr.find(qn("w:pBdr")))
    table_text = doc.styles.add_style("Table Text", 1)
    table_text.base_style = doc.styles["Normal"]
    style(doc, "Table Text", BODY_CJK, 10, align=WD_ALIGN_PARAGRAPH.CENTER, line=14)
    figure = doc.styles.add_style("Figure", 1)
    figure.base_style = doc.styles["Normal"]
    style(doc, "Figure", BODY_CJK, 12, align=WD_ALIGN_PARAGRAPH.CENTER, before=6, line=12)
    doc.styles["Figure"].paragraph_format.line_spacing_rule = WD_LINE_SPACING.SINGLE

    para(doc, "{{ fund_name }}", "Title")
    para(doc, "绩效自评报告", "Title")
    para(doc, "{{ department }}", "Subtitle")

    def loop(var: str, items: str) -> None:
        para(doc, "{%%p for %s in %s %%}" % (var, items))
        para(doc, "{{ %s }}" % var)
        para(doc, "{%p endfor %}")

    doc.add_paragraph("一、项目基本情况", style="Heading 1")
    doc.add_paragraph("（一）专项资金基本情况", style="Heading 2")
    para(doc, "{{ basic }}")
    doc.add_paragraph("（二）专项资金绩效目标", style="Heading 2")
    loop("text", "goal_paragraphs")
    doc.add_paragraph("二、项目绩效情况", style="Heading 1")
    doc.add_paragraph("（一）自评分数", style="Heading 2")
    para(doc, "{{ score_text }}")
    doc.add_paragraph("（二）绩效目标完成情况", style="Heading 2")
    loop("text", "achievements")
    doc.add_paragraph("（三）存在问题", style="Heading 2")
    loop("text", "problems")
    doc.add_paragraph("三、改进意见", style="Heading 1")
    loop("text", "improvements")

    # 附件说明 and 落款 (GB/T 9704): after the body, the department and 成文日期 right-aligned.
    para(doc, "")
    para(doc, "{{ annex_list }}")
    para(doc, "")
    for key in ("department", "date"):
        p = para(doc, "{{ signature.%s }}" % key, align=WD_ALIGN_PARAGRAPH.RIGHT)
        p.paragraph_format.first_line_indent = Pt(0)
        p.paragraph_format.right_indent = Pt(32)

    def annex(label: str) -> None:
        p = para(doc, label, "Heading 1")
        p.paragraph_format.page_break_before = True
        p.paragraph_format.first_line_indent = Pt(0)

    # 附件1: the 自评表, on its own page.
    annex("附件1")
    para(doc, FORM_MARKER, "Table Text")

    # 附件2: spending progress.
    annex("附件2")
    para(doc, "{{ annexes['附件2'] }}", "Caption")
    para(doc, "{%p if units %}", "Figure")
    para(doc, "{{ unit_table_caption }}", "Figure")
    unit_table(doc)
    para(doc, "{%p endif %}", "Figure")
    para(doc, "{{ chart }}", "Figure")
    para(doc, "{{ figures[0] }}", "Figure")
    para(doc, "{%p if unit_chart %}", "Figure")
    para(doc, "{{ unit_chart }}", "Figure")
    para(doc, "{{ figures[1] }}", "Figure")
    para(doc, "{%p endif %}", "Figure")

    # 附件3: where the figures came from (only when the model knows its inputs).
    para(doc, "{%p if sources.rows %}", "Figure")
    annex("附件3")
    para(doc, "{{ annexes['附件3'] }}", "Caption")
    sources_table(doc)
    p = para(doc, "{{ sources.note }}", "Table Text")
    p.alignment = WD_ALIGN_PARAGRAPH.LEFT
    para(doc, "{%p endif %}", "Figure")

    add_page_number(sec)
    add_font_fallbacks(doc)
    # Every report sets its own properties (writers/docx_writer.py); the template keeps none of
    # python-docx's defaults (a 2013 date, "generated by python-docx", a Mac Word app.xml, a thumbnail).
    cp = doc.core_properties
    cp.title, cp.author, cp.comments, cp.last_modified_by = "绩效自评报告", "", "", ""
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = BytesIO()
    doc.save(buf)
    out.write_bytes(_without_leftovers(buf.getvalue()))
    return out


APP_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
    "<Application>budget-monitor</Application></Properties>"
)


def _without_leftovers(data: bytes) -> bytes:
    """The saved package without python-docx's thumbnail and with a neutral app.xml."""
    import re
    import zipfile

    src = zipfile.ZipFile(BytesIO(data))
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename == "docProps/thumbnail.jpeg":
                continue
            body = src.read(item.filename)
            if item.filename == "_rels/.rels":
                body = re.sub(rb"<Relationship [^>]*thumbnail[^>]*/>", b"", body)
            elif item.filename == "docProps/app.xml":
                body = APP_XML.encode("utf-8")
            info = zipfile.ZipInfo(item.filename, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, body)
    return out.getvalue()


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
