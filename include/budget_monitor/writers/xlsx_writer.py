"""自评表.xlsx: the 项目支出绩效自评表 (writers/form_layout.py) as a print-ready spreadsheet.

XlsxWriter rather than openpyxl: a total is a formula AND its cached value
(openpyxl writes formulas without one, so a viewer that does not recalculate
shows an empty cell, and a test cannot read the figure back).

- Money in 万元 as exact numbers (fen / 1 000 000, "#,##0.00" shows 2
  decimals); rates as fractions with "0.00%"; weights and scores as numbers;
  the 年度资金总额 row and 总分 are SUM formulas whose cached values are the
  model's totals.
- Printed on A4 portrait, one page wide (fit to width), the indicator head
  row repeated on every page, the form's merged cells; row heights are set
  from the text so wrapped text never runs into the next row (neither Excel
  nor LibreOffice grows a row for text in merged cells).
- Data text is written as a string, never a formula; text that a
  spreadsheet could run (= + - @ at the start) also carries Excel's quote
  prefix, so it stays inert when a cell is edited.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import replace
from datetime import datetime
from fractions import Fraction
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budget_monitor import atomic
from budget_monitor.money_fmt import round2
from budget_monitor.writers.form_layout import COLUMNS, Cell, FormLayout, form_of, layout
from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    from budget_monitor.writers import Output

XLSX_NAME = "自评表.xlsx"
SHEET = "自评表"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Column widths (character units), A–I: column A takes four CJK characters a line
# ("年度总体\n目标"); fit-to-width scales the sheet onto A4 portrait.
WIDTHS = (9, 9, 11, 17, 11, 11, 8, 8, 22)
FIRST_ROW = 2  # rows 0–1: title and （YYYY年度）
FONT = "仿宋"
SIZE = 10
LINE_PT = 13.5  # one line of 10 pt CJK text
PAD_PT = 6


def _units(text: str) -> float:
    """Display width of ``text`` in column units (a CJK character is about two)."""
    return sum(1.95 if unicodedata.east_asian_width(ch) in "WF" else 1.1 for ch in text)


def _lines(text: str, width: float) -> int:
    usable = max(width - 1.0, 1.0)
    return sum(max(1, math.ceil(_units(part) / usable)) for part in str(text).split("\n"))


def _formats(wb: Any) -> dict[tuple[str, bool], Any]:
    base = {"font_name": FONT, "font_size": SIZE, "border": 1, "valign": "vcenter", "text_wrap": True}
    kinds = {
        "head": {"bold": True, "align": "center", "bg_color": "#E7ECF3"},
        "text": {"align": "center"},
        "left": {"align": "left"},
        "money": {"align": "right", "indent": 1, "num_format": "#,##0.00"},
        "rate": {"align": "center", "num_format": "0.00%"},
        "score": {"align": "center", "num_format": "General"},
        "dash": {"align": "center"},
    }
    out = {}
    for kind, extra in kinds.items():
        for quoted in (False, True):
            props = {**base, **extra}
            if quoted:
                props["quote_prefix"] = True
            out[(kind, quoted)] = wb.add_format(props)
    out[("title", False)] = wb.add_format({"font_name": "宋体", "font_size": 16, "bold": True, "align": "center"})
    out[("subtitle", False)] = wb.add_format({"font_name": FONT, "font_size": 11, "align": "center"})
    out[("footer", False)] = wb.add_format({"font_name": FONT, "font_size": 11, "align": "left"})
    return out


def _a1(row: int, col: int) -> str:
    from xlsxwriter.utility import xl_rowcol_to_cell

    return xl_rowcol_to_cell(FIRST_ROW + row, col)


def _formula(c: Cell) -> str:
    parts = []
    for r1, c1, r2, c2 in c.sum_of:
        parts.append(_a1(r1, c1) if (r1, c1) == (r2, c2) else f"{_a1(r1, c1)}:{_a1(r2, c2)}")
    return "=SUM(" + ",".join(parts) + ")"


def _number(c: Cell) -> float | None:
    """The spreadsheet number of a cell, None for a dash."""
    if c.value is None:
        return None
    if c.kind == "money":
        return float(Fraction(int(c.value), 1_000_000))  # exact 万元; the format shows 2 decimals
    if c.kind == "rate":
        return float(Fraction(c.value) / 100)
    return float(round2(c.value))


def _write_cell(ws: Any, fmt: dict, c: Cell) -> None:
    row, col = FIRST_ROW + c.row, c.col
    value: Any
    if c.kind in ("money", "rate", "score"):
        number = _number(c)
        kind = c.kind if number is not None else "dash"
        value = "—" if number is None else number
    else:
        kind, value = c.kind, "" if c.value is None else str(c.value)
    quoted = isinstance(value, str) and value.startswith(_FORMULA_START)
    style = fmt[(kind, quoted)]
    merged = c.rowspan > 1 or c.colspan > 1
    if merged:
        ws.merge_range(row, col, row + c.rowspan - 1, col + c.colspan - 1, "", style)
    if c.sum_of and isinstance(value, float):
        ws.write_formula(row, col, _formula(c), style, value)
    elif value == "":
        ws.write_blank(row, col, None, style)
    elif isinstance(value, str):
        ws.write_string(row, col, value, style)
    else:
        ws.write_number(row, col, value, style)


def _row_heights(form: FormLayout) -> list[float]:
    """Each row's height in points, tall enough for every cell's wrapped text.

    A cell spanning rows needs its lines spread over them: the rows it spans
    are grown evenly when their sum is short.
    """
    heights = [LINE_PT + PAD_PT] * form.rows
    spans = []
    for c in form.cells:
        if c.kind in ("money", "rate", "score"):
            continue
        width = sum(WIDTHS[c.col : c.col + c.colspan])
        need = _lines(c.value or "", width) * LINE_PT + PAD_PT
        if c.rowspan == 1:
            heights[c.row] = max(heights[c.row], need)
        else:
            spans.append((c, need))
    for c, need in spans:
        rows = range(c.row, c.row + c.rowspan)
        have = sum(heights[r] for r in rows)
        if have < need:
            for r in rows:
                heights[r] += (need - have) / c.rowspan
    return heights


def _created(model: YearEnd) -> datetime:
    """The generation time (naive, as XlsxWriter stores it): the same run gives the same stamp in every file."""
    from budget_monitor.provenance import generation_time

    when = model.provenance.generated_at if model.provenance is not None else generation_time()
    return when.replace(tzinfo=None)


def write_xlsx(model: YearEnd, path: Path) -> Path:
    """The 自评表 of ``model`` at ``path`` (atomically)."""
    import xlsxwriter

    form = layout(model)
    buf = BytesIO()
    # in_memory: no temporary files beside the output; the bytes go through atomic.write_bytes.
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False})
    wb.set_properties(
        {"title": f"{model.fund.name}{form.title}", "author": model.fund.department, "created": _created(model)}
    )
    ws = wb.add_worksheet(SHEET)
    fmt = _formats(wb)
    last_col = COLUMNS - 1
    # A draft says so on the sheet itself: a printed page must not pass for the final form.
    title = form.title + ("（草稿）" if model.draft else "")
    ws.merge_range(0, 0, 0, last_col, title, fmt[("title", False)])
    ws.merge_range(1, 0, 1, last_col, form.subtitle, fmt[("subtitle", False)])
    ws.set_row(0, 30)
    ws.set_row(1, 20)
    for col, width in enumerate(WIDTHS):
        ws.set_column(col, col, width)
    for c in form.cells:
        _write_cell(ws, fmt, c)
    for r, h in enumerate(_row_heights(form)):
        ws.set_row(FIRST_ROW + r, round(h, 1))
    # 项目负责人 / 财务负责人 / 填报日期 under the table, three columns each.
    foot = FIRST_ROW + form.rows + 1
    for k, (label, value) in enumerate(form.footer):
        ws.merge_range(foot, 3 * k, foot, 3 * k + 2, f"{label}：{value}", fmt[("footer", False)])
    ws.set_row(foot, 24)

    ws.set_paper(9)  # A4
    ws.set_portrait()
    ws.fit_to_pages(1, 0)  # one page wide, as many tall as needed
    ws.set_margins(left=0.6, right=0.6, top=0.75, bottom=0.75)
    ws.center_horizontally()
    ws.repeat_rows(FIRST_ROW + form.indicator_head_row)
    ws.print_area(0, 0, foot, last_col)
    ws.set_footer("&C第 &P 页，共 &N 页")
    wb.close()
    atomic.write_bytes(path, buf.getvalue())
    return path


def write(model: YearEnd, out: Output) -> list[str]:
    if model.form is None:  # read from an older JSON: build the form with the fund's texts
        model = replace(model, form=form_of(model, out.cfg))
    write_xlsx(model, out.stage.path(XLSX_NAME))
    return [XLSX_NAME]
