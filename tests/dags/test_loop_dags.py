"""The finance office's loop through the real DAGs (``dag.test()``) and Airflow's
own Human-in-the-loop records: units answer the quarter-end requests, the
approver signs off the year-end report before it is mailed, a Viewer can do
neither. Answers are given through the public REST API (responder.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from loop_helpers import EXAMPLE, TAISHAN, closed_through, unit_of
from smtp_sink import attachment_names, body_text

CODE = "JM-2021-YPJG"
FEEDBACK, YEAR_END = "budget_unit_feedback", "budget_year_end_report"

pytestmark = pytest.mark.airflow


@pytest.fixture
def env(pipeline_env: dict) -> dict:
    return pipeline_env


def _states(dr) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dr.get_task_instances()}


def _run_answering(dag, conf: dict, answer):
    """dag.test() while a responder answers through the REST API; returns (run, responder)."""
    from budget_monitor_airflow.responder import in_process

    responder, client = in_process(answer)
    responder.start()
    try:
        dr = dag.test(run_conf=conf)
    finally:
        responder.stop()
        client.__exit__(None, None, None)
    return dr, responder


def test_quarter_end_requests_are_answered_and_stored(dagbag, env, smtp, monkeypatch):
    from budget_monitor import feedback, store

    closed_through(env["inbox"], env["db"], 6)
    # The department's contacts: each unit answers with its own account and is mailed the request.
    shutil.copy(EXAMPLE.parent / "contacts.csv", env["inbox"] / "contacts.csv")
    monkeypatch.setenv("BUDGET_MONITOR_UI_URL", "https://budget.example.cn/airflow/")
    accounts = {TAISHAN: "taishan", "开平市市场监督管理局": "kaiping", "鹤山市市场监督管理局": "heshan"}
    smtp.clear()  # the closes' own alerts
    tried_as_viewer: list[int] = []

    def answer(detail: dict):
        unit = unit_of(detail)
        if not tried_as_viewer:  # a Viewer cannot answer for anyone
            tried_as_viewer.append(0)
            return ("viewer", "viewer", ["提交"], {"cause": "x", "measures": "y"})
        user = accounts.get(unit, "caiwu")
        return (user, "user", ["提交"], {"cause": f"{unit}招标延期", "measures": "9月底前完成支付"})

    dr, responder = _run_answering(dagbag.dags[FEEDBACK], {"month": "2021-06"}, answer)

    states = _states(dr)
    assert str(dr.state) == "success", states
    assert responder.answered[0]["user"] == "viewer" and responder.answered[0]["status"] == 403
    asked = [k for k in states if k[0] == "ask_units"]
    assert asked and all(states[k] == "success" for k in asked)
    assert states[("remind", -1)] == "success"  # nobody late: no reminder, no second request
    engine = store.open_store(env["db"])
    got = {r.unit: r for r in feedback.requests(engine, CODE, 2021)}
    assert len(got) == len(asked) and TAISHAN in got
    assert all(r.status == "answered" and r.quarter == 2 and r.channel == "hitl" for r in got.values())
    assert (got[TAISHAN].answered_by, got[TAISHAN].cause) == ("taishan", f"{TAISHAN}招标延期")
    # Each unit asked that has a contact was mailed its request once, To its contact only;
    # the units without one (恩平, 江门) are answered for by the finance office, unmailed.
    requests = [m for m in smtp.messages if str(m["Subject"]).startswith("【核实反馈】")]
    with_contact = [u for u in got if u in accounts]
    assert len(requests) == len(with_contact) and len(with_contact) < len(asked), smtp.subjects()
    (mail,) = [m for m in requests if TAISHAN in str(m["Subject"])]
    assert str(mail["To"]) == "liming@scjgj.taishan.example.cn" and mail["Cc"] is None, mail["Cc"]
    assert "liming@scjgj.taishan.example.cn" in mail["X-Envelope-To"]
    text = body_text(mail)
    assert "2021年第二季度" in text and "反馈截止" in text and "北京时间" in text
    assert "https://budget.example.cn/airflow/dags/budget_unit_feedback/runs/" in text
    assert "/tasks/ask_units/required_actions?map_index=" in text
    assert not [m for m in smtp.messages if str(m["Subject"]).startswith("【催办】")]
    # A rerun of the month asks nobody again, and mails nobody.
    before = len(smtp.messages)
    dr2, again = _run_answering(dagbag.dags[FEEDBACK], {"month": "2021-06"}, answer)
    assert str(dr2.state) == "success" and again.answered == []
    assert len(smtp.messages) == before, smtp.subjects()[before:]
    # A month that is not a quarter end asks nobody.
    dr3, none = _run_answering(dagbag.dags[FEEDBACK], {"month": "2021-05"}, answer)
    assert str(dr3.state) == "success" and none.answered == []


def test_year_end_report_is_mailed_only_after_approval(dagbag, env, smtp):
    from budget_monitor import approval, store

    closed_through(env["inbox"], env["db"], 12)
    out = env["reports"] / CODE / "2021"
    seen_at_decision: list[dict] = []

    def send_back(detail: dict):
        seen_at_decision.append(json.loads((out / "self_evaluation.json").read_text(encoding="utf-8")))
        if len(seen_at_decision) == 1:
            return ("viewer", "viewer", ["批准"], {"comment": ""})  # refused: 403
        return ("approver", "user", ["退回"], {"comment": "十二月支付凭证待核对"})

    dr, responder = _run_answering(dagbag.dags[YEAR_END], {"year": 2021}, send_back)
    states = _states(dr)
    assert [a["status"] for a in responder.answered] == [403, 200]
    assert seen_at_decision[0].get("draft") is True  # the approver reviews a draft
    assert {s for (t, _), s in states.items() if t == "email_report"} == {"skipped"}, states
    assert not [m for m in smtp.messages if attachment_names(m)], smtp.subjects()
    engine = store.open_store(env["db"])
    sent_back = approval.latest(engine, CODE, 2021)
    assert (sent_back.decision, sent_back.decided_by, sent_back.comment) == (
        "rejected",
        "approver",
        "十二月支付凭证待核对",
    )
    assert json.loads((out / "self_evaluation.json").read_text(encoding="utf-8")).get("draft") is True

    def approve(detail: dict):
        return ("approver", "user", ["批准"], {"comment": "同意"})

    dr, _ = _run_answering(dagbag.dags[YEAR_END], {"year": 2021}, approve)
    assert str(dr.state) == "success", _states(dr)
    final = json.loads((out / "self_evaluation.json").read_text(encoding="utf-8"))
    assert "draft" not in final
    assert final["approval"]["decided_by"] == "approver" and final["approval"]["decision"] == "approved"
    assert final["total_score"] == 100.0
    (md,) = out.glob("*.md")
    assert "本报告经approver于" in md.read_text(encoding="utf-8")  # 附件3 数据来源 says who signed off
    mails = smtp.wait_for(lambda m: any(a.endswith(".docx") for a in attachment_names(m)))
    assert len(mails) == 1, smtp.subjects()
    assert [d.decision for d in approval.history(engine, CODE, 2021)] == ["rejected", "approved"]


def test_unanswered_request_is_reminded_once_then_closed(env, smtp):
    """The timeout path (the scheduler resumes the task with the defaults and no
    respondent) through the same functions the operators call (and their HITL
    notifier's mails: exactly once each, through the outbox)."""
    from budget_monitor import feedback, store

    from budget_monitor_airflow import feedback as glue

    closed_through(env["inbox"], env["db"], 6)
    smtp.clear()
    (req, *_) = [r for r in glue.plan("2021-06") if r["unit"] == TAISHAN]
    # No contacts file yet: nobody to mail (the finance office answers under Required Actions).
    assert glue.mail_requests([req], task_id="ask_units") == 0
    shutil.copy(EXAMPLE.parent / "contacts.csv", env["inbox"] / "contacts.csv")
    assert glue.mail_requests([req], task_id="ask_units") == 1
    assert glue.mail_requests([req], task_id="ask_units") == 0  # a retried task mails nobody twice
    timed_out = {"chosen_options": ["提交"], "params_input": {"cause": "", "measures": ""}, "responded_by_user": None}
    late = glue.record(req, timed_out)
    assert late == {**req, "outcome": "late"}
    (reminder,) = glue.remind([late, {**req, "unit": "开平市市场监督管理局", "outcome": "answered"}])
    assert reminder["subject"].startswith("【催办】") and "反馈期限已过" in reminder["body"]
    assert glue.remind([late]) == []  # once only
    assert glue.mail_requests([reminder], task_id="ask_again", reminder=True) == 1
    assert glue.mail_requests([reminder], task_id="ask_again", reminder=True) == 0
    mails = smtp.wait_for(lambda m: TAISHAN in str(m["Subject"]))
    assert [str(m["Subject"]).split("】")[0] + "】" for m in mails] == ["【核实反馈】", "【催办】"], smtp.subjects()
    assert all(str(m["To"]) == "liming@scjgj.taishan.example.cn" and m["Cc"] is None for m in mails)
    assert all("登录 Airflow 的“待办事项" in body_text(m) for m in mails)
    assert glue.record(reminder, timed_out, final=True)["outcome"] == "unanswered"
    engine = store.open_store(env["db"])
    (r,) = [x for x in feedback.requests(engine, CODE, 2021) if x.unit == TAISHAN]
    assert r.status == "unanswered" and r.reminded_at is not None
