"""The `budget-monitor` console script: exit codes and one-line reasons (data contract "Command line")."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from budget_monitor.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "jiangmen-2021"


def _fund(tmp_path: Path) -> Path:
    dest = tmp_path / EXAMPLE.name
    shutil.copytree(EXAMPLE, dest)
    return dest


def test_monthly_exits_zero_and_prints_the_month(tmp_path: Path, capsys) -> None:
    fund = _fund(tmp_path)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["monthly", str(fund), "--month", "2021-06", "--db", db, "--no-send"]) == 0
    out = capsys.readouterr().out
    assert "JM-2021-YPJG 2021-06" in out and "执行率 38.20%" in out and "序时进度 50.00%" in out


def test_rejected_input_exits_nonzero_with_one_line_reason(tmp_path: Path) -> None:
    fund = _fund(tmp_path)
    (fund / "payments" / "2021-01_bad.csv").write_text(
        "支付凭证号,预算单位,指标文号,支付金额,支付日期\n"
        "X1,台山市市场监督管理局,江财工〔2021〕13号,壹仟元,2021-01-10\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "budget-monitor"),
            "monthly",
            str(fund),
            "--month",
            "2021-01",
            "--db",
            f"sqlite:///{tmp_path / 'x.db'}",
            "--no-send",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["输入被拒绝：payments/2021-01_bad.csv 第2行 列“支付金额”: 金额无法识别：“壹仟元”（规则 PAY-002）"]


def test_bad_fund_yaml_exits_two(tmp_path: Path, capsys) -> None:
    fund = _fund(tmp_path)
    text = (fund / "fund.yaml").read_text(encoding="utf-8")
    (fund / "fund.yaml").write_text(text.replace("policy: linear_month", "policy: weekly"), encoding="utf-8")
    assert main(["monthly", str(fund), "--month", "2021-01", "--no-send"]) == 2
    err = capsys.readouterr().err
    assert "pace.policy" in err and "fund.yaml" in err


def test_year_end_writes_the_contract_outputs(tmp_path: Path, capsys) -> None:
    fund = _fund(tmp_path)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    for m in range(1, 13):
        assert main(["monthly", str(fund), "--month", f"2021-{m:02d}", "--db", db, "--no-send"]) == 0
    out = tmp_path / "out"
    assert main(["year-end", str(fund), "--year", "2021", "--out", str(out), "--db", db, "--no-send"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"self_evaluation.json", "自评报告.docx", "自评报告.html", "自评报告.md", "自评表.xlsx"} <= names
    assert any(n.endswith(".png") for n in names)
    assert "100分，等级优" in capsys.readouterr().out


def test_unsent_mails_exit_four_and_go_out_with_the_next_run(tmp_path: Path, monkeypatch, capsys) -> None:
    """Issue #13 item 7: the CLI says how many mails remain unsent (exit 4); the next run sends them."""
    import socket
    import sys as _sys

    from budget_monitor import store
    from budget_monitor.outbox import pending_count

    _sys.path.insert(0, str(REPO / "tests" / "dags"))
    from smtp_sink import SmtpSink

    fund = _fund(tmp_path)
    # One mail per alert (alerts.mode: each): enough mails for the breaker to trip
    # (the June digests are one per recipient, two here).
    yaml = fund / "fund.yaml"
    yaml.write_text(yaml.read_text(encoding="utf-8") + "alerts:\n  mode: each\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("BUDGET_MONITOR_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BUDGET_MONITOR_SMTP_PORT", str(dead))
    assert main(["monthly", str(fund), "--month", "2021-06", "--db", db]) == 4
    captured = capsys.readouterr()
    pending = pending_count(store.open_store(db), "JM-2021-YPJG")
    assert pending > 0 and f"待发送 {pending}" in captured.out
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"邮件未全部发出：{pending} 封仍在待发送队列（邮件服务器连续 3 次连接失败")
    sink = SmtpSink().start()
    try:
        monkeypatch.setenv("BUDGET_MONITOR_SMTP_PORT", str(sink.port))
        assert main(["monthly", str(fund), "--month", "2021-06", "--db", db]) == 0
        assert len(sink.messages) == pending
    finally:
        sink.stop()
    assert pending_count(store.open_store(db), "JM-2021-YPJG") == 0
