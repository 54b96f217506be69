"""Bodies of the 核实反馈 DAG's tasks and of the year-end approval: glue between
Airflow's Human-in-the-loop records and budget_monitor.feedback / approval.

A HITL response arrives as the operator's XCom: ``chosen_options``,
``params_input`` (the form), ``responded_by_user`` ({id, name}; None when the
scheduler applied the defaults at the deadline) and ``responded_at``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from budget_monitor_airflow import settings

log = logging.getLogger(__name__)

SUBMIT = "提交"
APPROVE, REJECT = "批准", "退回"


def _engine():
    from budget_monitor import store

    return store.open_store(settings.db_url())


def _local(when: Any) -> datetime | None:
    """A response time (aware UTC, or ISO text after an XCom round trip) as the store keeps time."""
    from budget_monitor.store import TZ

    if when is None:
        return None
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return when.astimezone(TZ).replace(tzinfo=None, microsecond=0)


def _users(names: list[str]) -> list[dict[str, str]] | None:
    """HITL assignees; none means anyone allowed to answer HITL tasks (the finance office)."""
    return [{"id": n, "name": n} for n in names] or None


def _quarter_name(q: int) -> str:
    from budget_monitor.periods import QUARTER_ZH

    return QUARTER_ZH[q]


# ----------------------------------------------------------------- 核实反馈


def plan(month: str, fund_filter: str = "") -> list[dict]:
    """Open the requests the close of ``month`` owes (units lagging at a quarter
    end) and return them, each with the subject and body its contact is shown."""
    from budget_monitor import feedback
    from budget_monitor.config import load_fund_config
    from budget_monitor.pipeline import compute

    from budget_monitor_airflow.year_end import fund_dirs

    year, mon = (int(p) for p in month.split("-"))
    if mon % 3:
        log.info("%s is not a quarter end: no 核实反馈 requests", month)
        return []
    engine = _engine()
    out = []
    for d in fund_dirs(year, fund_filter):
        cfg = load_fund_config(Path(d))
        result = compute(engine, cfg, mon)
        figures = {
            u.unit: feedback.quarter_figures(next(q for q in u.quarters if q.quarter == mon // 3)) for u in result.units
        }
        for r in feedback.ask(engine, cfg.code, year, feedback.due(result, mon), deadline=settings.feedback_deadline()):
            subject, body = feedback.request_message(cfg.name, r, figures[r.unit], _quarter_name(r.quarter))
            out.append(
                {
                    "fund_dir": d,
                    "fund_code": cfg.code,
                    "fund_name": cfg.name,
                    "unit": r.unit,
                    "year": r.year,
                    "quarter": r.quarter,
                    "quarter_name": _quarter_name(r.quarter),
                    "subject": subject,
                    "body": body,
                    "assigned_users": _users(settings.unit_users(r.unit)),
                    "figures": figures[r.unit],
                    "deadline": r.deadline.isoformat(),
                }
            )
    log.info("%s: %d 核实反馈 request(s) open", month, len(out))
    return out


def hitl_request(req: dict) -> dict:
    """The mapped HITL operator's arguments for one request."""
    return {"subject": req["subject"], "body": req["body"], "assigned_users": req["assigned_users"]}


def record(req: dict, response: dict | None, *, final: bool = False) -> dict:
    """Store a unit's answer; the request comes back with its ``outcome``:
    ``answered``; ``late`` (no answer by the deadline, the defaults applied, or
    a blank cause: to be reminded); after the reminder (``final``) ``unanswered``.
    Always a value, so the next task's XCom pull finds one per request."""
    from budget_monitor import feedback

    response = response or {}
    user = response.get("responded_by_user")
    form = response.get("params_input") or {}
    cause = str(form.get("cause") or "").strip()
    engine = _engine()
    key = (req["fund_code"], req["unit"], req["year"], req["quarter"])
    if user and cause:
        taken = feedback.answer(
            engine,
            *key,
            cause=cause,
            measures=str(form.get("measures") or ""),
            by=str(user.get("name") or user.get("id")),
            at=_local(response.get("responded_at")),
            channel="hitl",
        )
        log.info("%s %s Q%s: answer by %s %s", *key[:2], key[3], user, "recorded" if taken else "already on record")
        return {**req, "outcome": "answered"}
    if final:
        feedback.mark(engine, *key, feedback.UNANSWERED)
        log.warning("%s %s Q%s: no answer after the reminder; fund.yaml lag_causes is the fallback", *key[:2], key[3])
        return {**req, "outcome": "unanswered"}
    log.warning("%s %s Q%s: no answer by the deadline; reminding once", *key[:2], key[3])
    return {**req, "outcome": "late"}


def remind(outcomes: list[dict]) -> list[dict]:
    """Mark each request answered late reminded (once) and return the reminder requests."""
    from budget_monitor import feedback

    engine = _engine()
    out = []
    for req in (r for r in outcomes if r and r.get("outcome") == "late"):
        key = (req["fund_code"], req["unit"], req["year"], req["quarter"])
        if not feedback.mark(engine, *key, feedback.REMINDED):
            continue  # reminded by an earlier run: once only
        request = next(
            r
            for r in feedback.requests(engine, req["fund_code"], req["year"])
            if (r.unit, r.quarter) == (req["unit"], req["quarter"])
        )
        request = replace(request, deadline=request.reminded_at + settings.feedback_deadline())
        subject, body = feedback.request_message(
            req["fund_name"], request, req["figures"], _quarter_name(request.quarter), reminder=True
        )
        out.append(
            {k: v for k, v in req.items() if k != "outcome"}
            | {"subject": subject, "body": body, "deadline": request.deadline.isoformat()}
        )
    return out


def required_actions_url(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The Required Actions page of one HITL task instance under
    ``BUDGET_MONITOR_UI_URL`` (the standard provider's path, any prefix of the
    deployment's address kept); None when the deployment does not say where the UI is."""
    from urllib.parse import quote, urlencode

    base = settings.ui_url()
    if not base:
        return None
    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return f"{base}{path}/required_actions?{urlencode({'map_index': map_index})}"


def mail_requests(reqs: list[dict], *, task_id: str, context: Any = None, reminder: bool = False) -> int:
    """Tell each unit's contact (only; a unit without a contact is answered for by
    the finance office under Required Actions, unmailed) that its 核实反馈
    request, or the reminder, waits for the answer:
    ``reqs`` in the order the mapped HITL task ``task_id`` asks them (its map
    indexes), so each mail links its own request (``context``: the running
    task's, for the DAG run).

    Queued in the outbox under (fund, unit, 'YYYY-Qn', feedback_request |
    feedback_reminder), so a rerun or a retried task mails nobody twice; then
    the funds' pending mails are flushed. A failed send stays pending for the
    next flush (the next request's, or the monthly close's send_alerts) and
    never fails the request. Returns how many mails were new in the outbox."""
    from budget_monitor import alerts, contacts, outbox
    from budget_monitor.config import load_fund_config

    from budget_monitor_airflow.mail import SmtpHookMailer

    if not reqs:
        return 0
    ti = (context or {}).get("ti")
    mails = []
    for i, req in enumerate(reqs):
        fund_dir = Path(req["fund_dir"])
        cfg = load_fund_config(fund_dir)
        url = required_actions_url(ti.dag_id, ti.run_id, task_id, i) if ti is not None else None
        mail = alerts.build_feedback_email(
            cfg,
            req["unit"],
            req["year"],
            req["quarter"],
            req["figures"],
            datetime.fromisoformat(req["deadline"]),
            reminder=reminder,
            url=url,
            contacts=contacts.for_fund_dir(fund_dir),
        )
        if mail.recipients:
            mails.append(mail)
        else:
            log.info(
                "%s %s: no contact in contacts.csv; the finance office answers under Required Actions", *mail.key[:2]
            )
    engine = _engine()
    new = outbox.enqueue(engine, mails)
    try:
        with SmtpHookMailer() as mailer:
            codes = sorted({m.fund_code for m in mails})
            result = outbox.flush(engine, mailer, codes, deadline_s=settings.flush_deadline_s())
        log.info("核实反馈 mails: %d new of %d; %s", new, len(mails), result.summary())
    except Exception as exc:  # noqa: BLE001 - the mails stay pending; the requests must still be asked
        log.warning("核实反馈 mails left pending in the outbox: %s", exc)
    return new


# ----------------------------------------------------------------- year-end approval


def approval_request(report: dict) -> dict:
    """The mapped HITL operator's arguments asking the approver to sign off one fund's draft."""
    from budget_monitor.feedback import md_escape

    body = "\n\n".join(
        [
            f"**专项资金**：{md_escape(report['fund_name'])}（{md_escape(report['fund'])}）",
            f"**年度**：{report['year']}　**自评得分**：{md_escape(report['total_score_text'])}　**等级**：{md_escape(report['grade'])}",
            f"**草稿文件**：{md_escape(report['out_dir'])}（自评报告.docx、自评表.xlsx 等，均标注“草稿”）",
            "请审阅草稿后选择“批准”或“退回”。批准后生成正式报告并发送；退回须填写意见，数据更正后重新运行。",
        ]
    )
    return {
        "subject": f"【审批】{report['fund_name']} {report['year']}年度绩效自评报告",
        "body": body,
        "assigned_users": _users(settings.approvers()),
    }


def decide(report: dict, response: dict | None) -> dict:
    """Record the approver's decision. Approved: the final report is written
    (approval in its provenance) and its mail queued. Sent back: recorded with
    the comment. Returns the report with ``approved`` for email_report."""
    from budget_monitor import approval
    from budget_monitor.pipeline import run_year_end

    response = response or {}
    user = response.get("responded_by_user")
    chosen = response.get("chosen_options") or []
    comment = str((response.get("params_input") or {}).get("comment") or "")
    engine = _engine()
    if not user:
        log.warning(
            "%s %s: no decision recorded (deadline passed): the draft stays a draft", report["fund"], report["year"]
        )
        return None
    decision = approval.APPROVED if APPROVE in chosen else approval.REJECTED
    if decision == approval.REJECTED and not comment.strip():
        comment = "（未填写意见）"
    made = approval.decide(
        engine,
        report["fund"],
        report["year"],
        decision,
        by=str(user.get("name") or user.get("id")),
        comment=comment,
        at=_local(response.get("responded_at")),
        draft_sha256=report.get("draft_sha256"),
    )
    if not made.approved:
        log.warning("%s %s sent back by %s: %s", report["fund"], report["year"], made.decided_by, made.comment)
        return {**report, "approved": False, "comment": made.comment}
    result = run_year_end(
        Path(report["fund_dir"]), report["year"], Path(report["out_dir"]), settings.db_url(), None, approval=made
    )
    log.info("%s approved by %s: %s", report["fund"], made.decided_by, result.summary())
    return {**report, "approved": True, "queued": result.queued, "approved_by": made.decided_by}
