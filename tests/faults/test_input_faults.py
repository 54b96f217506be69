"""Issue #13, hostile input: the budget check cannot be fooled, every bad file
ends in quarantine + report + notice, the CLI behaves like the DAG, and the
year-end refuses a half-year. Each test asserts the store, the outbox and the
files afterwards, on SQLite and PostgreSQL where the store is involved."""

from __future__ import annotations

import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from budget_monitor import store
from budget_monitor.cli import main
from budget_monitor.config import load_fund_config
from budget_monitor.pipeline import MonthRejected, close_month, load_month, run_year_end

REPO = Path(__file__).resolve().parents[2]
JIANGMEN = REPO / "examples" / "jiangmen-2021"
CODE = "JM-2021-YPJG"
PAY_HEADER = "支付凭证号,预算单位,指标文号,支付金额,支付日期\n"
TAISHAN = "台山市市场监督管理局,江财工〔2021〕13号"

sys.path.insert(0, str(REPO / "tests" / "dags"))
from smtp_sink import SmtpSink  # noqa: E402


def _fund(tmp_path: Path) -> Path:
    dest = tmp_path / JIANGMEN.name
    shutil.copytree(JIANGMEN, dest)
    return dest


def _write(fund: Path, name: str, rows: list[str]) -> Path:
    path = fund / "payments" / name
    path.write_text(PAY_HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def _quarantined(fund: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((fund / "quarantine").glob("*.report.json"))]


def _pending_rejections(engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(store.outbox).where(store.outbox.c.kind == "rejection")
            ).scalar_one()
        )


def test_overflowing_amounts_are_rejected_and_the_fund_stays_usable(db_url: str, tmp_path: Path) -> None:
    """Item 1: ten rows of 9999999999999999.99 once wrapped the int64 sum, passed the
    budget check, stored 9,999,999,999,999,999,990 fen (PostgreSQL) or broke every
    later run (SQLite "integer overflow"). Now: rejected whole, nothing lands, the
    next genuine file loads."""
    fund = _fund(tmp_path)
    load_month(fund, "2021-01", db_url)
    engine = store.open_store(db_url)
    before = store.snapshot(engine, CODE)
    _write(fund, "2021-02_攻击.csv", [f"OV-{i},{TAISHAN},9999999999999999.99,2021-02-10" for i in range(10)])
    with pytest.raises(MonthRejected) as info:
        load_month(fund, "2021-02", db_url)
    (bad,) = info.value.result.rejected
    assert bad.name == "payments/2021-02_攻击.csv" and "（规则 PAY-013）" in bad.reason
    assert "另有 9 处错误" in bad.reason
    after = store.snapshot(engine, CODE)["payments"]
    assert set(before["payments"]) <= set(after)  # earlier good data stays
    assert not any(r[0].startswith("OV-") for r in after)  # nothing of the bad file landed
    (report,) = _quarantined(fund)
    assert report["failures"][0]["rule_id"] == "PAY-013" and report["failures"][0]["row"] == 2
    assert _pending_rejections(engine) == 1
    # The genuine February file loaded beside it; the fund's net is exact and within budget.
    assert store.net_paid_fen(engine, CODE) <= 372_090_000
    close_month(fund, "2021-02", db_url, chart=False)
    load_month(fund, "2021-03", db_url)  # later runs work (SQLite used to raise "integer overflow")


def test_over_budget_rejection_names_the_row_in_stderr_and_quarantine(tmp_path: Path) -> None:
    """Item 2: PAY-011 named no row (row: null)."""
    fund = _fund(tmp_path)
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["monthly", str(fund), "--month", "2021-01", "--db", db, "--no-send"]) == 0
    # The budget is 3,720,900.00 元; January spent some of it. Row 3 takes it over.
    _write(
        fund,
        "2021-02_超支.csv",
        [f"B-1,{TAISHAN},100.00,2021-02-10", f"B-2,{TAISHAN},3720000.00,2021-02-11", f"B-3,{TAISHAN},5.00,2021-02-12"],
    )
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["monthly", str(fund), "--month", "2021-02", "--db", db, "--no-send"]) == 2
    line = err.getvalue().strip()
    assert "\n" not in line
    assert line.startswith("输入被拒绝：payments/2021-02_超支.csv 第3行 列“支付金额”: 累计支付将超出全年预算")
    assert line.endswith("（规则 PAY-011）")
    (report,) = _quarantined(fund)
    fail = report["failures"][0]
    assert (fail["rule_id"], fail["row"], fail["column"], fail["header"]) == ("PAY-011", 3, "amount_fen", "支付金额")


def test_voucher_longer_than_the_store_column_is_quarantined_on_every_engine(db_url: str, tmp_path: Path) -> None:
    """Item 3: a 101-character 支付凭证号 crashed the PostgreSQL load (varchar(100))
    while SQLite kept it; the fund was blocked on every rerun."""
    fund = _fund(tmp_path)
    _write(fund, "2021-01_长凭证号.csv", [f"{'L' * 101},{TAISHAN},10.00,2021-01-10"])
    with pytest.raises(MonthRejected) as info:
        load_month(fund, "2021-01", db_url)
    (bad,) = info.value.result.rejected
    assert "（规则 PAY-015）" in bad.reason and "长 101 个字符，超过该列上限 100 个字符" in bad.reason
    loaded = {f.name for f in info.value.result.files if f.status == "loaded"}
    assert "payments/2021-01_支出明细.csv" in loaded  # the fund's other files still load
    engine = store.open_store(db_url)
    assert store.net_paid_fen(engine, CODE) > 0
    # A rerun changes nothing (the file is in quarantine).
    again = load_month(fund, "2021-01", db_url)
    assert not again.rejected and {f.status for f in again.files} <= {"skipped", "deferred"}


def _bomb_xlsx(path: Path, pad_mib: int = 40) -> Path:
    """A real, openable workbook whose first sheet carries ``pad_mib`` MiB of
    whitespace: a few hundred KB on disk, far over the 100x inflate ratio."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["支付凭证号", "预算单位", "指标文号", "支付金额", "支付日期"])
    buf = io.BytesIO()
    wb.save(buf)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<sheetData>", b"<sheetData>" + b" " * (pad_mib << 20), 1)
            dst.writestr(item, data)
    path.write_bytes(out.getvalue())
    return path


def test_xlsx_zip_bomb_is_quarantined_before_parsing(tmp_path: Path) -> None:
    """Item 3: a 1 MB xlsx inflating to 1 GiB took 3.3 GB RSS then crashed."""
    fund = _fund(tmp_path)
    db = f"sqlite:///{tmp_path / 's.db'}"
    bomb = _bomb_xlsx(fund / "payments" / "2021-01_炸弹.xlsx")
    assert bomb.stat().st_size < (1 << 20)
    with pytest.raises(MonthRejected) as info:
        load_month(fund, "2021-01", db)
    (bad,) = info.value.result.rejected
    assert "（规则 ING-004）" in bad.reason and "疑似压缩炸弹" in bad.reason
    assert any(f.status == "loaded" and f.kind == "payments" for f in info.value.result.files)
    assert not bomb.exists() and len(_quarantined(fund)) == 1


def test_xlsx_declaring_too_many_cells_is_refused(tmp_path: Path) -> None:
    from budget_monitor.ingest import IngestError, read_table

    path = _bomb_xlsx(tmp_path / "wide.xlsx", pad_mib=0)
    raw = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b'<dimension ref="A1:E1"/>', b'<dimension ref="A1:XFD1048576"/>')
                assert b"XFD1048576" in data
            dst.writestr(item, data)
    path.write_bytes(raw.getvalue())
    with pytest.raises(IngestError) as info:
        read_table(path, "payments")
    assert info.value.rule_id == "ING-004" and "单元格" in str(info.value)


def test_cli_sends_the_rejection_notice_in_the_same_run(tmp_path: Path, monkeypatch, capsys) -> None:
    """Item 4: the CLI raised before the outbox was flushed, so the 数据退回 notice
    waited for a later successful run. Now the month closes for what landed,
    the notice and the alerts go out in this run, exit 2."""
    fund = _fund(tmp_path)
    db = f"sqlite:///{tmp_path / 's.db'}"
    _write(fund, "2021-01_bad.csv", [f"X1,{TAISHAN},壹仟元,2021-01-10"])
    sink = SmtpSink().start()
    try:
        monkeypatch.setenv("BUDGET_MONITOR_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("BUDGET_MONITOR_SMTP_PORT", str(sink.port))
        assert main(["monthly", str(fund), "--month", "2021-01", "--db", db]) == 2
        subjects = sink.subjects()
    finally:
        sink.stop()
    assert any(s.startswith("【数据退回】") and "2021-01_bad.csv" in s for s in subjects)
    captured = capsys.readouterr()
    assert "JM-2021-YPJG 2021-01: 执行率" in captured.out  # the close ran
    assert captured.err.strip().startswith("输入被拒绝：payments/2021-01_bad.csv 第2行")
    engine = store.open_store(db)
    from budget_monitor.outbox import pending_count

    assert pending_count(engine, CODE) == 0
    assert "2021-01" in store.closed_months(engine, CODE)


def test_year_end_is_refused_until_december_is_closed(db_url: str, tmp_path: Path, capsys) -> None:
    """Item 5: year-end ran in May and produced "16.26分，差"; --no-send queued the mail."""
    fund = _fund(tmp_path)
    cfg = load_fund_config(fund)
    for m in range(1, 6):
        load_month(fund, f"2021-{m:02d}", db_url, cfg=cfg)
        close_month(fund, f"2021-{m:02d}", db_url, cfg=cfg, chart=False)
    out = tmp_path / "out"
    assert main(["year-end", str(fund), "--year", "2021", "--out", str(out), "--db", db_url, "--no-send"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "错误：2021年12月尚未结账（最近结账月份为 2021-05），不能生成正式的年度自评报告；"
        "请先完成12月的月度结账，或加 --draft 生成草稿（草稿不发送）"
    )
    assert not out.exists()
    # A draft: written, marked 草稿, never queued.
    assert main(["year-end", str(fund), "--year", "2021", "--out", str(out), "--db", db_url, "--draft"]) == 0
    assert capsys.readouterr().out.startswith("【草稿】")
    ev = json.loads((out / "self_evaluation.json").read_text(encoding="utf-8"))
    assert ev["draft"] is True
    for name in ("自评报告.html", "自评报告.md"):
        assert "【草稿】本年度12月尚未结账" in (out / name).read_text(encoding="utf-8"), name
    from docx import Document
    from openpyxl import load_workbook

    assert Document(str(out / "自评报告.docx")).paragraphs[0].text.startswith("【草稿】")
    assert load_workbook(out / "自评表.xlsx").active["A1"].value.endswith("（草稿）")
    engine = store.open_store(db_url)
    from budget_monitor.alerts import YEAR_END_REPORT
    from budget_monitor.outbox import stored_headers

    assert stored_headers(engine, CODE, YEAR_END_REPORT) == []
    # December closed: --no-send writes the report and queues nothing; without it, one mail.
    for m in range(6, 13):
        load_month(fund, f"2021-{m:02d}", db_url, cfg=cfg)
        close_month(fund, f"2021-{m:02d}", db_url, cfg=cfg, chart=False)
    assert main(["year-end", str(fund), "--year", "2021", "--out", str(out), "--db", db_url, "--no-send"]) == 0
    assert stored_headers(engine, CODE, YEAR_END_REPORT) == []
    assert "draft" not in json.loads((out / "self_evaluation.json").read_text(encoding="utf-8"))
    assert run_year_end(fund, 2021, out, db_url).queued == 1


def test_year_end_after_rejected_goals_names_the_file_and_rule(tmp_path: Path, capsys) -> None:
    """Item 6: the message said "绩效目标表分值合计为0分…" instead of naming goals.csv."""
    fund = _fund(tmp_path)
    db = f"sqlite:///{tmp_path / 's.db'}"
    goals = fund / "goals.csv"
    lines = goals.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",99"  # the weights no longer add up to 90
    goals.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["monthly", str(fund), "--month", "2021-01", "--db", db, "--no-send"]) == 2
    capsys.readouterr()
    assert main(["year-end", str(fund), "--year", "2021", "--out", str(tmp_path / "o"), "--db", db, "--draft"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("错误：绩效目标表 goals.csv 未通过校验，已于 ")
    assert "（规则 GOL-005）" in err and "请更正后重新提交" in err and "分值合计为0分" not in err
