"""Small input files for the ingest/validate/quarantine tests, written into tmp_path."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PAY_HEADER = ["支付凭证号", "预算单位", "指标文号", "支付金额", "支付日期", "业务类型", "经济分类", "摘要"]
UNITS = ("江门市市场监督管理局", "台山市市场监督管理局")
DOCS = ("江财工〔2021〕12号", "江财工〔2021〕13号")


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]], encoding: str = "utf-8") -> Path:
    """Write a CSV (``encoding`` e.g. utf-8, utf-8-sig, gbk, utf-16)."""
    buf = io.StringIO()
    import csv

    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def payment(
    voucher: str,
    amount: str = "100.00",
    date: str = "2021-03-05",
    kind: str = "支付",
    unit: str = UNITS[0],
    doc: str = DOCS[0],
) -> list[str]:
    return [voucher, unit, doc, amount, date, kind, "30201 办公费", "购买办公用品"]


def good_payments() -> list[list[str]]:
    return [
        payment("V001", "1,234.50"),
        payment("V002", "500", "2021/3/6", unit=UNITS[1], doc=DOCS[1]),
        payment("V003", "-34.50", "2021年3月7日", kind="退回"),
    ]


BUDGET_HEADER = ["指标文号", "预算单位", "下达日期", "金额", "类型"]


def good_budget() -> list[list[str]]:
    return [
        [DOCS[0], UNITS[0], "2021-01-04", "10,000.00", "年初"],
        [DOCS[1], UNITS[1], "2021-01-04", "5,000.00", "年初"],
        [DOCS[1], UNITS[1], "2021-06-01", "1,000.00", "调减"],
    ]


GOALS_HEADER = ["一级指标", "二级指标", "三级指标", "指标值", "分值"]


def good_goals() -> list[list[str]]:
    return [
        ["产出指标", "数量指标", "药品抽检批次", "≥550批次", "40"],
        ["产出指标", "质量指标", "抽检合格率", "≥95%", "30"],
        ["满意度指标", "服务对象满意度指标", "群众满意度", "≥90%", "20"],
    ]


INS_HEADER = ["抽样单号", "抽样日期", "品种类别", "抽检单位", "检验结论"]
OUT_HEADER = ["月份", "预算单位", "三级指标", "完成值", "备注"]


def validation_fund(root: Path, budget_encoding: str = "utf-8", goals_encoding: str = "utf-8") -> Path:
    """A small fund directory (fund.yaml, budget, goals) for validation tests."""
    (root / "fund.yaml").write_text(
        "code: T-2021\nname: 测试专项资金\nyear: 2021\ndepartment: 江门市市场监督管理局\n"
        "inspection_categories: [药品, 化妆品]\nrecipients: [caiwu@example.com]\n",
        encoding="utf-8",
    )
    write_csv(root / "budget.csv", BUDGET_HEADER, good_budget(), budget_encoding)
    write_csv(root / "goals.csv", GOALS_HEADER, good_goals(), goals_encoding)
    return root
