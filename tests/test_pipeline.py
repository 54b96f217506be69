"""The monthly close and the year end over the example funds, on SQLite and PostgreSQL.

These are the end-to-end checks of issue 3/5: the example year loaded month
by month reproduces the seed's totals exactly; bad files are quarantined and
nothing of them lands; reruns change nothing; corrections are audited; the
year-end outputs carry the seed's figures.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from budget_monitor import outbox, store
from budget_monitor.config import load_fund_config
from budget_monitor.pipeline import (
    MonthRejected,
    close_month,
    close_months,
    load_month,
    load_months,
    run_monthly,
    run_year_end,
)

from readers import docx_text

REPO = Path(__file__).resolve().parents[1]
JIANGMEN = REPO / "examples" / "jiangmen-2021"
SECOND = REPO / "examples" / "second-fund-2022"
SEED_TOTAL_FEN = 372_090_000


def _copy(src: Path, tmp: Path) -> Path:
    dest = tmp / src.name
    shutil.copytree(src, dest)
    return dest


def _close_year(fund: Path, db: str, months: range = range(1, 13)) -> None:
    cfg = load_fund_config(fund)
    for m in months:
        month = f"{cfg.year}-{m:02d}"
        load_month(fund, month, db, cfg=cfg)
        close_month(fund, month, db, cfg=cfg, chart=False)


def _bad_payments(fund: Path, name: str = "2021-03_补录.csv") -> Path:
    path = fund / "payments" / name
    path.write_text(
        "支付凭证号,预算单位,指标文号,支付金额,支付日期\n"
        "BAD-0001,台山市市场监督管理局,江财工〔2021〕13号,100.00,2021-03-10\n"
        "BAD-0002,台山市市场监督管理局,江财工〔2021〕13号,壹仟元,2021-03-11\n",
        encoding="utf-8",
    )
    return path


def test_example_year_reproduces_seed_totals(db_url: str, tmp_path: Path) -> None:
    fund = _copy(JIANGMEN, tmp_path)
    _close_year(fund, db_url)
    engine = store.open_store(db_url)
    code = load_fund_config(fund).code
    assert store.net_paid_fen(engine, code) == SEED_TOTAL_FEN
    counts = store.read_inspections(engine, code)["category"].value_counts().to_dict()
    assert counts == {"药品": 550, "药包材": 9, "化妆品": 30, "医疗器械": 55}
    allocations = store.read_allocations(engine, code)
    assert int(allocations["amount_fen"].sum()) == SEED_TOTAL_FEN
    # Quarter alerts for Q2 and Q3 only.
    with engine.connect() as conn:
        kinds = conn.execute(store.outbox.select().where(store.outbox.c.unit == "")).mappings().all()
    quarter_alerts = sorted(r["period"] for r in kinds if r["kind"] == "quarter_lagging")
    assert quarter_alerts == ["2021-Q2", "2021-Q3"]


def test_rerun_of_a_month_changes_nothing_and_sends_nothing_new(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(JIANGMEN, tmp_path)
    _close_year(fund, db, range(1, 7))
    engine = store.open_store(db)
    code = load_fund_config(fund).code
    before, pending = store.snapshot(engine, code), outbox.pending_count(engine, code)
    again = load_month(fund, "2021-06", db)
    closed = close_month(fund, "2021-06", db, chart=False)
    assert {f.status for f in again.files} <= {"skipped", "deferred"}
    assert closed.new_alerts == 0 and closed.alerts > 0
    assert store.snapshot(engine, code) == before
    assert outbox.pending_count(engine, code) == pending


def test_bad_file_is_quarantined_and_nothing_of_it_lands(db_url: str, tmp_path: Path) -> None:
    fund = _copy(JIANGMEN, tmp_path)
    _close_year(fund, db_url, range(1, 3))
    engine = store.open_store(db_url)
    code = load_fund_config(fund).code
    before = store.snapshot(engine, code)
    bad = _bad_payments(fund)
    with pytest.raises(MonthRejected) as info:
        load_month(fund, "2021-03", db_url)
    reason = info.value.reason
    assert "payments/2021-03_补录.csv" in reason and "第3行" in reason and "支付金额" in reason
    assert "壹仟元" in reason and "PAY-" in reason
    assert not bad.exists()
    (report_path,) = (fund / "quarantine").glob("*.report.json")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["ok"] is False and report["failures"][0]["row"] == 3
    assert report["failures"][0]["column"] == "amount_fen"
    # The good March files landed; none of the bad file's rows did (BAD-0001 was valid).
    after = store.snapshot(engine, code)
    vouchers = {r[0] for r in after["payments"]}
    assert "BAD-0001" not in vouchers and len(after["payments"]) > len(before["payments"])
    # Sending the same bad file again is rejected the same way and changes nothing.
    _bad_payments(fund)
    with pytest.raises(MonthRejected):
        load_month(fund, "2021-03", db_url)
    assert store.snapshot(engine, code) == after


def _as_fund(src: Path, dest: Path, code: str) -> Path:
    """A copy of an example fund under another fund code."""
    shutil.copytree(src, dest)
    yaml = dest / "fund.yaml"
    text = yaml.read_text(encoding="utf-8")
    old = load_fund_config(src).code
    yaml.write_text(text.replace(f"code: {old}", f"code: {code}", 1), encoding="utf-8")
    assert load_fund_config(dest).code == code
    return dest


def test_load_months_lands_what_load_month_lands_fund_by_fund(db_url: str, tmp_path: Path) -> None:
    """Funds loaded together (their files validated in shared GX runs) end in
    the same state, with the same outcomes, as funds loaded one by one; a
    rejected file or a broken fund.yaml stays with its own fund."""

    def funds(root: Path) -> list[Path]:
        dirs = [_as_fund(JIANGMEN, root / f"f{n}", f"JM-{n}") for n in range(3)]
        broken = root / "broken"
        shutil.copytree(JIANGMEN, broken)
        (broken / "fund.yaml").write_text("code: [unclosed\n", encoding="utf-8")
        return [dirs[0], broken, dirs[1], dirs[2]]

    together, alone = funds(tmp_path / "together"), funds(tmp_path / "alone")
    single_db = f"sqlite:///{tmp_path / 'alone.db'}"
    for month in ("2021-01", "2021-02", "2021-03"):
        if month == "2021-03":
            _bad_payments(together[2])
            _bad_payments(alone[2])
        loads = load_months(together, month, db_url)
        assert [ld.fund_dir for ld in loads] == together
        assert "无法解析 YAML" in str(loads[1].error) and loads[1].result is None
        for ld, d in zip(loads, alone, strict=True):
            if d.name == "broken":
                continue
            assert ld.error is None, ld.error
            one = load_month(d, month, single_db, raise_on_reject=False)
            assert [(f.kind, f.name, f.status, f.rows, f.reason) for f in ld.result.files] == [
                (f.kind, f.name, f.status, f.rows, f.reason.replace(str(d), str(ld.fund_dir))) for f in one.files
            ]
            assert ld.result.counts == one.counts
    assert [len(ld.result.rejected) for ld in loads if ld.result] == [0, 1, 0]
    engine, single = store.open_store(db_url), store.open_store(single_db)
    for n in range(3):
        assert store.snapshot(engine, f"JM-{n}") == store.snapshot(single, f"JM-{n}")
    assert store.net_paid_fen(engine, "JM-0") > 0


def test_load_months_puts_a_validation_crash_on_its_own_fund(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash of the shared validation is retried file by file, and a file
    whose own validation crashes is rejected alone (ING-005, quarantined, the
    traceback in the log): the fund's other files still load (issue #13)."""
    from budget_monitor import validate

    db = f"sqlite:///{tmp_path / 's.db'}"
    dirs = [_as_fund(JIANGMEN, tmp_path / f"f{n}", f"JM-{n}") for n in range(2)]
    real = validate.validate_table

    def crash_batch(items):
        raise RuntimeError("GX blew up")

    def crash_on_f1(table, ctx):
        if ctx.fund_dir == dirs[1] and table.kind == "payments":
            raise RuntimeError("GX blew up on this file")
        return real(table, ctx)

    monkeypatch.setattr(validate, "validate_batch", crash_batch)
    monkeypatch.setattr(validate, "validate_table", crash_on_f1)
    ok, crashed = load_months(dirs, "2021-01", db)
    assert ok.error is None and "loaded" in {f.status for f in ok.result.files} and not ok.result.rejected
    assert crashed.error is None
    (bad,) = crashed.result.rejected
    assert bad.kind == "payments" and "（规则 ING-005）" in bad.reason
    assert "文件处理时发生意外错误（RuntimeError：GX blew up on this file）" in bad.reason
    assert {f.kind for f in crashed.result.files if f.status == "loaded"} >= {"budget", "goals"}
    assert len(list((dirs[1] / "quarantine").glob("*.report.json"))) == 1
    engine = store.open_store(db)
    assert store.net_paid_fen(engine, "JM-0") > 0 and store.net_paid_fen(engine, "JM-1") == 0


def test_close_months_closes_each_fund_and_queues_each_alert_once(db_url: str, tmp_path: Path) -> None:
    """The close of a DAG batch: every fund in order, a broken fund back as its
    own error (the others still close), every due alert queued exactly once;
    a rerun of the batch gives the same figures and queues nothing new."""
    from budget_monitor.config import FundConfigError

    dirs = [_as_fund(JIANGMEN, tmp_path / f"f{n}", f"JM-{n}") for n in range(2)]
    broken = tmp_path / "broken"
    shutil.copytree(JIANGMEN, broken)
    (broken / "fund.yaml").write_text("code: [unclosed\n", encoding="utf-8")
    funds = [dirs[0], broken, dirs[1]]
    for m in range(1, 7):
        load_months(dirs, f"2021-{m:02d}", db_url)
    closed = close_months(funds, "2021-06", db_url)
    assert [c.fund_dir for c in closed] == funds
    assert isinstance(closed[1].error, FundConfigError) and "无法解析 YAML" in str(closed[1].error)
    assert closed[1].error.__traceback__ is not None and closed[1].result is None
    engine = store.open_store(db_url)
    for c in (closed[0], closed[2]):
        assert c.error is None, c.error
        r = c.result
        assert r.lagging_quarters == [2] and r.alerts == r.new_alerts > 0
        assert outbox.pending_count(engine, r.fund_code) == r.alerts
    again = close_months(funds, "2021-06", db_url)
    for first, rerun in zip(closed, again):
        if first.result is None:
            continue
        r, a = first.result, rerun.result
        assert (a.rate, a.pace, a.gap, a.severity, a.units_behind, a.alerts) == (
            r.rate,
            r.pace,
            r.gap,
            r.severity,
            r.units_behind,
            r.alerts,
        )
        assert a.new_alerts == 0 and outbox.pending_count(engine, r.fund_code) == r.alerts


def test_corrected_payment_changes_total_by_the_difference(db_url: str, tmp_path: Path) -> None:
    fund = _copy(JIANGMEN, tmp_path)
    _close_year(fund, db_url, range(1, 2))
    engine = store.open_store(db_url)
    code = load_fund_config(fund).code
    total = store.net_paid_fen(engine, code)
    with engine.connect() as conn:
        voucher, unit, doc_no, fen, day, econ, memo = conn.execute(
            store.payment.select()
            .with_only_columns(
                store.payment.c.voucher_no,
                store.payment.c.unit,
                store.payment.c.doc_no,
                store.payment.c.amount_fen,
                store.payment.c.pay_date,
                store.payment.c.econ_class,
                store.payment.c.memo,
            )
            .where(store.payment.c.kind == "支付")
            .order_by(store.payment.c.voucher_no)
            .limit(1)
        ).one()
    new = fen - 12345
    (fund / "payments" / "2021-01_更正.csv").write_text(
        "支付凭证号,预算单位,指标文号,支付金额,支付日期,经济分类,摘要\n"
        f"{voucher},{unit},{doc_no},{new // 100}.{new % 100:02d},{day.isoformat()},{econ},{memo}\n",
        encoding="utf-8",
    )
    result = load_month(fund, "2021-01", db_url)
    assert [f.replaced for f in result.files if f.status == "loaded"] == [1]
    assert store.net_paid_fen(engine, code) == total - 12345
    (row,) = [a for a in store.read_audit(engine, code) if a["table_name"] == "payment"]
    assert (row["row_key"], row["column_name"]) == (voucher, "amount_fen")
    assert (int(row["old_value"]), int(row["new_value"])) == (fen, fen - 12345)


def test_file_with_later_rows_waits_for_its_month(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(JIANGMEN, tmp_path)
    result = load_month(fund, "2021-01", db)
    deferred = {f.name for f in result.files if f.status == "deferred"}
    assert "payments/2021-02_支出明细.csv" in deferred
    assert "payments/2021-01_支出明细.csv" not in deferred


def test_year_end_rerun_mails_nothing_and_a_correction_mails_the_report_again(db_url: str, tmp_path: Path) -> None:
    """The same year-end twice is one mail; after the data is corrected the report
    goes out once more, marked as a correction, and then not again."""
    from budget_monitor.alerts import DIGEST_HEADER, YEAR_END_REPORT

    fund = _copy(JIANGMEN, tmp_path)
    _close_year(fund, db_url)
    engine = store.open_store(db_url)
    code = load_fund_config(fund).code
    out = tmp_path / "out"

    def year_end_mails() -> list[tuple[str, str, str]]:
        return [
            (period, str(h["Subject"]), str(h[DIGEST_HEADER]))
            for period, h in outbox.stored_headers(engine, code, YEAR_END_REPORT)
        ]

    assert run_year_end(fund, 2021, out, db_url).queued == 1
    assert run_year_end(fund, 2021, out, db_url).queued == 0  # same report: no second mail
    yaml = fund / "fund.yaml"
    department = load_fund_config(fund).department
    yaml.write_text(
        yaml.read_text(encoding="utf-8").replace(department, "江门市市场监督管理局（更正）", 1), encoding="utf-8"
    )
    assert run_year_end(fund, 2021, out, db_url).queued == 1  # corrected: mailed once more
    assert run_year_end(fund, 2021, out, db_url).queued == 0
    mails = year_end_mails()
    assert [m[0] for m in mails] == ["2021", "2021#1"]
    assert "更正" not in mails[0][1] and "【绩效自评·更正】" in mails[1][1] and "（更正稿）" in mails[1][1]
    assert mails[0][2] != mails[1][2] and len(mails[1][2].strip()) == 32
    with engine.connect() as conn:
        raw = conn.execute(select(store.outbox.c.message).where(store.outbox.c.period == "2021#1")).scalar_one()
    body = email.message_from_string(raw, policy=email.policy.default).get_body(("plain",)).get_content()
    assert "因数据更正已重新生成" in body and "江门市市场监督管理局（更正）" in body
    yaml.write_text(
        yaml.read_text(encoding="utf-8").replace("江门市市场监督管理局（更正）", department, 1), encoding="utf-8"
    )
    assert run_year_end(fund, 2021, out, db_url).queued == 1  # changed back: that is a correction too
    assert [m[0] for m in year_end_mails()] == ["2021", "2021#1", "2021#2"]
    assert "（更正稿之2）" in year_end_mails()[2][1]


def test_year_end_reproduces_the_seed_report(db_url: str, tmp_path: Path) -> None:
    fund = _copy(JIANGMEN, tmp_path)
    _close_year(fund, db_url)
    out = tmp_path / "out"
    result = run_year_end(fund, 2021, out, db_url)
    ev = json.loads((out / "self_evaluation.json").read_text(encoding="utf-8"))
    assert ev["budget"] == {
        "initial_yuan": "3720900.00",
        "adjusted_yuan": "3720900.00",
        "executed_yuan": "3720900.00",
        "execution_rate": 100.0,
    }
    assert [q["quarter"] for q in ev["quarters"] if q["lagging"]] == [2, 3]
    assert ev["total_score"] == 100.0 and ev["grade"] == "优" and result.grade == "优"
    assert ev["execution_score"] == {"weight": 10.0, "score": 10.0}
    actual = {i["name"]: i["actual"] for i in ev["indicators"]}
    assert (actual["药品抽检批次"], actual["药包材抽检批次"], actual["化妆品抽检批次"], actual["医疗器械抽检批次"]) == (
        "550",
        "9",
        "30",
        "55",
    )
    assert ev["problems"][0].startswith("第二季度和第三季度支出进度不达序时进度。")
    seed_lines = [
        "江门市2021年促进经济高质量发展专项资金（市场监督管理-药品监督管理）为372.09万元，支出372.09万元，支出率100%",
        "自评得分为100分，绩效等级为优",
        "第二季度和第三季度支出进度不达序时进度",
        "部分项目启动较晚导致第二季度支出进度不达序时进度",
        "完成本市药品抽检550批次，药包材抽检（抽样）9批次，化妆品抽检30批次，医疗器械抽检55批次",
        "脱产培训372人次",
        "加强工作规划，提高资金执行进度",
    ]
    texts = {
        "docx": docx_text(out / "自评报告.docx"),
        "html": (out / "自评报告.html").read_text(encoding="utf-8"),
        "md": (out / "自评报告.md").read_text(encoding="utf-8"),
    }
    for kind, text in texts.items():
        for line in seed_lines:
            assert line in text, (kind, line)
    assert result.queued == 1  # the report mail, queued once


def test_second_fund_lands_in_liang_with_hand_checked_scores(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(SECOND, tmp_path)
    _close_year(fund, db)
    run_year_end(fund, 2022, tmp_path / "out", db)
    ev = json.loads((tmp_path / "out" / "self_evaluation.json").read_text(encoding="utf-8"))
    scores = {i["name"]: i["score"] for i in ev["indicators"]}
    assert scores == {
        "食品抽检批次": 16.0,
        "食品安全培训人次": 12.75,
        "抽检合格率": 9.99,
        "抽检结果按时报送率": 9.47,
        "人均培训成本": 12.0,
        "食品安全事件发生数": 10.0,
        "服务对象满意度": 8.0,
    }
    assert ev["execution_score"]["score"] == 9.0
    assert ev["total_score"] == 87.21 and ev["grade"] == "良"
    assert ev["budget"]["adjusted_yuan"] == "1250000.00"
    assert ev["budget"]["executed_yuan"] == "1125000.00"


def test_run_monthly_sends_through_the_mailer(tmp_path: Path) -> None:
    sent = []

    class Recorder:
        def send(self, msg) -> None:
            sent.append(msg["Subject"])

    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(JIANGMEN, tmp_path)
    first = run_monthly(fund, "2021-01", db, Recorder())
    again = run_monthly(fund, "2021-01", db, Recorder())
    assert first.sent == len(sent) == first.close.alerts > 0
    assert again.sent == 0 and len(sent) == first.sent


def test_fact_files_wait_for_a_valid_budget(tmp_path: Path) -> None:
    """A rejected budget must not let payments land unchecked against units and allocations."""
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(JIANGMEN, tmp_path)
    budget = fund / "budget.csv"
    budget.write_text(
        budget.read_text(encoding="utf-8") + "江财工〔2021〕99号,江门市市场监督管理局,2021-01-04,壹仟元,年初\n",
        encoding="utf-8",
    )
    with pytest.raises(MonthRejected) as info:
        load_month(fund, "2021-01", db)
    outcomes = {f.name: f for f in info.value.result.files}
    assert outcomes["budget.csv"].status == "rejected"
    jan = outcomes["payments/2021-01_支出明细.csv"]
    assert jan.status == "deferred" and "预算指标表" in jan.reason
    engine = store.open_store(db)
    assert store.table_counts(engine, "JM-2021-YPJG")["payments"] == 0


def test_row_dated_after_the_fund_year_is_rejected_not_deferred(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(JIANGMEN, tmp_path)
    _close_year(fund, db, range(1, 3))
    (fund / "payments" / "2021-12_补录.csv").write_text(
        "支付凭证号,预算单位,指标文号,支付金额,支付日期\n"
        "LATE-1,台山市市场监督管理局,江财工〔2021〕13号,10.00,2022-12-06\n",
        encoding="utf-8",
    )
    with pytest.raises(MonthRejected) as info:
        load_month(fund, "2021-03", db)
    (bad,) = info.value.result.rejected
    assert bad.name == "payments/2021-12_补录.csv" and "2022-12-06" in bad.reason


def test_putting_back_an_earlier_budget_version_applies_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(JIANGMEN, tmp_path)
    original = (fund / "budget.csv").read_bytes()
    load_month(fund, "2021-01", db)
    engine = store.open_store(db)
    (fund / "budget.csv").write_bytes(
        original + '江财工〔2021〕88号,台山市市场监督管理局,2021-03-01,"100,000.00",追加\n'.encode()
    )
    load_month(fund, "2021-01", db)
    added = int(store.read_allocations(engine, "JM-2021-YPJG")["amount_fen"].sum())
    assert added == SEED_TOTAL_FEN + 10_000_000
    (fund / "budget.csv").write_bytes(original)
    result = load_month(fund, "2021-01", db)
    assert {f.name: f.status for f in result.files}["budget.csv"] == "loaded"
    assert int(store.read_allocations(engine, "JM-2021-YPJG")["amount_fen"].sum()) == SEED_TOTAL_FEN


def test_rejection_notice_is_queued_once_and_retried_through_the_outbox(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(JIANGMEN, tmp_path)
    _bad_payments(fund, "2021-01_补录.csv")
    with pytest.raises(MonthRejected):
        load_month(fund, "2021-03", db)
    _bad_payments(fund, "2021-01_补录.csv")  # the same bytes sent again
    with pytest.raises(MonthRejected):
        load_month(fund, "2021-03", db)
    engine = store.open_store(db)
    with engine.connect() as conn:
        rows = conn.execute(store.outbox.select().where(store.outbox.c.kind == "rejection")).mappings().all()
    assert len(rows) == 1 and rows[0]["status"] == "pending"
    assert "2021-01_补录.csv" in rows[0]["subject"] and rows[0]["subject"].startswith("【数据退回】")

    class Down:
        def send(self, msg) -> None:
            raise ConnectionRefusedError("smtp down")

    got = []

    class Up:
        def send(self, msg) -> None:
            got.append(msg)

    assert outbox.flush(engine, Down(), "JM-2021-YPJG").failed >= 1
    outbox.flush(engine, Up(), "JM-2021-YPJG")
    (wire,) = [m for m in got if str(m["Subject"]).startswith("【数据退回】")]
    notice = email.message_from_bytes(wire.as_bytes(), policy=email.policy.default)  # as a receiver reads it
    body = notice.get_body(preferencelist=("plain",)).get_content()
    assert "壹仟元" in body and "第3行" in body and "PAY-002" in body


def test_corrected_budget_must_still_cover_stored_payments(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(JIANGMEN, tmp_path)
    load_month(fund, "2021-01", db)
    engine = store.open_store(db)
    before = store.read_allocations(engine, "JM-2021-YPJG")
    lines = (fund / "budget.csv").read_text(encoding="utf-8-sig").splitlines()
    kept = [line for line in lines if "台山市" not in line]  # 台山 has January payments
    (fund / "budget.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    with pytest.raises(MonthRejected) as info:
        load_month(fund, "2021-01", db)
    assert "budget.csv" in info.value.reason and "台山市市场监督管理局" in info.value.reason
    assert store.read_allocations(engine, "JM-2021-YPJG").equals(before)
    # Moving 台山's paid allocation to another 指标文号 keeps every unit and doc_no
    # (and their totals) but orphans the stored payments of (13号, 台山): BUD-013.
    moved = [line.replace("江财工〔2021〕13号,台山市", "江财工〔2021〕12号,台山市") for line in lines]
    assert moved != lines
    (fund / "budget.csv").write_text("\n".join(moved) + "\n", encoding="utf-8")
    with pytest.raises(MonthRejected) as info:
        load_month(fund, "2021-01", db)
    assert "BUD-013" in info.value.reason and "江财工〔2021〕13号｜台山市市场监督管理局" in info.value.reason
    assert store.read_allocations(engine, "JM-2021-YPJG").equals(before)


def test_close_forecasts_from_the_departments_earlier_fund(tmp_path: Path) -> None:
    """Issue 15 item 5 end to end: with the department's 2021 fund in the store, the
    2022 fund's alert mails forecast from its monthly profile, and say so."""
    from budget_monitor.pipeline import forecast_history

    db = f"sqlite:///{tmp_path / 's.db'}"
    earlier = _copy(JIANGMEN, tmp_path)
    for m in range(1, 13):
        load_month(earlier, f"2021-{m:02d}", db)
    fund = _copy(SECOND, tmp_path)
    cfg = load_fund_config(fund)
    cfg = cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update={"mode": "each"})})
    engine = store.open_store(db)
    history = forecast_history(engine, cfg)
    assert history.own == () and [(p.fund_code, p.year) for p in history.department] == [("JM-2021-YPJG", 2021)]
    assert history.department[0].cumulative_fen[-1] == SEED_TOTAL_FEN == history.department[0].budget_fen
    texts = []
    for m in range(1, 7):
        load_month(fund, f"2022-{m:02d}", db, cfg=cfg)
        close_month(fund, f"2022-{m:02d}", db, cfg=cfg, chart=False)
    with engine.connect() as conn:
        for (raw,) in conn.execute(select(store.outbox.c.message).where(store.outbox.c.fund_code == cfg.code)):
            msg = email.message_from_string(raw, policy=email.policy.default)
            texts.append(msg.get_body(preferencelist=("plain",)).get_content())
    forecasts = [t for t in texts if "预测方法" in t]
    assert forecasts and all("参照本部门其他专项资金往年月度支出规律推算" in t for t in forecasts)
    assert all("最接近的1个资金年度（2021年）" in t for t in forecasts)


def test_close_reads_earlier_years_only_for_mails_with_a_forecast(tmp_path: Path, monkeypatch) -> None:
    """A digest close renders no forecast, so it does not read the earlier years;
    a close mailing each alert reads them once however many mails it renders."""
    from budget_monitor import pipeline
    from budget_monitor.forecast import History

    calls = []

    def counted(engine, cfg) -> History:
        calls.append(cfg.code)
        return History()

    monkeypatch.setattr(pipeline, "forecast_history", counted)
    db = f"sqlite:///{tmp_path / 's.db'}"
    fund = _copy(JIANGMEN, tmp_path)
    cfg = load_fund_config(fund)
    load_month(fund, "2021-05", db, cfg=cfg)
    assert close_month(fund, "2021-05", db, cfg=cfg, chart=False).new_alerts > 0
    assert calls == []
    each = cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update={"mode": "each"})})
    load_month(fund, "2021-06", db, cfg=each)
    assert close_month(fund, "2021-06", db, cfg=each, chart=False).new_alerts > 1
    assert calls == [cfg.code]
