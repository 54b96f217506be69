"""自评表.xlsx: the 项目支出绩效自评表 as a spreadsheet (openpyxl).

Money in 万元 and rates, weights and scores as numbers rounded to 2
decimals (number formats show them); data text is never a formula.
"""

from __future__ import annotations

from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budget_monitor import atomic
from budget_monitor.money_fmt import round2
from budget_monitor.writers.edge import num2, wan_number
from budget_monitor.yearend import YearEnd

if TYPE_CHECKING:
    from budget_monitor.writers import Output

XLSX_NAME = "自评表.xlsx"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _put(ws, row: int, col: int, value: Any, style: str | None = None):
    """Write one cell; text from data that a spreadsheet could run is stored inert."""
    cell = ws.cell(row=row, column=col)
    if value is not None:
        cell.value = value
    if style:
        cell.style = style
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        # A string cell with Excel's quote prefix: shown as typed, never evaluated
        # (set after the named style, which would reset the prefix).
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


@lru_cache(maxsize=1)
def _xlsx_styles() -> dict[str, Any]:
    from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side

    thin = Side(style="thin", color="000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)

    def named(
        name: str,
        *,
        bold: bool = False,
        fill: str | None = None,
        wrap: bool = True,
        horizontal: str = "center",
        size: float = 11,
        fmt: str = "General",
        bordered: bool = True,
    ):
        st = NamedStyle(name=name)
        st.font = Font(name="仿宋", size=size, bold=bold)
        st.alignment = Alignment(horizontal=horizontal, vertical="center", wrap_text=wrap)
        if bordered:
            st.border = border
        if fill:
            st.fill = PatternFill("solid", fgColor=fill)
        st.number_format = fmt
        return st

    return {
        "title": named("bm_title", bold=True, size=16, bordered=False),
        "head": named("bm_head", bold=True, fill="E7ECF3"),
        "text": named("bm_text"),
        "left": named("bm_left", horizontal="left"),
        "money": named("bm_money", fmt="#,##0.00"),
        "num": named("bm_num", fmt="0.00"),
        "pct": named("bm_pct", fmt='0.00"%"'),
    }


def write_xlsx(model: YearEnd, path: Path) -> Path:
    """The 自评表 of ``model`` at ``path`` (atomically)."""
    from openpyxl import Workbook

    styles = _xlsx_styles()
    wb = Workbook()
    for st in styles.values():
        wb.add_named_style(st)
    ws = wb.active
    ws.title = "自评表"
    fund = model.fund

    merges = ["A1:H1"]  # merged after all cells got their borders
    draft = "（草稿）" if model.draft else ""
    _put(ws, 1, 1, f"{fund.year}年度项目支出绩效自评表{draft}", "bm_title")
    ws.row_dimensions[1].height = 30
    for r, (label, value) in enumerate([("项目名称", fund.name), ("主管部门", fund.department)], start=2):
        _put(ws, r, 1, label, "bm_head")
        merges.append(f"B{r}:H{r}")
        for c in range(2, 9):
            _put(ws, r, c, None, "bm_left")
        _put(ws, r, 2, value, "bm_left")

    _put(ws, 4, 1, "资金情况（万元）", "bm_head")
    for c, h in enumerate(["年初预算数", "全年预算数", "全年执行数", "分值", "执行率", "得分"], start=2):
        _put(ws, 4, c, h, "bm_head")
    _put(ws, 5, 1, "年度资金总额", "bm_text")
    for c, fen in enumerate([model.initial_fen, model.adjusted_fen, model.executed_fen], start=2):
        _put(ws, 5, c, wan_number(fen), "bm_money")
    _put(ws, 5, 5, num2(model.execution_weight), "bm_num")
    _put(ws, 5, 6, num2(model.execution_rate), "bm_pct")
    _put(ws, 5, 7, num2(model.execution_score), "bm_num")
    _put(ws, 5, 8, None, "bm_text")

    heads = ["一级指标", "二级指标", "三级指标", "年度指标值", "实际完成值", "分值", "得分", "偏差原因分析及改进措施"]
    for c, h in enumerate(heads, start=1):
        _put(ws, 6, c, h, "bm_head")
    row = 7
    for i in model.indicators:
        values = [
            i.level1,
            i.level2,
            i.name,
            i.target,
            i.actual if i.actual is not None else "未取得",
            num2(i.weight),
            num2(i.score),
            i.deviation,
        ]
        for c, v in enumerate(values, start=1):
            _put(ws, row, c, v, "bm_num" if c in (6, 7) else ("bm_left" if c in (3, 8) else "bm_text"))
        row += 1
    merges.append(f"A{row}:E{row}")
    for c in range(1, 6):
        _put(ws, row, c, None, "bm_head")
    _put(ws, row, 1, "总分", "bm_head")
    # The total of the weights as the rows show them (each rounded to 2 decimals).
    total_weight = sum((round2(i.weight) for i in model.indicators), round2(model.execution_weight))
    _put(ws, row, 6, num2(total_weight), "bm_num")
    _put(ws, row, 7, num2(model.total_score), "bm_num")
    _put(ws, row, 8, f"绩效等级：{model.grade}", "bm_head")

    for rng in merges:
        ws.merge_cells(rng)
    for col, width in zip("ABCDEFGH", [14, 14, 26, 14, 14, 10, 10, 44]):
        ws.column_dimensions[col].width = width
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.print_title_rows = "6:6"
    # Into memory first: a zip writer failing half-way on disk (full, EFBIG) stays
    # unclosed and retries the write when collected, noise on stderr (atomic.py).
    buf = BytesIO()
    wb.save(buf)
    atomic.write_bytes(path, buf.getvalue())
    return path


def write(model: YearEnd, out: Output) -> list[str]:
    write_xlsx(model, out.stage.path(XLSX_NAME))
    return [XLSX_NAME]
