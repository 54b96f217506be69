"""The monthly digest on the example year, through the real DAGs (``dag.test()``) and
the real SMTP server (conftest ``smtp``): who gets how many mails.

The example inbox as it is committed: examples/jiangmen-2021 and the department's
examples/contacts.csv (台山 and 开平 have a contact; 恩平 and 江门 fall back to the
finance office). fund.yaml says nothing about ``alerts``: the default, digest.
One mail per alert was 50 for the year (49 alerts and the year-end report), each
to both finance-office addresses; the finance office now gets at most 13.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from smtp_sink import SmtpSink, body_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "jiangmen-2021"
MONTHLY, YEAR_END = "budget_monthly_monitor", "budget_year_end_report"
CAIWU, YAOJIANKE = "caiwu@scjgj.jiangmen.example.cn", "yaojianke@scjgj.jiangmen.example.cn"
TAISHAN, KAIPING = "liming@scjgj.taishan.example.cn", "chenfang@scjgj.kaiping.example.cn"

pytestmark = pytest.mark.airflow


@pytest.fixture
def year(pipeline_env: dict, smtp: SmtpSink, dagbag) -> dict:
    """The example inbox closed January to December by the monthly DAG, then the year
    end approved by the approver; the SMTP server's messages and the store."""
    inbox, db = pipeline_env["inbox"], pipeline_env["db"]
    shutil.copytree(EXAMPLE, inbox / EXAMPLE.name)
    shutil.copy(EXAMPLE.parent / "contacts.csv", inbox / "contacts.csv")
    for m in range(1, 13):
        dr = dagbag.dags[MONTHLY].test(run_conf={"month": f"2021-{m:02d}"})
        assert str(dr.state) == "success", (m, {(t.task_id, t.map_index): t.state for t in dr.get_task_instances()})
    from budget_monitor_airflow.responder import in_process

    responder, client = in_process(lambda detail: ("approver", "user", ["批准"], {"comment": "同意"}))
    responder.start()
    try:
        dr = dagbag.dags[YEAR_END].test(run_conf={"year": 2021})
    finally:
        responder.stop()
        client.__exit__(None, None, None)
    assert str(dr.state) == "success"
    smtp.wait_for(lambda m: "绩效自评" in str(m["Subject"]))
    return {"db": db, "inbox": inbox}


def _to(msg) -> list[str]:
    return [a.strip() for a in str(msg["X-Envelope-To"]).split(",")]


def test_example_year_finance_office_gets_at_most_13_mails_units_get_theirs(year: dict, smtp: SmtpSink, dagbag):
    from budget_monitor import outbox, store
    from sqlalchemy import func, select

    per_address = Counter(a for m in smtp.messages for a in _to(m))
    # The finance office: one digest per month close with anything due, and the report.
    for office in (CAIWU, YAOJIANKE):
        assert per_address[office] <= 13, per_address
    caiwu = [m for m in smtp.messages if CAIWU in _to(m)]
    digests = [m for m in caiwu if "月度汇总" in str(m["Subject"])]
    reports = [m for m in caiwu if "绩效自评" in str(m["Subject"])]
    assert len(reports) == 1 and len(digests) == len(caiwu) - 1 == 11, [str(m["Subject"]) for m in caiwu]
    assert len({str(m["Subject"]) for m in digests}) == len(digests)  # one per month
    # Every one of the year's 49 alerts was carried by a digest (none went on its own).
    engine = store.open_store(year["db"])
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(
                select(store.outbox.c.status, func.count())
                .where(store.outbox.c.kind.in_(("month_warning", "quarter_lagging")))
                .group_by(store.outbox.c.status)
            ).all()
        )
    assert kinds == {"digested": 49}
    june = next(m for m in digests if "2021年6月" in str(m["Subject"]))
    text = body_text(june)
    assert "2021年第二季度" in text and "台山市市场监督管理局" in text
    assert "恩平市市场监督管理局尚未登记联系人" in text  # the fallback, said in the office's digest

    # The units with a contact get their own digests, about their unit only, To them alone.
    taishan = [m for m in smtp.messages if TAISHAN in _to(m)]
    kaiping = [m for m in smtp.messages if KAIPING in _to(m)]
    assert len(taishan) == 11 and len(kaiping) == 9, per_address
    for m in taishan:
        assert _to(m) == [TAISHAN] and str(m["To"]) == TAISHAN and m["Cc"] is None
        body = body_text(m)
        assert body.startswith("台山市市场监督管理局：") and "开平" not in body and "资金整体" not in body
    assert set(per_address) == {CAIWU, YAOJIANKE, TAISHAN, KAIPING}  # nobody else, no unit without a contact

    # A rerun of a month close sends nothing twice (exactly once per recipient and month).
    mailed = len(smtp.messages)
    dr = dagbag.dags[MONTHLY].test(run_conf={"month": "2021-06"})
    assert str(dr.state) == "success"
    assert len(smtp.messages) == mailed and outbox.pending_count(engine) == 0
