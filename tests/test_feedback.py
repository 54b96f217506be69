"""核实反馈 and the year-end sign-off, in the store: requests opened once per
(unit, quarter), the first answer kept, reminders once, decisions kept in order,
and the year-end quoting the units' answers (fund.yaml lag_causes only as fallback)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from budget_monitor import approval, feedback

REPO = Path(__file__).resolve().parents[1]
JIANGMEN = REPO / "examples" / "jiangmen-2021"
CODE = "JM-2021-YPJG"
TAISHAN = "台山市市场监督管理局"


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The example fund loaded and closed January to December (SQLite)."""
    from budget_monitor import store
    from budget_monitor.config import load_fund_config
    from budget_monitor.pipeline import close_month, compute, load_month

    tmp = tmp_path_factory.mktemp("feedback")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUDGET_MONITOR_HOME", str(tmp / "home"))
        fund = tmp / "inbox" / JIANGMEN.name
        shutil.copytree(JIANGMEN, fund)
        db = f"sqlite:///{tmp / 'store.db'}"
        cfg = load_fund_config(fund)
        for m in range(1, 13):
            load_month(fund, f"2021-{m:02d}", db, cfg=cfg)
            close_month(fund, f"2021-{m:02d}", db, cfg=cfg, chart=False)
        engine = store.open_store(db)
        yield {"fund": fund, "db": db, "cfg": cfg, "engine": engine, "june": compute(engine, cfg, 6)}
        store.dispose_all()


def test_units_lagging_at_a_quarter_end_are_asked(year: dict) -> None:
    june = year["june"]
    asked = feedback.due(june, 6)
    lagging = {u.unit for u in june.units if next(q for q in u.quarters if q.quarter == 2).lagging}
    assert asked == [(u, 2) for u in (s.unit for s in june.units) if u in lagging]
    assert TAISHAN in lagging  # the example's Q2 lag is 台山's and others'
    assert feedback.due(june, 5) == []  # not a quarter end: nobody is asked


def test_ask_opens_each_request_once(engine) -> None:
    t0 = datetime(2021, 7, 5, 6, 0)
    first = feedback.ask(engine, CODE, 2021, [(TAISHAN, 2), ("开平", 2)], now=t0, deadline=timedelta(days=10))
    assert [(r.unit, r.quarter, r.status) for r in first] == [(TAISHAN, 2, "open"), ("开平", 2, "open")]
    assert first[0].deadline == t0 + timedelta(days=10)
    again = feedback.ask(engine, CODE, 2021, [(TAISHAN, 2)], now=t0 + timedelta(days=1))
    assert again == [first[0]]  # a rerun of the close does not move the deadline
    assert len(feedback.requests(engine, CODE, 2021)) == 2


def test_first_answer_stands_and_is_audited(engine) -> None:
    feedback.ask(engine, CODE, 2021, [(TAISHAN, 2)])
    at = datetime(2021, 7, 8, 10, 30)
    assert feedback.answer(
        engine, CODE, TAISHAN, 2021, 2, cause="采购项目招标延期", measures="8月底前完成招标", by="taishan", at=at
    )
    assert not feedback.answer(engine, CODE, TAISHAN, 2021, 2, cause="改口", measures="", by="someone")
    (r,) = feedback.requests(engine, CODE, 2021)
    assert (r.status, r.cause, r.measures, r.answered_by, r.answered_at, r.channel) == (
        "answered",
        "采购项目招标延期",
        "8月底前完成招标",
        "taishan",
        at,
        "hitl",
    )
    assert not feedback.answer(engine, CODE, "无此单位", 2021, 2, cause="x", measures="", by="x")
    with pytest.raises(ValueError, match="原因不能为空"):
        feedback.answer(engine, CODE, TAISHAN, 2021, 3, cause="  ", measures="", by="x")


def test_unanswered_request_is_reminded_once_then_closed(engine) -> None:
    feedback.ask(engine, CODE, 2021, [(TAISHAN, 3)])
    assert feedback.mark(engine, CODE, TAISHAN, 2021, 3, feedback.REMINDED)
    assert not feedback.mark(engine, CODE, TAISHAN, 2021, 3, feedback.REMINDED)  # once only
    assert feedback.mark(engine, CODE, TAISHAN, 2021, 3, feedback.UNANSWERED)
    (r,) = feedback.requests(engine, CODE, 2021)
    assert r.status == "unanswered" and r.reminded_at is not None
    # A late answer is still taken: it is the unit's word, and the report should quote it.
    assert feedback.answer(engine, CODE, TAISHAN, 2021, 3, cause="人员调整", measures="", by="taishan")


def test_year_end_quotes_answers_and_falls_back_to_fund_yaml(year: dict) -> None:
    from budget_monitor.pipeline import evaluate_year

    engine, cfg = year["engine"], year["cfg"]
    before = evaluate_year(engine, cfg)
    assert any("部分项目启动较晚导致第二季度" in p for p in before.problems)  # fund.yaml lag_causes

    feedback.ask(engine, CODE, 2021, [(TAISHAN, 2), ("开平市市场监督管理局", 3)])
    feedback.answer(
        engine, CODE, TAISHAN, 2021, 2, cause="执法装备采购招标延期", measures="三季度完成招标并支付", by="taishan"
    )
    after = evaluate_year(engine, cfg)
    text = "".join(after.problems)
    assert f"经核实，第二季度支出进度滞后的原因：{TAISHAN}反馈：执法装备采购招标延期。" in text
    assert "部分项目启动较晚" not in text  # the answer replaces the configured cause
    assert f"第二季度各单位反馈的整改措施：{TAISHAN}：三季度完成招标并支付。" in after.improvements
    # Everything but the narrative is unchanged.
    assert (after.total_score, after.grade, after.executed_fen) == (
        before.total_score,
        before.grade,
        before.executed_fen,
    )


def test_decisions_are_kept_and_the_latest_is_in_force(engine) -> None:
    assert approval.latest(engine, CODE, 2021) is None
    with pytest.raises(ValueError, match="退回须填写意见"):
        approval.decide(engine, CODE, 2021, approval.REJECTED, by="approver")
    t0 = datetime(2022, 1, 10, 9, 0)
    approval.decide(engine, CODE, 2021, approval.REJECTED, by="approver", comment="十二月支付待更正", at=t0)
    ok = approval.decide(engine, CODE, 2021, approval.APPROVED, by="approver", at=t0 + timedelta(days=2))
    assert [d.decision for d in approval.history(engine, CODE, 2021)] == ["rejected", "approved"]
    assert approval.latest(engine, CODE, 2021) == ok and ok.approved
    assert ok.provenance()["decided_at"] == "2022-01-12T09:00:00"
