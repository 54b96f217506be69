"""`budget-monitor audit`: the fund-year's corrections, rejections and mails sent, on both engines."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from sqlalchemy import insert

from budget_monitor import store
from budget_monitor.cli import main
from budget_monitor.pipeline import load_month

REPO = Path(__file__).resolve().parents[1]
CODE = "JM-2021-YPJG"


def _fund_with_history(tmp_path: Path, db_url: str) -> Path:
    fund = tmp_path / "fund"
    shutil.copytree(REPO / "examples" / "jiangmen-2021", fund)
    load_month(fund, "2021-01", db_url)
    original = fund / "payments" / "2021-01_支出明细.csv"
    rows = list(csv.reader(io.StringIO(original.read_bytes().decode("gb18030"))))
    rows[1][rows[0].index("支付金额")] = "1.00"
    buf = io.StringIO()
    csv.writer(buf).writerows(rows[:2])
    (fund / "payments" / "2021-01_更正.csv").write_text(buf.getvalue(), encoding="utf-8")
    load_month(fund, "2021-01", db_url)  # one value corrected
    engine = store.open_store(db_url)
    # Text a spreadsheet would run, as a finance office could send it.
    store.record_rejection(
        engine,
        fund_code=CODE,
        kind="payments",
        name='=HYPERLINK("http://x")',
        sha256="0" * 64,
        reason="@SUM(1+1) 金额格式错误",
        quarantine_path=None,
    )
    now = store.now_local()
    with engine.begin() as conn:
        for status, subject in (("sent", "-2+3 预警"), ("pending", "未发送")):
            conn.execute(
                insert(store.outbox).values(
                    fund_code=CODE,
                    unit="",
                    period="2021-01",
                    kind=f"month_{status}",
                    subject=subject,
                    recipients="caiwu@example.cn",
                    message="",
                    status=status,
                    attempts=1,
                    created_at=now,
                    sent_at=now if status == "sent" else None,
                )
            )
    return fund


def test_audit_export_on_both_engines(tmp_path: Path, db_url: str, capsys):
    from openpyxl import load_workbook

    fund = _fund_with_history(tmp_path, db_url)
    out = tmp_path / "audit"
    assert main(["audit", str(fund), "--year", "2021", "--out", str(out), "--db", db_url]) == 0
    assert set(capsys.readouterr().out.split()) == {
        str(out / n) for n in ("审计记录.xlsx", "更正记录.csv", "退回记录.csv", "邮件发送记录.csv")
    }
    corr = list(csv.reader(io.StringIO((out / "更正记录.csv").read_text(encoding="utf-8-sig"))))
    assert corr[0][:4] == ["更正时间", "数据表", "记录键", "字段"]
    assert len(corr) == 2 and corr[1][1:4] == ["payment", "440700ZF202100001", "amount_fen"]
    assert corr[1][5:7] == ["100", "payments/2021-01_更正.csv"]
    rej = list(csv.reader(io.StringIO((out / "退回记录.csv").read_text(encoding="utf-8-sig"))))
    assert rej[1][2] == '\'=HYPERLINK("http://x")' and rej[1][4] == "'@SUM(1+1) 金额格式错误"
    mails = list(csv.reader(io.StringIO((out / "邮件发送记录.csv").read_text(encoding="utf-8-sig"))))
    assert [m[4] for m in mails[1:]] == ["'-2+3 预警"]  # only the sent one, made inert
    wb = load_workbook(out / "审计记录.xlsx")
    assert wb.sheetnames == ["更正记录", "退回记录", "邮件发送记录"]
    cell = wb["退回记录"]["C2"]
    assert cell.value == '=HYPERLINK("http://x")' and cell.data_type == "s" and cell.quotePrefix
    assert wb["邮件发送记录"]["E2"].value == "-2+3 预警" and wb["邮件发送记录"]["E2"].quotePrefix
    assert all(c.data_type != "f" for ws in wb for row in ws.iter_rows() for c in row)


def test_audit_refuses_another_year(tmp_path: Path, capsys):
    fund = tmp_path / "fund"
    shutil.copytree(REPO / "examples" / "jiangmen-2021", fund)
    assert main(["audit", str(fund), "--year", "2022", "--out", str(tmp_path / "a")]) == 2
    assert "年度 2022 与 fund.yaml 的年度 2021 不符" in capsys.readouterr().err
