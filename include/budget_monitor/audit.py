"""`budget-monitor audit`: a fund-year's corrections, rejections and mails sent, for an auditor.

Read from the store (``audit`` joined to the correcting ``source_file``,
``rejection``, ``outbox`` rows with status sent) and written as one
审计记录.xlsx (a sheet each) and one CSV each (UTF-8 with BOM, as Excel
opens it). Every cell is text from data, so a value that a spreadsheet
would run (starting with = + - @, a tab or a carriage return) is made
inert: in the CSV a leading apostrophe (the OWASP advice for CSV
injection), in the xlsx a string cell with Excel's quote prefix.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from budget_monitor import atomic, store

__all__ = ["Sheet", "SHEETS", "export_audit", "csv_safe", "risky"]

XLSX_NAME = "审计记录.xlsx"
_RISKY = ("=", "+", "-", "@", "\t", "\r")


def risky(text: str) -> bool:
    """Text a spreadsheet would read as a formula (or DDE) when typed in."""
    return text.startswith(_RISKY)


def csv_safe(text: str) -> str:
    return "'" + text if risky(text) else text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


@dataclass(frozen=True)
class Sheet:
    name: str  # sheet and CSV name
    headers: tuple[str, ...]
    rows: Callable[[Engine, str], list[tuple[Any, ...]]]


def _corrections(engine: Engine, fund_code: str) -> list[tuple[Any, ...]]:
    a, f = store.audit, store.source_file
    stmt = (
        select(
            a.c.changed_at,
            a.c.table_name,
            a.c.row_key,
            a.c.column_name,
            a.c.old_value,
            a.c.new_value,
            f.c.name,
            f.c.sha256,
        )
        .select_from(a.outerjoin(f, a.c.source_file_id == f.c.id))
        .where(a.c.fund_code == fund_code)
        .order_by(a.c.id)
    )
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]


def _rejections(engine: Engine, fund_code: str) -> list[tuple[Any, ...]]:
    r = store.rejection
    stmt = (
        select(r.c.rejected_at, r.c.kind, r.c.name, r.c.sha256, r.c.reason, r.c.quarantine_path)
        .where(r.c.fund_code == fund_code)
        .order_by(r.c.id)
    )
    with engine.connect() as conn:
        return [tuple(x) for x in conn.execute(stmt)]


def _mails(engine: Engine, fund_code: str) -> list[tuple[Any, ...]]:
    o = store.outbox
    stmt = (
        select(o.c.sent_at, o.c.kind, o.c.period, o.c.unit, o.c.subject, o.c.recipients, o.c.attempts)
        .where(o.c.fund_code == fund_code, o.c.status == "sent")
        .order_by(o.c.sent_at, o.c.id)
    )
    with engine.connect() as conn:
        return [tuple(x) for x in conn.execute(stmt)]


SHEETS: tuple[Sheet, ...] = (
    Sheet(
        "更正记录",
        ("更正时间", "数据表", "记录键", "字段", "原值", "新值", "更正文件", "更正文件SHA-256"),
        _corrections,
    ),
    Sheet("退回记录", ("退回时间", "类别", "文件", "文件SHA-256", "退回原因", "隔离位置"), _rejections),
    Sheet("邮件发送记录", ("发送时间", "类型", "期间", "预算单位", "主题", "收件人", "发送次数"), _mails),
)


def _csv_bytes(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(headers)
    w.writerows([[csv_safe(v) for v in row] for row in rows])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _xlsx_bytes(tables: Sequence[tuple[Sheet, list[list[str]]]]) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False})
    head = wb.add_format({"bold": True, "bg_color": "#E7ECF3", "border": 1})
    plain = wb.add_format({"border": 1, "text_wrap": True, "valign": "top"})
    quoted = wb.add_format({"border": 1, "text_wrap": True, "valign": "top", "quote_prefix": True})
    for sheet, rows in tables:
        ws = wb.add_worksheet(sheet.name)
        for c, h in enumerate(sheet.headers):
            ws.write_string(0, c, h, head)
            ws.set_column(c, c, 40 if h in ("退回原因", "主题", "收件人", "记录键") else 18)
        for r, row in enumerate(rows, start=1):
            for c, v in enumerate(row):
                ws.write_string(r, c, v, quoted if risky(v) else plain)
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(len(rows), 1), len(sheet.headers) - 1)
    wb.close()
    return buf.getvalue()


def export_audit(fund_dir: Path, year: int, out_dir: Path, db_url: str | None = None) -> list[Path]:
    """Write the fund-year's audit records into ``out_dir``; return the files written."""
    from budget_monitor.config import load_fund_config
    from budget_monitor.paths import file_mode, private_dir

    cfg = load_fund_config(Path(fund_dir))
    if year != cfg.year:
        raise ValueError(f"年度 {year} 与 fund.yaml 的年度 {cfg.year} 不符")
    engine = store.open_store(db_url)
    tables = [(s, [[_text(v) for v in row] for row in s.rows(engine, cfg.code)]) for s in SHEETS]
    out = private_dir(out_dir)
    paths = []
    for sheet, rows in tables:
        path = out / f"{sheet.name}.csv"
        atomic.write_bytes(path, _csv_bytes(sheet.headers, rows), mode=file_mode())
        paths.append(path)
    path = out / XLSX_NAME
    atomic.write_bytes(path, _xlsx_bytes(tables), mode=file_mode())
    return [path, *paths]
