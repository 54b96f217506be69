"""fund.yaml ``alerts``: the monthly digest (one mail per recipient per month close)
or one mail per alert, kinds that go at once; exactly once per (recipient, period)
through the outbox (a rerun sends nothing twice, a failed send is retried)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy import select

from budget_monitor import alerts, contacts, outbox, store
from budget_monitor.alert_kinds import MONTH_WARNING, QUARTER_LAGGING, immediate_choices
from budget_monitor.config import AlertsConfig, FundConfigError, load_fund_config

from seed_shaped import CFG, seed_shaped

TAISHAN = "台山市市场监督管理局"
EVIL = "<b onmouseover=x()>恩平</b>"
OFFICE = tuple(CFG.recipients)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[email.message.EmailMessage] = []

    def send(self, msg) -> None:
        if self.fail:
            raise ConnectionRefusedError("down")
        self.sent.append(email.message_from_bytes(msg.as_bytes(), policy=email.policy.default))


@pytest.fixture
def engine(tmp_path: Path):
    yield store.open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.dispose_all()


@pytest.fixture
def people(tmp_path: Path):
    (tmp_path / "contacts.csv").write_text(
        f"预算单位,联系人,电子邮箱\n{TAISHAN},李明,liming@taishan.example.cn\n", encoding="utf-8"
    )
    return contacts.load(tmp_path)


def _hold_month(engine, people, month: int, cfg=CFG) -> int:
    held = [alerts.hold(cfg, d, people) for d in alerts.due(cfg, seed_shaped(month), month)]
    return outbox.hold(engine, held)


def _text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def test_alerts_mode_defaults_to_digest_and_immediate_choices_come_from_the_kinds_table() -> None:
    assert CFG.alerts.mode == "digest" and CFG.alerts.immediate == []
    assert set(immediate_choices()) == {"month_warning", "month_warning:yellow", "month_warning:red", "quarter_lagging"}
    cfg = AlertsConfig(immediate=["month_warning:red", "quarter_lagging"])
    assert cfg.at_once(QUARTER_LAGGING, None) and cfg.at_once(MONTH_WARNING, "red")
    assert not cfg.at_once(MONTH_WARNING, "yellow")
    assert AlertsConfig(mode="each").at_once(MONTH_WARNING, "yellow")
    assert AlertsConfig().at_once("rejection", "red") and AlertsConfig().at_once("year_end_report", None)


def test_an_unknown_immediate_kind_is_refused_in_chinese(tmp_path: Path) -> None:
    fund = tmp_path / "f"
    fund.mkdir()
    (fund / "fund.yaml").write_text(
        "code: F\nname: 资金\nyear: 2021\ndepartment: 局\nrecipients: [a@b.cn]\n"
        "alerts:\n  mode: digest\n  immediate: [month_warning:orange]\n",
        encoding="utf-8",
    )
    with pytest.raises(FundConfigError) as err:
        load_fund_config(fund)
    assert "字段 alerts.immediate" in str(err.value) and "预警类型 'month_warning:orange' 无效" in str(err.value)
    (fund / "fund.yaml").write_text(
        "code: F\nname: 资金\nyear: 2021\ndepartment: 局\nrecipients: [a@b.cn]\nalerts: {mode: weekly}\n",
        encoding="utf-8",
    )
    with pytest.raises(FundConfigError, match="字段 alerts.mode：取值无效"):
        load_fund_config(fund)


def test_digest_is_one_mail_per_recipient_per_month_gathering_every_alert_due(engine, people) -> None:
    assert _hold_month(engine, people, 6) == 6  # the fund, its 4 units, Q2
    assert outbox.pending_count(engine, CFG.code) == 6  # held: not out yet
    assert outbox.flush(engine, Recorder()).sent == 0  # a held alert is never mailed on its own
    assert outbox.gather(engine, "2021-06") == 3  # caiwu, jihua, 台山's contact
    mailer = Recorder()
    assert outbox.flush(engine, mailer).sent == 3 and outbox.pending_count(engine) == 0
    by_to = {str(m["To"]): m for m in mailer.sent}
    assert set(by_to) == {*OFFICE, "liming@taishan.example.cn"}
    office = _text(by_to[OFFICE[0]])
    assert office.startswith(f"{CFG.department}：") and "共6条预警" in office
    assert "【季度滞后】资金整体 2021年第二季度" in office and f"【月度预警】{TAISHAN}" in office
    assert str(by_to[OFFICE[0]]["Subject"]) == "【支出进度月度汇总】2021年6月\u3000预警6条"
    unit = _text(by_to["liming@taishan.example.cn"])
    assert unit.startswith(f"{TAISHAN}：") and "共1条预警" in unit and "恩平" not in unit
    for m in mailer.sent:  # Chinese, plain text and HTML
        assert m.get_body(("plain",)) is not None and m.get_body(("html",)) is not None
        assert str(m["X-Budget-Monitor-Funds"]) == CFG.code and m["Cc"] is None


def test_a_rerun_gathers_nothing_and_a_late_alert_goes_in_a_supplement(engine, people) -> None:
    _hold_month(engine, people, 6)
    assert outbox.gather(engine, "2021-06") == 3
    assert _hold_month(engine, people, 6) == 0 and outbox.gather(engine, "2021-06") == 0  # rerun: nothing
    # A second fund closes June late (after the digests were made): a supplement.
    late = CFG.model_copy(update={"code": "late-fund"})
    assert _hold_month(engine, people, 6, late) == 6
    assert outbox.gather(engine, "2021-06") == 3
    with engine.connect() as conn:
        periods = sorted(
            conn.execute(
                select(store.outbox.c.unit, store.outbox.c.period).where(store.outbox.c.kind == "digest")
            ).all()
        )
    assert periods == sorted((a, p) for a in (*OFFICE, "liming@taishan.example.cn") for p in ("2021-06", "2021-06#1"))
    mailer = Recorder()
    outbox.flush(engine, mailer)
    supplement = next(m for m in mailer.sent if "补充" in str(m["Subject"]) and str(m["To"]) == OFFICE[0])
    assert "late-fund" in _text(supplement) and "jiangmen-2021" not in _text(supplement)


def test_a_failed_digest_send_is_retried_and_sent_once(engine, people) -> None:
    _hold_month(engine, people, 6)
    outbox.gather(engine, "2021-06")
    down = outbox.flush(engine, Recorder(fail=True))
    assert down.sent == 0 and down.remaining == 3
    up = Recorder()
    assert outbox.flush(engine, up).sent == 3
    assert outbox.flush(engine, Recorder()).sent == 0 and len(up.sent) == 3


def test_digest_escapes_text_from_data_in_its_html_part(engine) -> None:
    import pandas as pd
    from datetime import date

    from budget_monitor.execution import compute_execution
    from seed_shaped import LINEAR

    alloc = pd.DataFrame([(EVIL, date(2021, 1, 1), 1_000_000, "年初")], columns=["unit", "date", "amount_fen", "kind"])
    pay = pd.DataFrame([(EVIL, date(2021, 6, 1), 100_000)], columns=["unit", "pay_date", "amount_fen"])
    result = compute_execution(alloc, pay, year=2021, through_month=6, pace=LINEAR)
    outbox.hold(engine, [alerts.hold(CFG, d) for d in alerts.due(CFG, result, 6)])
    outbox.gather(engine, "2021-06")
    mailer = Recorder()
    outbox.flush(engine, mailer)
    html = mailer.sent[0].get_body(("html",)).get_content()
    assert EVIL not in html and "&lt;b onmouseover=x()&gt;恩平&lt;/b&gt;" in html
    assert EVIL in _text(mailer.sent[0])  # the plain text says it as written


def test_each_mode_and_immediate_kinds_mail_at_once_the_rest_waits_for_the_digest(tmp_path: Path) -> None:
    """Through close_month: ``each`` queues one mail per alert (To the unit, Cc the
    office); ``immediate`` sends those kinds at once and holds the others."""
    import shutil

    from budget_monitor.pipeline import close_month, gather_digests, load_month

    example = Path(__file__).resolve().parents[1] / "examples"
    db = f"sqlite:///{tmp_path / 's.db'}"
    for name, extra in (("each", "alerts:\n  mode: each\n"), ("quick", "alerts:\n  immediate: [quarter_lagging]\n")):
        fund = tmp_path / "inbox" / name
        shutil.copytree(example / "jiangmen-2021", fund)
        yaml = fund / "fund.yaml"
        text = yaml.read_text(encoding="utf-8").replace("code: JM-2021-YPJG", f"code: JM-{name}", 1)
        yaml.write_text(text + extra, encoding="utf-8")
    shutil.copy(example / "contacts.csv", tmp_path / "inbox" / "contacts.csv")
    for m in range(1, 7):
        for name in ("each", "quick"):
            load_month(tmp_path / "inbox" / name, f"2021-{m:02d}", db)
            close_month(tmp_path / "inbox" / name, f"2021-{m:02d}", db, chart=False)
    engine = store.open_store(db)
    o = store.outbox.c
    with engine.connect() as conn:
        rows = conn.execute(select(o.fund_code, o.unit, o.period, o.kind, o.status, o.message)).all()
    each = [r for r in rows if r.fund_code == "JM-each"]
    assert each and {r.status for r in each} == {"pending"}
    taishan = next(r for r in each if r.unit == TAISHAN and r.period == "2021-06")
    msg = email.message_from_string(taishan.message, policy=email.policy.default)
    assert str(msg["To"]) == "liming@scjgj.taishan.example.cn"
    assert str(msg["Cc"]) == "caiwu@scjgj.jiangmen.example.cn, yaojianke@scjgj.jiangmen.example.cn"
    quick = {(r.kind, r.status) for r in rows if r.fund_code == "JM-quick"}
    assert quick == {(QUARTER_LAGGING, "pending"), (MONTH_WARNING, "held")}
    assert gather_digests("2021-06", db) == 4  # the held month warnings of the quick fund, per recipient


# Text from data at its most hostile: markup that runs, an attribute breakout,
# and a CR/LF that would start a header of its own.
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=1>'
HEADER_BREAK = "恩平\r\nBcc: evil@x.cn"


def test_digest_escapes_hostile_fund_unit_note_and_department_in_html() -> None:
    from markupsafe import escape

    (d,) = [d for d in alerts.due(CFG, seed_shaped(6), 6) if d.key[1]][:1]
    item = {
        **alerts.hold(CFG, d).detail,
        "fund_name": f"资金{SCRIPT}",
        "fund_title": f"标题{BREAKOUT}",
        "unit": f"单位{BREAKOUT}{SCRIPT}",
        "note": f"说明{SCRIPT}",
        "department": f"财务{BREAKOUT}",
        "fallback": True,  # the "尚未登记联系人" line repeats the unit
    }
    digest = alerts.build_digest(OFFICE[0], "2021-06", [item])
    for evil in (SCRIPT, BREAKOUT):
        assert evil not in digest.html
    assert "<script" not in digest.html and "<img" not in digest.html
    assert escape(f"资金{SCRIPT}") in digest.html and escape(f"财务{BREAKOUT}") in digest.html
    assert digest.html.count(escape(f"单位{BREAKOUT}{SCRIPT}")) == 2  # its row and the fallback note
    assert item["unit"] in digest.text and item["note"] in digest.text  # plain text says it as written


def test_a_cr_lf_in_a_unit_name_never_starts_a_mail_header() -> None:
    import pandas as pd
    from datetime import date

    from budget_monitor.execution import compute_execution
    from seed_shaped import LINEAR

    alloc = pd.DataFrame(
        [(HEADER_BREAK, date(2021, 1, 1), 1_000_000, "年初")], columns=["unit", "date", "amount_fen", "kind"]
    )
    pay = pd.DataFrame([(HEADER_BREAK, date(2021, 6, 1), 100_000)], columns=["unit", "pay_date", "amount_fen"])
    result = compute_execution(alloc, pay, year=2021, through_month=6, pace=LINEAR)
    held = [alerts.hold(CFG, d) for d in alerts.due(CFG, result, 6)]
    unit_alert = next(h for h in held if h.key[1] == HEADER_BREAK)
    assert "\r" not in unit_alert.subject and "\n" not in unit_alert.subject
    for a in alerts.build_alerts(CFG, result, 6):
        raw = a.message.as_bytes()
        assert b"\nBcc:" not in raw and a.message["Bcc"] is None
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Bcc"] is None and "\n" not in str(parsed["Subject"])
    digest = alerts.build_digest(OFFICE[0], "2021-06", [h.detail for h in held])
    assert digest.message["Bcc"] is None and b"\nBcc:" not in digest.message.as_bytes()


def test_the_digest_carries_the_quarter_forecast_with_its_method(engine, people) -> None:
    """Digest is the default mode, so the quarter alert's forecast (method, range) is in it."""
    _hold_month(engine, people, 6)
    outbox.gather(engine, "2021-06")
    mailer = Recorder()
    outbox.flush(engine, mailer)
    office = next(m for m in mailer.sent if str(m["To"]) == OFFICE[0])
    text = _text(office)
    assert "预测：按当前进度，第三季度末预计" in text and "全年执行率预计为" in text
    assert "预测方法：系统中没有往年的月度支出数据" in text
    html = office.get_body(("html",)).get_content()
    assert "预测：按当前进度，第三季度末预计" in html
    unit = next(m for m in mailer.sent if str(m["To"]) == "liming@taishan.example.cn")
    assert "预测" not in _text(unit)  # a unit's month warning carries no quarter forecast
