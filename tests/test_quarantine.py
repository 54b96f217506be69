"""quarantine.py: rejected files move aside with a machine-readable report."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from budget_monitor.ingest import IngestError, read_table
from budget_monitor.quarantine import InputRejected, quarantine, reject
from budget_monitor.validate import ValidationContext, report_for_ingest_error, validate_table
from ingest_fixtures import PAY_HEADER, payment, write_csv

CTX = dict(fund_year=2021, units=frozenset({"江门市市场监督管理局"}), doc_nos=frozenset({"江财工〔2021〕12号"}))


def _rejected(fund: Path, name: str = "2021-03_支出明细.csv"):
    path = write_csv(fund / "payments" / name, PAY_HEADER, [payment("V1"), payment("V2", "壹仟元")], "gbk")
    ctx = ValidationContext(**CTX, fund_dir=fund)
    report = validate_table(read_table(path, "payments"), ctx)
    assert not report.ok
    return path, report


def test_quarantine_moves_file_and_writes_report(tmp_path: Path) -> None:
    path, report = _rejected(tmp_path)
    data = path.read_bytes()
    now = datetime(2021, 4, 1, 1, 2, 3, tzinfo=ZoneInfo("UTC"))
    target = quarantine(path, report, tmp_path / "quarantine", now=now)
    assert not path.exists()
    assert target.read_bytes() == data
    assert target.name == f"20210401T090203_{report.sha256[:8]}_2021-03_支出明细.csv"
    body = json.loads((target.parent / (target.name + ".report.json")).read_text(encoding="utf-8"))
    assert body["file"] == "payments/2021-03_支出明细.csv"
    assert body["sha256"] == report.sha256
    assert body["rejected_at"] == "2021-04-01T09:02:03+08:00"
    assert body["ok"] is False
    assert body["failures"][0]["rule_id"] == "PAY-002"
    assert body["failures"][0]["row"] == 3
    assert body["failures"][0]["column"] == "amount_fen"
    assert body["failures"][0]["value"] == "壹仟元"
    assert body["reason"] == "payments/2021-03_支出明细.csv 第3行 列“支付金额”: 金额无法识别：“壹仟元”（规则 PAY-002）"
    assert body["quarantined_as"] == target.name


def test_quarantine_names_never_collide(tmp_path: Path) -> None:
    now = datetime(2021, 4, 1, 9, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    targets = []
    for _ in range(3):
        path, report = _rejected(tmp_path)
        targets.append(quarantine(path, report, tmp_path / "quarantine", now=now))
    assert len(set(targets)) == 3
    assert all(t.exists() and Path(str(t) + ".report.json").exists() for t in targets)
    assert not list((tmp_path / "quarantine").glob("*.tmp"))


def test_default_time_is_shanghai(tmp_path: Path) -> None:
    path, report = _rejected(tmp_path)
    target = quarantine(path, report, tmp_path / "q")
    body = json.loads(Path(str(target) + ".report.json").read_text(encoding="utf-8"))
    assert body["rejected_at"].endswith("+08:00")


def test_input_rejected_carries_report_and_reason(tmp_path: Path) -> None:
    path, report = _rejected(tmp_path)
    exc = reject(path, report, tmp_path / "quarantine")
    assert isinstance(exc, ValueError)
    assert exc.report is report
    assert exc.quarantined is not None and exc.quarantined.exists()
    assert str(exc) == exc.reason == report.first_reason()
    assert "第3行" in exc.reason and "PAY-002" in exc.reason
    with pytest.raises(InputRejected, match="PAY-002"):
        raise exc


def test_unreadable_file_is_quarantined_too(tmp_path: Path) -> None:
    path = tmp_path / "payments" / "2021-04_支出明细.xlsx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(IngestError) as caught:
        read_table(path, "payments")
    report = report_for_ingest_error(caught.value, "payments", ValidationContext(fund_dir=tmp_path))
    target = quarantine(path, report, tmp_path / "quarantine")
    body = json.loads(Path(str(target) + ".report.json").read_text(encoding="utf-8"))
    assert body["failures"][0]["rule_id"] == "ING-002"
    assert body["reason"].startswith("payments/2021-04_支出明细.xlsx: XLSX 文件已损坏或不完整")
