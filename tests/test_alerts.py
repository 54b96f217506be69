"""rules.md "Alerts": month warnings, lagging-quarter alerts, e-mails over real SMTP."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest
from aiosmtpd.controller import Controller

from budget_monitor.alerts import MONTH_WARNING, QUARTER_LAGGING, build_alerts, due_keys
from budget_monitor.execution import compute_execution
from budget_monitor.outbox import SmtpMailer

from seed_shaped import BUDGETS, CFG, LINEAR, frames, seed_shaped

# ------------------------------------------------------------------- SMTP server


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd hook
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def parsed(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default) for _, raw in self.messages]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


# ------------------------------------------------------------------------- rules


def test_month_warning_for_the_fund_and_each_unit_behind_pace() -> None:
    alerts = build_alerts(CFG, seed_shaped(5), 5)
    assert {a.kind for a in alerts} == {MONTH_WARNING}
    # May: fund 34.33% vs 41.67, every unit behind too.
    assert [a.unit for a in alerts] == ["", *sorted(BUDGETS)]
    assert all(a.period == "2021-05" and a.severity == "yellow" for a in alerts)
    assert alerts[0].key == ("jiangmen-2021", "", "2021-05", MONTH_WARNING)


def test_no_alert_when_on_or_ahead_of_pace() -> None:
    # March: everyone is ahead of the 25% pace, and Q1 is not lagging.
    assert build_alerts(CFG, seed_shaped(3), 3) == []


def test_month_warning_red_when_behind_by_20_points_or_more() -> None:
    alloc, pay = frames([("A", date(2021, 1, 1), 1_000_000, "年初")], [("A", date(2021, 2, 1), 100_000)])
    result = compute_execution(alloc, pay, year=2021, through_month=4, pace=LINEAR)
    alerts = build_alerts(CFG, result, 4)
    assert [(a.unit, a.severity) for a in alerts] == [("", "red"), ("A", "red")]
    assert "红色预警" in alerts[0].subject


def test_quarter_lagging_alert_only_at_quarter_close_months() -> None:
    result = seed_shaped(12)
    kinds = {m: [a.period for a in build_alerts(CFG, result, m) if a.kind == QUARTER_LAGGING] for m in range(1, 13)}
    assert kinds == {m: ([f"2021-Q{m // 3}"] if m in (6, 9) else []) for m in range(1, 13)}


def test_quarter_lagging_alert_names_quarter_rate_pace_gap_units_and_money_to_reach() -> None:
    result = seed_shaped(6)
    (alert,) = [a for a in build_alerts(CFG, result, 6) if a.kind == QUARTER_LAGGING]
    q2 = result.fund.quarter(2)
    assert alert.key == ("jiangmen-2021", "", "2021-Q2", QUARTER_LAGGING)
    assert alert.subject == "【季度支出进度滞后】药品监督管理专项资金\u30002021年第二季度\u3000支出进度不达序时进度"
    for part in (alert.text, alert.html):
        assert "第二季度" in part
        assert f"{q2.rate_2dp}%" in part and "50.00%" in part
        assert f"{-q2.gap_2dp}个百分点" in part
        for unit in q2.units_behind:
            assert unit in part
        # money still to spend to reach pace, in 元 with grouping and in 万元
        assert "381,672.00" in part and "38.17" in part
    assert q2.to_reach_pace_fen == 38_167_200


def test_due_keys_are_the_keys_build_alerts_renders_and_skip_drops_them() -> None:
    """A rerun counts the month's alerts from their keys without rendering any."""
    result = seed_shaped(12)
    for m in range(1, 13):
        keys = due_keys(CFG, result, m)
        assert keys == [a.key for a in build_alerts(CFG, result, m)]
        assert build_alerts(CFG, result, m, skip=set(keys[:1])) == build_alerts(CFG, result, m)[1:]


def test_quarter_alert_states_the_forecast_for_the_next_quarter_end() -> None:
    (alert,) = [a for a in build_alerts(CFG, seed_shaped(6), 6) if a.kind == QUARTER_LAGGING]
    assert "按当前进度，第三季度末预计落后序时进度22.08个百分点" in alert.text
    assert "按当前进度，第三季度末预计落后序时进度22.08个百分点" in alert.html


def test_month_warning_subject_names_fund_unit_and_month() -> None:
    alerts = build_alerts(CFG, seed_shaped(6), 6)
    assert alerts[0].subject == "【支出进度预警】药品监督管理专项资金\u30002021年6月\u3000落后序时进度（黄色预警）"
    assert alerts[1].subject.startswith("【支出进度预警】药品监督管理专项资金\u3000台山市市场监督管理局\u30002021年6月")


def test_alerts_go_to_the_fund_recipients() -> None:
    for alert in build_alerts(CFG, seed_shaped(6), 6):
        assert alert.recipients == ("caiwu@example.com", "jihua@example.com")
        assert alert.message["To"] == "caiwu@example.com, jihua@example.com"


def test_alert_email_has_text_and_html_parts_and_a_chinese_subject_over_smtp(smtp) -> None:
    inbox, port = smtp
    alerts = build_alerts(CFG, seed_shaped(6), 6)
    mailer = SmtpMailer("127.0.0.1", port, sender="monitor@example.com")
    for alert in alerts:
        mailer.send(alert.message)
    received = inbox.parsed()
    assert [m["Subject"] for m in received] == [a.subject for a in alerts]
    assert inbox.messages[0][0] == ["caiwu@example.com", "jihua@example.com"]
    quarter = received[-1]
    assert quarter.get_content_type() == "multipart/alternative"
    text = quarter.get_body(preferencelist=("plain",)).get_content()
    html = quarter.get_body(preferencelist=("html",)).get_content()
    assert "第二季度支出进度不达序时进度" in text and "<table" not in text
    assert "<table" in html and "第二季度支出进度不达序时进度" in html
    assert quarter["Message-ID"] == alerts[-1].message["Message-ID"]


def test_html_part_escapes_text_from_data(smtp) -> None:
    inbox, port = smtp
    evil = '<script>alert("x")</script>&局'
    alloc, pay = frames([(evil, date(2021, 1, 1), 1_000_000, "年初")], [(evil, date(2021, 6, 1), 100)])
    cfg = CFG.model_copy(update={"name": "资金<b>名称</b>"})
    result = compute_execution(alloc, pay, year=2021, through_month=6, pace=LINEAR)
    alerts = build_alerts(cfg, result, 6)
    SmtpMailer("127.0.0.1", port).send(next(a for a in alerts if a.kind == QUARTER_LAGGING).message)
    (msg,) = inbox.parsed()
    html = msg.get_body(preferencelist=("html",)).get_content()
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;局" in html
    assert "资金&lt;b&gt;名称&lt;/b&gt;" in html
    assert evil in text and "资金<b>名称</b>" in text


def test_subject_stays_one_line_whatever_the_data() -> None:
    alloc, pay = frames([("A\r\nBcc: x@evil", date(2021, 1, 1), 1_000, "年初")], [])
    result = compute_execution(alloc, pay, year=2021, through_month=1, pace=LINEAR)
    for alert in build_alerts(CFG, result, 1):
        assert "\n" not in alert.subject and "\r" not in alert.subject
        assert alert.message["Bcc"] is None


def test_alert_can_embed_the_execution_chart_inline(smtp) -> None:
    inbox, port = smtp
    (alert,) = [a for a in build_alerts(CFG, seed_shaped(9), 9, chart=True) if a.kind == QUARTER_LAGGING]
    SmtpMailer("127.0.0.1", port).send(alert.message)
    (msg,) = inbox.parsed()
    html_part = msg.get_body(preferencelist=("related",))
    assert html_part is not None
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0]["Content-ID"] == "<execution-chart>"
    assert images[0].get_content().startswith(b"\x89PNG")
    assert 'src="cid:execution-chart"' in msg.get_body(preferencelist=("html",)).get_content()


def test_build_alerts_refuses_a_month_not_computed() -> None:
    with pytest.raises(ValueError):
        build_alerts(CFG, seed_shaped(3), 4)


def test_example_fund_june_close_alerts() -> None:
    """examples/jiangmen-2021 at the June close: fund + units warned, Q2 lagging alert."""
    from pathlib import Path

    from budget_monitor.config import load_fund_config
    from budget_monitor.ingest import read_table

    fund_dir = Path(__file__).resolve().parents[1] / "examples" / "jiangmen-2021"
    cfg = load_fund_config(fund_dir)
    alloc = read_table(fund_dir / "budget.csv", "budget").df
    pay = pd.concat([read_table(p, "payments").df for p in sorted((fund_dir / "payments").iterdir())])
    result = compute_execution(alloc, pay, year=2021, through_month=6, pace=cfg.pace)
    alerts = build_alerts(cfg, result, 6)
    assert [(a.unit, a.kind) for a in alerts][0] == ("", MONTH_WARNING)
    (quarter,) = [a for a in alerts if a.kind == QUARTER_LAGGING]
    assert quarter.subject == "【季度支出进度滞后】药品监督管理\u30002021年第二季度\u3000支出进度不达序时进度"
    assert "累计执行率38.20%，序时进度50.00%，落后11.80个百分点" in quarter.text
    assert "按当前进度，第三季度末预计落后序时进度25.00个百分点" in quarter.text
    assert all(unit in quarter.text for unit in result.fund.quarter(2).units_behind)
    assert len(result.fund.quarter(2).units_behind) == 4


def test_year_end_email_reports_score_and_attaches_report_and_score_table(smtp, tmp_path) -> None:
    from budget_monitor.alerts import YEAR_END_REPORT, build_year_end_email

    inbox, port = smtp
    docx = tmp_path / "自评报告.docx"
    docx.write_bytes(b"PK docx")
    xlsx = tmp_path / "自评表.xlsx"
    xlsx.write_bytes(b"PK xlsx")
    (tmp_path / "self_evaluation.json").write_text("{}")
    evaluation = {
        "fund": {"code": CFG.code, "name": CFG.name, "year": 2021, "department": CFG.department},
        "budget": {
            "initial_yuan": "3720900.00",
            "adjusted_yuan": "3720900.00",
            "executed_yuan": "3720900.00",
            "execution_rate": 100.0,
        },
        "quarters": [{"quarter": q, "lagging": q in (2, 3)} for q in (1, 2, 3, 4)],
        "indicators": [{"name": "药品抽检批次", "met": True}],
        "total_score": 100.0,
        "grade": "优",
        "problems": ["第二季度和第三季度支出进度不达序时进度。<b>"],
        "improvements": ["加强工作规划，提高资金执行进度。"],
    }
    mail = build_year_end_email(CFG, evaluation, [docx, xlsx, tmp_path / "self_evaluation.json"])
    assert mail.key == (CFG.code, "", "2021", YEAR_END_REPORT)
    SmtpMailer("127.0.0.1", port).send(mail.message)
    (msg,) = inbox.parsed()
    assert msg["Subject"] == "【绩效自评】药品监督管理专项资金\u30002021年度绩效自评报告（100分，优）"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "3,720,900.00 元（372.09 万元）" in text and "第二季度和第三季度支出进度不达序时进度" in text
    assert "进度。&lt;b&gt;" in html
    attached = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
    assert attached == {"自评报告.docx": b"PK docx", "自评表.xlsx": b"PK xlsx"}


# ------------------------------------------------ the forecast's method and range (issue 15 item 5)


def _earlier_years():
    """2020 spent as the seed year did (100%); 2019 likewise but ended at 90%."""
    from budget_monitor.forecast import Profile, profile_of

    p2020 = profile_of(seed_shaped(12).fund, "jiangmen-2020", 2020)
    p2019 = Profile("jiangmen-2019", 2019, tuple(c * 9 // 10 for c in p2020.cumulative_fen), p2020.budget_fen)
    return p2019, p2020


def _quarter_mail_text(history) -> tuple[str, str]:
    from budget_monitor.alerts import due

    result = seed_shaped(6)
    alerts = build_alerts(CFG, result, 6, dues=due(CFG, result, 6, history=history))
    (alert,) = [a for a in alerts if a.kind == QUARTER_LAGGING]
    return alert.text, alert.html


def test_forecast_from_the_funds_own_earlier_years_says_so_with_its_range() -> None:
    from budget_monitor.forecast import History

    text, html = _quarter_mail_text(History(own=_earlier_years()))
    sentence = (
        "按本资金往年月度支出规律推算，第三季度末预计落后序时进度10.02个百分点"
        "（预计累计执行率64.98%），全年执行率预计为96.99%。"
    )
    method = (
        "预测方法：以本资金往年（2019、2020年，共2个年度）各月累计支出占全年支出的比例，"
        "推算剩余月份的支出，以当前全年预算数为分母；按各年度分别推算，"
        "第三季度末累计执行率在63.65%至66.31%之间，全年执行率在93.97%至100.00%之间，"
        "预计值取各年度推算结果的平均数。"
    )
    assert sentence in text and method in text
    assert sentence in html and method in html
    # The recent-months extrapolation said 66.10% for the year.
    assert "66.10%" not in text and "按当前进度" not in text


def test_forecast_from_the_departments_funds_says_so_with_its_range() -> None:
    from budget_monitor.forecast import History

    text, _ = _quarter_mail_text(History(department=_earlier_years()))
    assert "参照本部门其他专项资金往年月度支出规律推算，第三季度末预计落后序时进度10.02个百分点" in text
    assert (
        "预测方法：系统中没有本资金往年的支出数据，参照本部门其他专项资金往年中截至本月支出进度"
        "最接近的2个资金年度（2019、2020年），以其各月累计支出占全年支出的比例推算剩余月份的支出" in text
    )
    assert "全年执行率在93.97%至100.00%之间" in text


def test_forecast_without_earlier_years_says_it_extrapolates_recent_months() -> None:
    from budget_monitor.forecast import History

    text, _ = _quarter_mail_text(History())
    assert (
        "按当前进度，第三季度末预计落后序时进度22.08个百分点（预计累计执行率52.92%），全年执行率预计为66.10%。" in text
    )
    assert "预测方法：系统中没有往年的月度支出数据，按近3个月月均净支出16.34万元外推，以当前全年预算数为分母。" in text
    assert "之间" not in text
    assert text == _quarter_mail_text(None)[0]


def test_month_warnings_of_units_use_the_earlier_years_too() -> None:
    from budget_monitor.alerts import due
    from budget_monitor.forecast import History

    result = seed_shaped(5)
    alerts = build_alerts(CFG, result, 5, dues=due(CFG, result, 5, history=History(own=_earlier_years())))
    assert [a.unit for a in alerts] == ["", *sorted(BUDGETS)]
    for alert in alerts:
        assert "按本资金往年月度支出规律推算" in alert.text and "（2019、2020年，共2个年度）" in alert.text


def test_rejection_notice_escapes_a_hostile_file_name_and_keeps_its_subject_one_line(tmp_path) -> None:
    from budget_monitor.alerts import build_rejection_email
    from budget_monitor.validate import ValidationReport
    from budget_monitor.validation.report import Failure

    evil = "<script>alert(1)</script>\"'><img src=x onerror=1>"
    file = f"payments/{evil}\r\nBcc: evil@x.cn.csv"
    failure = Failure("PAY-002", "error", "format", "amount", "金额", 2, evil, f"{file} 第2行：{evil}")
    report = ValidationReport(file, "/x/a.csv", "payments", "ab" * 32, 1, [failure])
    alert = build_rejection_email(CFG, report, tmp_path / "jm" / "quarantine" / "a.csv")
    assert "\n" not in alert.subject and "\r" not in alert.subject
    parsed = email.message_from_bytes(alert.message.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None and set(parsed.keys()) == set(alert.message.keys())
    html = parsed.get_body(preferencelist=("html",)).get_content()
    assert evil not in html and "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_feedback_request_mail_goes_to_the_units_contact_with_figures_deadline_and_where() -> None:
    """核实反馈: the unit's contact (To, nobody else); the quarter's figures,
    the deadline in Beijing time, the Required Actions page; HTML escaped, plain text too."""
    from datetime import datetime

    from budget_monitor.alerts import build_feedback_email
    from budget_monitor.contacts import Contact, Contacts

    evil = '<b>台山</b>&"局'
    people = Contacts({evil: (Contact(evil, "li@ts.example.cn", "李明", "taishan"),)})
    figures = {"cumulative_rate": "31.25", "pace": "50.00", "gap_points": "-18.75"}
    url = "https://bm.example.cn/dags/budget_unit_feedback/runs/r1/tasks/ask_units/required_actions?map_index=0"
    mail = build_feedback_email(CFG, evil, 2021, 2, figures, datetime(2021, 7, 15, 9, 30), url=url, contacts=people)
    assert mail.key == ("jiangmen-2021", evil, "2021-Q2", "feedback_request")
    assert mail.subject.startswith("【核实反馈】") and "2021年第二季度" in mail.subject and "\n" not in mail.subject
    assert mail.message["To"] == "li@ts.example.cn" and mail.message["Cc"] is None
    parsed = email.message_from_bytes(mail.message.as_bytes(), policy=email.policy.default)
    text = parsed.get_body(preferencelist=("plain",)).get_content()
    html = parsed.get_body(preferencelist=("html",)).get_content()
    for part in (text, html):
        assert "31.25%" in part and "50.00%" in part and "-18.75个百分点" in part
        assert "2021-07-15 09:30" in part and "北京时间" in part and "2021-07-15" in part
        assert "map_index=0" in part and "待办事项（Required Actions）" in part
    assert text.startswith(f"{evil}：") and evil in text
    assert "<b>台山" not in html and "&lt;b&gt;台山&lt;/b&gt;&amp;&#34;局" in html

    # No UI address: the mail says where to go. The reminder after the deadline is its own
    # kind (its own outbox key). A unit without a contact: nobody (the office answers in the UI).
    late = build_feedback_email(
        CFG, evil, 2021, 2, figures, datetime(2021, 7, 25, 9, 30), reminder=True, contacts=people
    )
    assert late.key == ("jiangmen-2021", evil, "2021-Q2", "feedback_reminder")
    assert late.subject.startswith("【催办】") and late.recipients == ("li@ts.example.cn",)
    assert late.message["Cc"] is None and "反馈期限已过" in late.text
    nobody = build_feedback_email(CFG, "无联系人单位", 2021, 2, figures, datetime(2021, 7, 15, 9, 30))
    assert nobody.recipients == ()
    assert "登录 Airflow 的“待办事项（Required Actions）”页面" in late.text and "http" not in late.text
