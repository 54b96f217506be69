"""dashboard_data: every figure the dashboard shows equals the store's, on SQLite and PostgreSQL.

The example fund is loaded and closed month by month through budget_monitor.pipeline
(a rejected file in March included), then the dashboard's dicts are compared with
(a) the close's own computation and (b) sums taken straight from the store's tables.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from budget_monitor import dashboard_data as dd
from budget_monitor import store
from budget_monitor.config import load_fund_config
from budget_monitor.pipeline import MonthRejected, close_month, compute, load_month

REPO = Path(__file__).resolve().parents[1]
JIANGMEN = REPO / "examples" / "jiangmen-2021"
CODE = "JM-2021-YPJG"
HOSTILE = "<script>alert(1)</script>壹仟元"


def _fund(tmp_path: Path) -> Path:
    root = tmp_path / "inbox"
    root.mkdir()
    dest = root / JIANGMEN.name
    shutil.copytree(JIANGMEN, dest)
    return dest


def _bad_march_file(fund: Path) -> None:
    (fund / "payments" / "2021-03_补录.csv").write_text(
        "支付凭证号,预算单位,指标文号,支付金额,支付日期\n"
        f"BAD-0001,台山市市场监督管理局,江财工〔2021〕13号,{HOSTILE},2021-03-10\n",
        encoding="utf-8",
    )


def _close(fund: Path, db: str, months: range) -> None:
    cfg = load_fund_config(fund)
    for m in months:
        month = f"{cfg.year}-{m:02d}"
        try:
            load_month(fund, month, db, cfg=cfg)
        except MonthRejected:
            pass  # the good files landed; the close goes on, as in the DAG
        close_month(fund, month, db, cfg=cfg, chart=False)


@pytest.fixture(autouse=True)
def _fresh_cache():
    dd.clear_cache()
    yield
    dd.clear_cache()


def _round2(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):.2f}"


def _store_sums(engine, through: date) -> tuple[int, int]:
    """(net payments up to ``through``, budget in force at ``through``) straight from the tables."""
    sign = {"年初": 1, "追加": 1, "调减": -1}
    with engine.connect() as conn:
        paid = conn.execute(
            select(func.coalesce(func.sum(store.payment.c.amount_fen), 0)).where(
                store.payment.c.fund_code == CODE, store.payment.c.pay_date <= through
            )
        ).scalar_one()
        rows = conn.execute(
            select(store.allocation.c.kind, store.allocation.c.date, store.allocation.c.amount_fen).where(
                store.allocation.c.fund_code == CODE
            )
        ).all()
    budget = sum(sign[k] * int(fen) for k, d, fen in rows if k == "年初" or d <= through)
    return int(paid), budget


def test_dashboard_figures_equal_the_store(db_url: str, tmp_path: Path) -> None:
    fund = _fund(tmp_path)
    _bad_march_file(fund)
    _close(fund, db_url, range(1, 8))
    engine = store.open_store(db_url)
    cfg = load_fund_config(fund)
    configs = dd.fund_configs(fund.parent)
    assert list(configs) == [CODE]

    # Overview: the latest closed month, as the close computed it and as the tables sum.
    (row,) = dd.overview(engine, configs)
    expected = compute(engine, cfg, 7)
    latest = expected.fund.month(7)
    assert row["month"] == "2021-07" and row["status"] == "ok"
    assert (row["rate"], row["pace"], row["gap"]) == (
        f"{latest.rate_2dp:.2f}",
        f"{latest.pace_2dp:.2f}",
        f"{latest.gap_2dp:.2f}",
    )
    assert row["light"] == {None: "green", "yellow": "yellow", "red": "red"}[latest.severity]
    paid, budget = _store_sums(engine, date(2021, 7, 31))
    assert (row["cumulative_fen"], row["budget_fen"]) == (paid, budget)
    assert row["rate"] == _round2(Decimal(paid * 100) / Decimal(budget))
    assert row["pace"] == _round2(Decimal(7 * 100) / Decimal(12))  # linear_month
    assert Decimal(row["gap"]) == Decimal(row["rate"]) - Decimal(row["pace"])
    assert row["units"] == len(expected.units)
    assert row["units_red"] == sum(1 for u in expected.units if u.month(7).severity == "red")
    assert row["units_yellow"] == sum(1 for u in expected.units if u.month(7).severity == "yellow")
    assert row["lagging_quarters"] == expected.fund.lagging_quarters

    # Fund page: every month, quarter and unit; every month's money against the tables.
    page = dd.fund_page(engine, configs, CODE)
    assert page["month"] == "2021-07"
    assert page["closed_months"] == [f"2021-{m:02d}" for m in range(1, 8)]
    months = page["series"]["months"]
    assert [m["month"] for m in months] == [f"2021-{m:02d}" for m in range(1, 8)]
    for shown, m in zip(months, expected.fund.months, strict=True):
        assert shown["rate"] == f"{m.rate_2dp:.2f}" and shown["pace"] == f"{m.pace_2dp:.2f}"
        assert shown["gap"] == f"{m.gap_2dp:.2f}" and shown["severity"] == m.severity
        assert (shown["executed_fen"], shown["cumulative_fen"], shown["budget_fen"], shown["to_reach_pace_fen"]) == (
            m.executed_fen,
            m.cumulative_fen,
            m.budget_fen,
            m.to_reach_pace_fen,
        )
        end = date(2021, m.month + 1, 1).toordinal() - 1
        assert (shown["cumulative_fen"], shown["budget_fen"]) == _store_sums(engine, date.fromordinal(end))
    assert [(q["quarter"], q["rate"], q["lagging"], q["units_behind"]) for q in page["series"]["quarters"]] == [
        (q.quarter, f"{q.rate_2dp:.2f}", q.lagging, list(q.units_behind)) for q in expected.fund.quarters
    ]
    assert [(u["unit"], u["latest"]["rate"], u["latest"]["light"], u["lagging_quarters"]) for u in page["units"]] == [
        (u.unit, f"{u.latest.rate_2dp:.2f}", dd.light_of(u.latest), u.lagging_quarters) for u in expected.units
    ]
    assert {u["latest"]["light"] for u in page["units"]} >= {"yellow", "red"}  # July has both

    # Alerts and rejected files: the outbox's and the rejection table's rows.
    with engine.connect() as conn:
        outbox = conn.execute(
            select(
                store.outbox.c.id,
                store.outbox.c.subject,
                store.outbox.c.status,
                store.outbox.c.sent_at,
                store.outbox.c.period,
            )
            .where(store.outbox.c.fund_code == CODE)
            .order_by(store.outbox.c.id.desc())
        ).all()
        rejected = conn.execute(
            select(store.rejection.c.name, store.rejection.c.reason).where(store.rejection.c.fund_code == CODE)
        ).all()
    assert [(a["id"], a["subject"], a["status"], a["sent_at"], a["period"]) for a in page["alerts"]] == [
        tuple(r) for r in outbox
    ]
    assert all(a["answer"] is None for a in page["alerts"])
    assert [(r["name"], r["reason"]) for r in page["rejections"]] == [tuple(r) for r in rejected]
    assert HOSTILE in page["rejections"][0]["reason"]

    # Unit page: that unit's months and only its alerts.
    unit = expected.units[0]
    upage = dd.unit_page(engine, configs, CODE, unit.unit)
    assert [m["rate"] for m in upage["series"]["months"]] == [f"{m.rate_2dp:.2f}" for m in unit.months]
    assert upage["alerts"] and {a["unit"] for a in upage["alerts"]} == {unit.unit}
    assert dd.unit_page(engine, configs, CODE, "不存在的单位") is None
    assert dd.fund_page(engine, configs, "NO-SUCH-FUND") is None


def test_a_new_close_shows_at_once(tmp_path: Path) -> None:
    """The figures are cached per close: the next month's close replaces them."""
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _fund(tmp_path)
    _close(fund, db, range(1, 3))
    engine = store.open_store(db)
    configs = dd.fund_configs(fund.parent)
    assert dd.overview(engine, configs)[0]["month"] == "2021-02"
    _close(fund, db, range(3, 4))
    (row,) = dd.overview(engine, configs)
    m = compute(engine, load_fund_config(fund), 3).fund.month(3)
    assert (row["month"], row["rate"]) == ("2021-03", f"{m.rate_2dp:.2f}")


def test_light_is_the_close_severity() -> None:
    """Green on or above pace, yellow behind within the red gap, red beyond: the severity
    execution.py computed (thresholds are not derived again); no budget, no light."""
    from fractions import Fraction

    from budget_monitor.execution import MonthFigures

    def month(severity, rate=Decimal("10")):
        return MonthFigures(1, 0, 0, 100, rate, Decimal("8.33"), Decimal("1"), severity, 0, pace_exact=Fraction(1, 12))

    assert [dd.light_of(month(s)) for s in (None, "yellow", "red")] == ["green", "yellow", "red"]
    assert dd.light_of(month(None, rate=None)) == "none"


def test_funds_without_a_close_or_a_config_are_listed_with_the_reason(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    engine = store.open_store(db)
    store.upsert_fund(engine, "F-NEW", "新资金", 2021, "某局")
    store.upsert_fund(engine, "F-GONE", "无配置资金", 2021, "某局")
    new = tmp_path / "inbox" / "new"
    new.mkdir(parents=True)
    text = (JIANGMEN / "fund.yaml").read_text(encoding="utf-8").replace(f"code: {CODE}", "code: F-NEW")
    (new / "fund.yaml").write_text(text, encoding="utf-8")
    rows = {r["code"]: r for r in dd.overview(engine, dd.fund_configs(tmp_path / "inbox"))}
    assert rows["F-NEW"]["status"] == "not_closed" and rows["F-NEW"]["rate"] is None
    assert rows["F-GONE"]["status"] == "no_config" and rows["F-GONE"]["light"] == "none"
    assert dd.fund_page(engine, dd.fund_configs(tmp_path / "inbox"), "F-GONE")["series"] is None


def test_report_files_lists_only_the_year_end_outputs(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / CODE / "2021"
    folder.mkdir(parents=True)
    for name in ("自评报告.docx", "自评表.xlsx", "自评报告.html", "执行进度.png", "notes.txt", ".tmp-自评报告.docx"):
        (folder / name).write_bytes(b"x")
    (folder / "self_evaluation.json").write_text(json.dumps({"draft": True}), encoding="utf-8")
    (tmp_path / "secret.docx").write_bytes(b"s")
    (folder / "link自评报告.docx").symlink_to(tmp_path / "secret.docx")

    listed = dd.report_files(tmp_path / "reports", CODE, 2021)
    assert [f["name"] for f in listed["files"]] == [
        "自评报告.docx",
        "自评表.xlsx",
        "自评报告.html",
        "self_evaluation.json",
        "执行进度.png",
    ]
    assert listed["draft"] is True
    assert dd.report_path(tmp_path / "reports", CODE, 2021, "自评报告.docx") == folder / "自评报告.docx"
    for name in ("notes.txt", "link自评报告.docx", ".tmp-自评报告.docx", "../../../secret.docx", "..", "missing.docx"):
        assert dd.report_path(tmp_path / "reports", CODE, 2021, name) is None
    assert dd.report_files(tmp_path / "reports", "..", 2021)["files"] == []
    assert dd.report_files(tmp_path / "reports", "NONE", 2021) == {"files": [], "draft": None}
