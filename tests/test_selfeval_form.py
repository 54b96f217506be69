"""The 项目支出绩效自评表 (issue 15): the official template's rows, the same numbers
in the .docx, the .xlsx and self_evaluation.json, a print-ready spreadsheet,
the report's 落款 and core properties, and the provenance of every figure."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from budget_monitor import writers
from budget_monitor.config import load_fund_config
from budget_monitor.provenance import RULES_DIR, TEMPLATES_DIR, input_files, rules_digest, templates_digest
from budget_monitor.yearend import from_json

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden")
EXAMPLES = ["jiangmen-2021", "second-fund-2022"]


def _outputs(name: str, tmp_path: Path) -> tuple[dict, Path]:
    """The example's golden JSON written out by every file writer."""
    data = json.loads((GOLDEN / f"{name}.self_evaluation.json").read_text(encoding="utf-8"))
    cfg = load_fund_config(REPO / "examples" / name)
    writers.write_outputs(from_json(data), cfg, tmp_path)
    return data, tmp_path


def _wan(yuan: str) -> str:
    return f"{Decimal(yuan) / 10000:.2f}"


def _plain(x: float) -> str:
    return f"{x:g}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # scripts/setup.sh installs them
        pytest.fail(f"{name} not installed (scripts/setup.sh installs it)")
    return path


@pytest.mark.parametrize("name", EXAMPLES)
def test_xlsx_form_has_every_template_row_with_the_json_numbers(name: str, tmp_path: Path):
    from openpyxl import load_workbook

    data, out = _outputs(name, tmp_path)
    form, budget = data["self_evaluation_form"], data["budget"]
    ws = load_workbook(out / "自评表.xlsx", data_only=True).active  # cached values of the formulas
    formulas = load_workbook(out / "自评表.xlsx").active
    assert ws["A1"].value == "项目支出绩效自评表" and ws["A2"].value == f"（{data['fund']['year']}年度）"
    assert (ws["A3"].value, ws["C3"].value) == ("项目名称", data["fund"]["name"])
    assert (ws["A4"].value, ws["C4"].value) == ("主管部门", data["fund"]["department"])
    assert (ws["F4"].value, ws["G4"].value) == ("实施单位", form["implementing_unit"])
    assert ws["A5"].value == "项目资金\n（万元）"
    labels = [ws.cell(r, 2).value for r in range(6, 10)]
    assert labels == ["年度资金总额", "其中：当年财政拨款", "上年结转资金", "其他资金"]
    rows = [budget] + form["funding"]
    for r, src in zip(range(6, 10), rows):
        for col, key in zip("DEF", ("initial_yuan", "adjusted_yuan", "executed_yuan")):
            assert ws[f"{col}{r}"].value == pytest.approx(float(Decimal(src[key]) / 10000), abs=1e-9), (r, key)
            assert ws[f"{col}{r}"].number_format == "#,##0.00"
        rate = ws[f"H{r}"].value
        if src["execution_rate"] is None:
            assert rate == "—"
        else:
            assert rate == pytest.approx(src["execution_rate"] / 100, abs=5e-5) and ws[f"H{r}"].number_format == "0.00%"
    # The total row is formulas whose cached values are the model's totals.
    for col in "DEF":
        assert formulas[f"{col}6"].value == f"=SUM({col}7:{col}9)"
    assert (ws["G6"].value, ws["I6"].value) == (data["execution_score"]["weight"], data["execution_score"]["score"])
    assert (ws["A10"].value, ws["B10"].value, ws["F10"].value) == ("年度总体目标", "预期目标", "实际完成情况")
    assert ws["B11"].value == "\n".join(form["overall_goal"]) and ws["F11"].value == "\n".join(form["overall_result"])
    assert ws["A12"].value == "绩效指标"
    for k, ind in enumerate(data["indicators"]):
        r = 13 + k
        got = [ws.cell(r, c).value for c in range(4, 10)]
        actual = ind["actual"] if ind["actual"] is not None else "未取得"
        assert got == [ind["name"], ind["target"], actual, ind["weight"], ind["score"], ind["deviation"] or None]
        assert isinstance(ws.cell(r, 7).value, (int, float)) and isinstance(ws.cell(r, 8).value, (int, float))
    total = 13 + len(data["indicators"])
    assert ws.cell(total, 1).value == "总分"
    assert formulas.cell(total, 8).value.startswith("=SUM(I6,")
    assert ws.cell(total, 7).value == pytest.approx(100) and ws.cell(total, 8).value == data["total_score"]
    assert ws.cell(total, 9).value == f"绩效等级：{data['grade']}"
    footer = [ws.cell(total + 2, c).value for c in (1, 4, 7)]
    assert footer[0].startswith("项目负责人：") and footer[1].startswith("财务负责人：")
    assert footer[2] == "填报日期：2022年1月5日"
    # Merged as the template: 项目资金 over its five rows, 绩效指标 over the indicators.
    merged = {str(m) for m in ws.merged_cells.ranges}
    assert {"A5:A9", "A10:A11", f"A12:A{total - 1}", "C3:I3", f"A{total}:F{total}"} <= merged
    # Print set-up: A4 portrait, one page wide, the indicator head row on every page.
    # fitToWidth absent means 1, the OOXML default; fitToHeight 0 = as many pages tall as needed.
    assert ws.page_setup.paperSize == 9 and ws.page_setup.fitToWidth in (None, 1) and ws.page_setup.fitToHeight == 0
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert ws.print_title_rows == "$12:$12"


@pytest.mark.parametrize("name", EXAMPLES)
def test_docx_form_has_the_same_rows_and_numbers(name: str, tmp_path: Path):
    from docx import Document

    data, out = _outputs(name, tmp_path)
    form, budget = data["self_evaluation_form"], data["budget"]
    doc = Document(str(out / "自评报告.docx"))
    table = doc.tables[0]

    def row(r: int) -> list[str]:
        return [c.text for c in table.rows[r].cells]

    assert row(0)[0] == "项目名称" and row(0)[2] == data["fund"]["name"]
    assert row(1)[0] == "主管部门" and row(1)[5] == "实施单位" and row(1)[6] == form["implementing_unit"]
    for r, src, label in zip(range(3, 7), [budget] + form["funding"], ["年度资金总额", "其中：当年财政拨款"]):
        assert row(r)[3:6] == [_wan(src["initial_yuan"]), _wan(src["adjusted_yuan"]), _wan(src["executed_yuan"])]
        rate = src["execution_rate"]
        assert row(r)[7] == ("—" if rate is None else f"{_plain(rate)}%")
    assert row(3)[1] == "年度资金总额" and row(4)[1] == "其中：当年财政拨款"
    assert row(3)[6] == _plain(data["execution_score"]["weight"]) and row(3)[8] == _plain(
        data["execution_score"]["score"]
    )
    assert row(8)[1] == "\n".join(form["overall_goal"]) and row(8)[5] == "\n".join(form["overall_result"])
    for k, ind in enumerate(data["indicators"]):
        cells = row(10 + k)
        assert cells[1:3] == [ind["level1"], ind["level2"]]
        assert cells[3:9] == [
            ind["name"],
            ind["target"],
            ind["actual"],
            _plain(ind["weight"]),
            _plain(ind["score"]),
            ind["deviation"],
        ]
    last = row(10 + len(data["indicators"]))
    assert last[0] == "总分" and last[6:] == ["100", _plain(data["total_score"]), f"绩效等级：{data['grade']}"]
    texts = [p.text for p in doc.paragraphs]
    sign = texts.index("项目负责人：　　　　　　　　　　财务负责人：　　　　　　　　　　填报日期：2022年1月5日")
    assert texts[sign - 1 :] and "项目支出绩效自评表" in texts and f"（{data['fund']['year']}年度）" in texts


def test_docx_core_properties_are_the_report_s_own(tmp_path: Path):
    from docx import Document

    data, out = _outputs("jiangmen-2021", tmp_path)
    cp = Document(str(out / "自评报告.docx")).core_properties
    assert cp.title == data["fund"]["name"] + "绩效自评报告"
    assert cp.author == cp.last_modified_by == data["fund"]["department"]
    made = datetime.fromisoformat(data["provenance"]["generated_at"]).astimezone(timezone.utc)
    assert cp.created == cp.modified == made
    assert cp.comments == "" and cp.revision == 1
    import zipfile

    with zipfile.ZipFile(out / "自评报告.docx") as z:
        assert "docProps/thumbnail.jpeg" not in z.namelist()
        assert b"Microsoft" not in z.read("docProps/app.xml") and b"python-docx" not in z.read("docProps/core.xml")


def test_same_captions_and_numbers_in_docx_html_md_and_mail(tmp_path: Path):
    from docx import Document

    data, out = _outputs("second-fund-2022", tmp_path)
    html = (out / "自评报告.html").read_text(encoding="utf-8")
    md = (out / "自评报告.md").read_text(encoding="utf-8")
    docx = "\n".join(p.text for p in Document(str(out / "自评报告.docx")).paragraphs)
    for text in (html, md, docx):
        for needle in (
            "附件：1．项目支出绩效自评表　2．支出进度情况　3．数据来源",
            "支出进度情况",
            "图1　累计支出进度与序时进度（阴影为支出进度落后的季度）",
            "数据来源",
            "江门市市场监督管理局",
            "2022年1月5日",
            "自评得分为87.21分",
        ):
            assert needle in text, needle
        assert "87.21000" not in text and "100.00分" not in text
    cfg = load_fund_config(REPO / "examples" / "second-fund-2022")
    mail = writers.year_end_mail(from_json(data), cfg, [])
    body = mail.message.get_body(preferencelist=("plain",)).get_content()
    assert "自评得分：87.21分" in body and "执行率：90%" in body
    assert "（87.21分，良）" in str(mail.message["Subject"])


def test_markdown_is_escaped_for_markdown_not_html(tmp_path: Path):
    data, out = _outputs("jiangmen-2021", tmp_path)
    md = (out / "自评报告.md").read_text(encoding="utf-8")
    assert "&gt;" not in md and "&lt;" not in md and "&amp;" not in md
    assert "| ≥550批次 |" in md


def _pdf(src: Path, out: Path) -> Path:
    soffice = _tool("soffice")
    subprocess.run(
        [
            soffice,
            "--headless",
            f"-env:UserInstallation=file://{out / 'lo'}",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    return out / (src.stem + ".pdf")


def _pdfinfo(pdf: Path) -> dict[str, str]:
    text = subprocess.run([_tool("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def test_xlsx_prints_on_one_a4_page_width(tmp_path: Path):
    """LibreOffice lays a sheet too wide for the page out on extra pages side by side:
    one page in all means the form fits one A4 width (and here one height too)."""
    _, out = _outputs("jiangmen-2021", tmp_path / "out")
    info = _pdfinfo(_pdf(out / "自评表.xlsx", tmp_path))
    assert info["Pages"] == "1"
    assert info["Page size"].startswith("595.") and "(A4)" in info["Page size"]


def test_docx_pdf_has_the_signature_and_the_form_on_the_page_width(tmp_path: Path):
    data, out = _outputs("jiangmen-2021", tmp_path / "out")
    pdf = _pdf(out / "自评报告.docx", tmp_path)
    pages = subprocess.run([_tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True, check=True)
    text = pages.stdout.split("\f")
    body_end = next(i for i, p in enumerate(text) if "附件：1．项目支出绩效自评表" in p)
    end = "".join(text[body_end].split())
    assert end.endswith("江门市市场监督管理局2022年1月5日—4—") or "江门市市场监督管理局2022年1月5日" in end
    form_page = next(i for i, p in enumerate(text) if "项目支出绩效自评表" in p and "项目名称" in p)
    # A table row wider than the page would be cut: the whole head row is on the page.
    squeezed = "".join(text[form_page + 1].split()) + "".join(text[form_page].split())
    # The first and the last column of the form (narrow heads wrap, so only one-line ones are looked for).
    for head in ("项目名称", "绩效指标", "三级指标", "偏差原因分析及改进措施", "年初预算数", "得分"):
        assert head in squeezed, head
    assert all(size.startswith("595.") for size in [_pdfinfo(pdf)["Page size"]])


@pytest.mark.parametrize("name", EXAMPLES)
def test_provenance_digests_find_every_input_file_again(name: str):
    data = json.loads((GOLDEN / f"{name}.self_evaluation.json").read_text(encoding="utf-8"))
    fund = REPO / "examples" / name
    by_digest = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in fund.rglob("*") if p.is_file()}
    inputs = data["provenance"]["inputs"]
    assert inputs[0]["name"] == "fund.yaml"
    for f in inputs:
        path = by_digest[f["sha256"]]
        assert path.relative_to(fund).as_posix() == f["name"]
    # Every data file of the directory fed the report.
    data_files = {p.relative_to(fund).as_posix() for p in fund.rglob("*.*") if p.suffix in (".csv", ".xlsx")}
    assert data_files == {f["name"] for f in inputs if f["kind"] != "fund"}


def test_rules_and_templates_digests_recompute_from_the_files():
    def digest(folder: Path) -> str:
        lines = sorted(
            f"{p.name}  {hashlib.sha256(p.read_bytes()).hexdigest()}\n"
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".")
        )
        return hashlib.sha256("".join(lines).encode()).hexdigest()

    assert rules_digest() == digest(RULES_DIR) and templates_digest() == digest(TEMPLATES_DIR)


def test_a_corrected_file_is_named_in_the_provenance(tmp_path: Path, db_url: str):
    from budget_monitor import store
    from budget_monitor.pipeline import load_month

    fund = tmp_path / "fund"
    shutil.copytree(REPO / "examples" / "jiangmen-2021", fund)
    load_month(fund, "2021-01", db_url)
    original = fund / "payments" / "2021-01_支出明细.csv"
    rows = list(csv.reader(io.StringIO(original.read_bytes().decode("gb18030"))))
    amount = rows[0].index("支付金额")
    rows[1][amount] = "1.00"
    buf = io.StringIO()
    csv.writer(buf).writerows(rows[:2])
    (fund / "payments" / "2021-01_更正.csv").write_text(buf.getvalue(), encoding="utf-8")
    load_month(fund, "2021-01", db_url)
    files = {f.name: f for f in input_files(store.open_store(db_url), "JM-2021-YPJG")}
    old, fix = files["payments/2021-01_支出明细.csv"], files["payments/2021-01_更正.csv"]
    assert old.rows_in_force == old.rows - 1 and old.corrected_by == ("payments/2021-01_更正.csv",)
    assert fix.rows == fix.rows_in_force == 1 and fix.corrected_by == ()
