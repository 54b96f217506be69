"""Run the real DAGs with ``dag.test()`` (in-process) against the example fund.

Metadata DB: SQLite in a temp AIRFLOW_HOME (conftest). Store: SQLite in
tmp. SMTP: an aiosmtpd server started here, as connection ``smtp_default``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest

from smtp_sink import attachment_names, body_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "jiangmen-2021"
MONTHLY, YEAR_END = "budget_monthly_monitor", "budget_year_end_report"

pytestmark = pytest.mark.airflow


@pytest.fixture
def fund_env(pipeline_env: dict) -> dict:
    """A private inbox holding a copy of the example fund, a private store and reports folder."""
    shutil.copytree(EXAMPLE, pipeline_env["inbox"] / EXAMPLE.name)
    return {**pipeline_env, "fund": pipeline_env["inbox"] / EXAMPLE.name}


def _states(dr) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dr.get_task_instances()}


def _snapshot(db: str) -> dict:
    from budget_monitor import store
    from budget_monitor.config import load_fund_config

    return store.snapshot(store.open_store(db), load_fund_config(EXAMPLE).code)


def test_monthly_run_loads_closes_and_mails(dagbag, fund_env, smtp):
    dr = dagbag.dags[MONTHLY].test(run_conf={"month": "2021-06"})

    assert str(dr.state) == "success", _states(dr)
    assert set(_states(dr).values()) == {"success"}
    data = _snapshot(fund_env["db"])
    pay_dates = [v for row in data["payments"] for v in row if isinstance(v, date)]
    assert pay_dates and max(pay_dates) <= date(2021, 6, 30), "June close loads nothing dated after June"
    assert data["inspections"]
    # The month's alerts went out through smtp_default, to the fund's recipients.
    mails = smtp.wait_for(lambda m: "2021" in str(m["Subject"]))
    assert mails, smtp.subjects()
    assert "caiwu@scjgj.jiangmen.example.cn" in mails[0]["X-Envelope-To"]
    # The close is published for downstream DAGs with the month in its extra.
    assert {"year": 2021, "month": 6, "period": "2021-06"} in _published_extras()


def test_two_batches_close_each_after_its_load_and_a_rerun_changes_nothing(dagbag, fund_env, smtp):
    """Two funds, one per batch: a load and a close per map index, both funds'
    alerts mailed by the one send_alerts; a rerun of the month stores the same
    rows, queues nothing and mails nothing."""
    from budget_monitor import outbox, store

    second = fund_env["inbox"] / f"{EXAMPLE.name}-b"
    shutil.copytree(EXAMPLE, second)
    yaml = second / "fund.yaml"
    yaml.write_text(
        yaml.read_text(encoding="utf-8").replace("code: JM-2021-YPJG", "code: JM-2021-YPJG-B", 1), encoding="utf-8"
    )
    conf = {"month": "2021-06", "fund": "", "funds_per_task": 1}
    dr = dagbag.dags[MONTHLY].test(run_conf=conf)

    states = _states(dr)
    assert str(dr.state) == "success", states
    for task_id in ("load_funds", "close_funds"):
        assert states[(task_id, 0)] == states[(task_id, 1)] == "success", states
    engine = store.open_store(fund_env["db"])
    first = {c: store.snapshot(engine, c) for c in ("JM-2021-YPJG", "JM-2021-YPJG-B")}
    # The June alerts of both funds, in the recipients' digests (X-Budget-Monitor-Funds).
    sent = smtp.wait_for(lambda m: "JM-2021-YPJG-B" in str(m["X-Budget-Monitor-Funds"]).split(", "))
    assert sent and smtp.wait_for(lambda m: "JM-2021-YPJG" in str(m["X-Budget-Monitor-Funds"]).split(", "))
    assert outbox.pending_count(engine) == 0
    mailed = len(smtp.messages)

    again = dagbag.dags[MONTHLY].test(run_conf=conf)
    assert str(again.state) == "success", _states(again)
    assert {c: store.snapshot(engine, c) for c in first} == first
    assert outbox.pending_count(engine) == 0 and len(smtp.messages) == mailed


def test_rejected_file_fails_the_load_and_tells_the_finance_office(dagbag, fund_env, smtp, caplog, monkeypatch):
    monkeypatch.setenv("BUDGET_MONITOR_DOCS_URL", "http://airflow.intranet/budget-monitor/docs")
    bad = fund_env["fund"] / "payments" / "2021-06_补充支出.csv"
    bad.write_text(
        "支付凭证号,预算单位,指标文号,支付金额,支付日期,业务类型\n"
        "440700ZF202199901,江门市市场监督管理局,江财工〔2021〕12号,壹仟元,2021-06-15,支付\n",
        encoding="utf-8",
    )
    sha = hashlib.sha256(bad.read_bytes()).hexdigest()
    dr = dagbag.dags[MONTHLY].test(run_conf={"month": "2021-06"})

    states = _states(dr)
    assert str(dr.state) == "failed", states
    assert states[("load_funds", 0)] == "failed"
    assert states[("publish_close", -1)] == "upstream_failed"  # no monthly_close event
    # The file is in quarantine with its report; nothing of it is stored; the good files are.
    quarantined = list((fund_env["fund"] / "quarantine").glob("*2021-06_补充支出.csv.report.json"))
    assert quarantined and not bad.exists()
    data = _snapshot(fund_env["db"])
    assert data["payments"] and not any("440700ZF202199901" in str(r) for r in data["payments"])
    # The reason (file, row, column, rule) is in the task log and in the mail.
    # The mail is the outbox's rejection notice (queued by load_month, keyed by the
    # file's sha256, sent by send_alerts which runs all_done), once: the failure
    # notifier no longer mails rejections itself.
    assert states[("send_alerts", -1)] == "success"
    mails = smtp.wait_for(lambda m: "退回" in str(m["Subject"]))
    assert len(mails) == 1, smtp.subjects()
    assert mails[0]["X-Budget-Monitor-Key"] == f"JM-2021-YPJG/{sha[:16]}/rejection"
    reason = json.loads(quarantined[0].read_text(encoding="utf-8"))["reason"]
    assert "2021-06_补充支出.csv" in reason and "支付金额" in reason and "壹仟元" in reason, reason
    body = body_text(mails[0])
    assert reason in body
    assert "caiwu@scjgj.jiangmen.example.cn" in mails[0]["X-Envelope-To"]
    assert reason in caplog.text + _task_log(dr, "load_funds")
    # build_data_docs ran after the failed load: the file's Data Docs page, linked from the notice.
    assert states[("build_data_docs", 0)] == "success", states
    name = quarantined[0].name.removesuffix(".report.json")
    page = fund_env["fund"] / "data_docs" / "validations" / "payments" / f"{name}.html"
    assert page.is_file() and "壹仟元" in page.read_text(encoding="utf-8")
    assert f"validations/payments/{quote(name)}.html" in body


def test_smtp_down_fails_send_alerts_but_still_publishes_the_close(dagbag, fund_env, smtp, monkeypatch):
    """Mail is not a condition of the close: send_alerts fails visibly, publish_close emits
    the asset, and the mails stay pending in the outbox for the next flush."""
    from budget_monitor import outbox, store

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    down = json.loads(smtp.connection_json())
    down["port"] = dead
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(down))

    dr = dagbag.dags[MONTHLY].test(run_conf={"month": "2021-09"})

    states = _states(dr)
    assert states[("send_alerts", -1)] == "failed", states
    assert states[("publish_close", -1)] == "success", states
    assert states[("load_funds", 0)] == "success" and states[("close_funds", 0)] == "success", states
    assert str(dr.state) == "failed"  # the mail failure stays visible on the run
    assert {"year": 2021, "month": 9, "period": "2021-09"} in _published_extras()
    engine = store.open_store(fund_env["db"])
    pending = outbox.pending_count(engine)
    assert pending > 0 and smtp.subjects() == []
    # SMTP back: the next flush sends exactly what was pending.
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection_json())
    from budget_monitor_airflow.monthly import send_alerts

    assert send_alerts() == pending
    assert outbox.pending_count(engine) == 0 and len(smtp.subjects()) == pending


def _published_extras() -> list[dict]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [e.extra for e in session.scalars(select(AssetEvent)).all()]


def _task_log(dr, task_id: str) -> str:
    home = Path(__import__("os").environ["AIRFLOW_HOME"])
    logs = sorted(home.glob(f"logs/dag_id={dr.dag_id}/run_id={dr.run_id}/task_id={task_id}/**/*.log"))
    return "\n".join(p.read_text(errors="replace") for p in logs)


def test_december_close_then_year_end_report(dagbag, fund_env, smtp):
    """The December close publishes the asset; the year-end DAG (run here by hand, the
    scheduler part is tests/distributed) writes the outputs and mails .docx + .xlsx."""
    dr = dagbag.dags[MONTHLY].test(run_conf={"month": "2021-12"})
    assert str(dr.state) == "success", _states(dr)

    smtp.clear()
    from budget_monitor_airflow.responder import in_process

    responder, client = in_process(lambda detail: ("approver", "user", ["批准"], {"comment": ""}))
    responder.start()  # the finance office approves the draft (tests/dags/test_loop_dags.py)
    try:
        dr = dagbag.dags[YEAR_END].test(run_conf={"year": 2021})
    finally:
        responder.stop()
        client.__exit__(None, None, None)
    assert str(dr.state) == "success", _states(dr)
    out = fund_env["reports"] / "JM-2021-YPJG" / "2021"
    names = {p.name for p in out.rglob("*") if p.is_file()}
    assert "self_evaluation.json" in names
    assert any(n.endswith(".docx") for n in names) and any(n.endswith(".xlsx") for n in names)
    mails = smtp.wait_for(lambda m: any(a.endswith(".docx") for a in attachment_names(m)))
    assert mails, smtp.subjects()
    attached = attachment_names(mails[0])
    assert any(a.endswith(".xlsx") for a in attached)
