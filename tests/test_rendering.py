"""The .docx as the finance office sees it: LibreOffice renders it to PDF with
the Chinese text and the 自评表 intact, in a CJK font (no missing glyphs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from budget_monitor.pipeline import close_month, load_month, run_year_end

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "jiangmen-2021"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # scripts/setup.sh installs them; a missing one is a set-up failure
        pytest.fail(f"{name} not installed (scripts/setup.sh installs it)")
    return path


def test_docx_renders_chinese_and_the_score_table_in_pdf(tmp_path: Path) -> None:
    soffice, pdftotext, pdffonts = _tool("soffice"), _tool("pdftotext"), _tool("pdffonts")
    fund = tmp_path / EXAMPLE.name
    shutil.copytree(EXAMPLE, fund)
    db = f"sqlite:///{tmp_path / 's.db'}"
    for m in range(1, 13):
        load_month(fund, f"2021-{m:02d}", db)
        close_month(fund, f"2021-{m:02d}", db, chart=False)
    out = tmp_path / "out"
    run_year_end(fund, 2021, out, db)
    subprocess.run(
        [
            soffice,
            "--headless",
            f"-env:UserInstallation=file://{tmp_path / 'lo'}",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(out / "自评报告.docx"),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    pdf = tmp_path / "自评报告.pdf"
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    squeezed = "".join(text.split())
    for phrase in (
        "一、项目基本情况",
        "为372.09万元，支出372.09万元，支出率100%",
        "自评得分为100分，绩效等级为优",
        "第二季度和第三季度支出进度不达序时进度",
        "年初预算数",
        "偏差原因分析及改进措施",
        "药品抽检批次",
    ):
        assert phrase in squeezed, phrase
    assert "\ufffd" not in text  # no replacement characters
    fonts = subprocess.run([pdffonts, str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "CJK" in fonts, fonts  # Chinese set in a CJK font, not a fallback box
