"""validate.py: GX suites built from rules/validation_rules.csv; every bad input
names file, row, column and rule in its message."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from budget_monitor.config import FundConfigError, load_fund_config
from budget_monitor.ingest import IngestError, read_table
from budget_monitor.validate import (
    ValidationContext,
    adjusted_budget_fen,
    load_rules,
    report_for_ingest_error,
    rules_for,
    validate_batch,
    validate_many,
    validate_table,
)
from ingest_fixtures import (
    BUDGET_HEADER,
    DOCS,
    GOALS_HEADER,
    INS_HEADER,
    OUT_HEADER,
    PAY_HEADER,
    UNITS,
    good_budget,
    good_goals,
    good_payments,
    payment,
    validation_fund,
    write_csv,
    write_xlsx,
)

PAY_FILE = "payments/2021-03_支出明细.csv"


@pytest.fixture
def fund(tmp_path: Path) -> Path:
    return validation_fund(tmp_path, "gbk", "utf-8-sig")


@pytest.fixture
def ctx(fund: Path) -> ValidationContext:
    cfg = load_fund_config(fund)
    budget = read_table(fund / "budget.csv", "budget")
    goals = read_table(fund / "goals.csv", "goals")
    return ValidationContext.for_fund(cfg, fund_dir=fund, budget=budget, goals=goals, stored_net_fen=0)


def _pay(fund: Path, ctx: ValidationContext, rows: list[list[str]], header: list[str] = PAY_HEADER):
    path = write_csv(fund / PAY_FILE, header, rows, "gbk")
    return validate_table(read_table(path, "payments"), ctx)


def _only(report, rule_id: str):
    fails = [f for f in report.failures if f.rule_id == rule_id]
    assert fails, f"{rule_id} not reported: {report.first_reason()}"
    assert {f.rule_id for f in report.failures} == {rule_id}, [f.message for f in report.failures]
    return fails


# ------------------------------------------------------------------ good input


def test_context_from_fund(ctx: ValidationContext) -> None:
    assert ctx.fund_year == 2021
    assert ctx.units == frozenset(UNITS)
    assert ctx.doc_nos == frozenset(DOCS)
    assert ctx.pairs == frozenset({(DOCS[0], UNITS[0]), (DOCS[1], UNITS[1])})
    assert ctx.paid_by_unit is None and ctx.paid_by_doc is None  # budget-vs-store rules off
    assert ctx.adjusted_budget_fen == 1_400_000  # 10000 + 5000 - 1000 元
    assert ctx.goal_names == frozenset({"药品抽检批次", "抽检合格率", "群众满意度"})
    assert ctx.execution_weight == Decimal("10")
    assert ctx.inspection_categories == frozenset({"药品", "化妆品"})


def test_good_files_pass(fund: Path, ctx: ValidationContext) -> None:
    for kind in ("budget", "goals"):
        report = validate_table(read_table(fund / f"{kind}.csv", kind), ctx)
        assert report.ok, report.first_reason()
    report = _pay(fund, ctx, good_payments())
    assert report.ok and report.failures == [] and report.skipped == []
    assert report.file == PAY_FILE
    assert report.first_reason() == f"{PAY_FILE}: 校验通过"


def test_header_only_payments_file_is_valid(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [])
    assert report.ok and report.n_rows == 0


def test_xlsx_payments_validate(fund: Path, ctx: ValidationContext) -> None:
    path = write_xlsx(fund / "payments" / "2021-04_支出明细.xlsx", PAY_HEADER, good_payments())
    assert validate_table(read_table(path, "payments"), ctx).ok


# ------------------------------------------------------------------- bad input


def test_negative_amount_without_refund_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [payment("V1"), payment("V2", "-50.00")])
    (f,) = _only(report, "PAY-008")
    assert (f.row, f.column, f.value) == (3, "amount_fen", "-50.00")
    assert f.message == f"{PAY_FILE} 第3行 列“支付金额”: 金额“-50.00”为负数，但业务类型不是“退回”（规则 PAY-008）"
    assert not report.ok


def test_positive_refund_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [payment("V1", "50.00", kind="退回")])
    (f,) = _only(report, "PAY-009")
    assert "第2行" in f.message and "业务类型为“退回”的金额应为负数" in f.message


def test_impossible_date_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [payment("V1"), payment("V2", date="2021-02-30")])
    (f,) = _only(report, "PAY-003")
    assert f.message == f"{PAY_FILE} 第3行 列“支付日期”: 日期无法识别或不存在：“2021-02-30”（规则 PAY-003）"


def test_date_outside_fund_year_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [payment("V1", date="2022-01-01"), payment("V2", date="2020-12-31")])
    fails = _only(report, "PAY-006")
    assert [f.row for f in fails] == [2, 3]
    assert (
        fails[0].message == f"{PAY_FILE} 第2行 列“支付日期”: 支付日期“2022-01-01”不在资金年度 2021 年内（规则 PAY-006）"
    )


def test_unknown_unit_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [payment("V1"), payment("V2", unit="开平市市场监督管理局")])
    (f,) = _only(report, "PAY-004")
    assert f.message == f"{PAY_FILE} 第3行 列“预算单位”: 预算单位“开平市市场监督管理局”不在预算指标表中（规则 PAY-004）"


def test_payment_charged_to_another_units_allocation_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    # PAY-012: unit and doc_no both exist, but DOCS[1] was issued to UNITS[1] only.
    report = _pay(fund, ctx, [payment("V1"), payment("V2", unit=UNITS[0], doc=DOCS[1])])
    (f,) = _only(report, "PAY-012")
    assert (f.row, f.column, f.value) == (3, "doc_no", DOCS[1])
    assert f.message == (
        f"{PAY_FILE} 第3行 列“指标文号”: 指标文号“{DOCS[1]}”没有下达给预算单位“{UNITS[0]}”"
        "（预算指标表中没有该文号与该单位的指标，支付不能记在其他单位的指标上）（规则 PAY-012）"
    )


def test_payment_pair_rule_leaves_unknown_unit_or_doc_to_their_own_rules(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [payment("V1", unit="某单位"), payment("V2", doc="某文号"), payment("V3", unit="")])
    assert {f.rule_id for f in report.failures} == {"PAY-001", "PAY-004", "PAY-005"}


def test_unknown_doc_no_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [payment("V1", doc="江财工〔2021〕99号")])
    (f,) = _only(report, "PAY-005")
    assert f.message == f"{PAY_FILE} 第2行 列“指标文号”: 指标文号“江财工〔2021〕99号”不在预算指标表中（规则 PAY-005）"


def test_duplicate_voucher_in_a_file_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [payment("V1"), payment("V2"), payment("V1", "3.00")])
    fails = _only(report, "PAY-010")
    assert [f.row for f in fails] == [2, 4]
    assert fails[1].message == f"{PAY_FILE} 第4行 列“支付凭证号”: 支付凭证号“V1”在本文件中重复（规则 PAY-010）"


def test_non_numeric_amount_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = [payment(f"V{i}") for i in range(1, 11)] + [payment("V11", "壹仟元")]
    report = _pay(fund, ctx, rows)
    (f,) = _only(report, "PAY-002")
    assert f.message == f"{PAY_FILE} 第12行 列“支付金额”: 金额无法识别：“壹仟元”（规则 PAY-002）"
    assert report.first_reason() == f.message


def test_empty_required_cell_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    report = _pay(fund, ctx, [payment("V1"), payment("", "")])
    fails = _only(report, "PAY-001")
    assert [(f.row, f.column) for f in fails] == [(3, "voucher_no"), (3, "amount_fen")]
    assert fails[0].message == f"{PAY_FILE} 第3行 列“支付凭证号”: 必填项为空（规则 PAY-001）"


def test_unknown_business_type_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    (f,) = _only(_pay(fund, ctx, [payment("V1", kind="冲销")]), "PAY-007")
    assert "业务类型“冲销”无效" in f.message


def test_over_budget_total_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    stored = ValidationContext(**{**ctx.__dict__, "stored_net_fen": 1_300_000})
    report = _pay(fund, stored, [payment("V1", "600.00"), payment("V2", "400.01")])
    (f,) = _only(report, "PAY-011")
    assert f.row == 3  # the row at which the running total first exceeds the budget
    assert f.message == (
        f"{PAY_FILE} 第3行 列“支付金额”: 累计支付将超出全年预算：已入库 13000.00 元 + 本文件截至本行 1000.01 元"
        " > 全年预算 14000.00 元（本文件合计 1000.01 元）（规则 PAY-011）"
    )
    # exactly reaching the budget is fine
    assert _pay(fund, stored, [payment("V1", "600.00"), payment("V2", "400.00")]).ok


def test_wanyuan_payments_over_budget(fund: Path, ctx: ValidationContext) -> None:
    header = [h if h != "支付金额" else "支付金额（万元）" for h in PAY_HEADER]
    stored = ValidationContext(**{**ctx.__dict__, "stored_net_fen": 1_300_000})
    report = _pay(fund, stored, [payment("V1", "0.15")], header)
    (f,) = _only(report, "PAY-011")
    assert "本文件截至本行 1500.00 元" in f.message and "列“支付金额（万元）”" in f.message


def test_many_failures_first_reason_counts_the_rest(fund: Path, ctx: ValidationContext) -> None:
    rows = [payment(f"V{i}", "壹仟元") for i in range(30)]
    report = _pay(fund, ctx, rows)
    assert report.counts["PAY-002"] == 30
    assert len(report.failures) == 20  # failing rows listed per rule (count is complete)
    assert report.first_reason().endswith("；另有 29 处错误")
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["counts"]["PAY-002"] == 30
    assert data["failures"][0]["rule_id"] == "PAY-002" and data["failures"][0]["row"] == 2


def test_bad_goal_weights_are_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = good_goals()
    rows[0][4] = "45"
    path = write_csv(fund / "goals.csv", GOALS_HEADER, rows)
    report = validate_table(read_table(path, "goals"), ctx)
    (f,) = _only(report, "GOL-005")
    assert f.message == "goals.csv 列“分值”: 各指标分值合计 95 分，加上预算执行率分值 10 分应为 100 分（规则 GOL-005）"


def test_goal_weight_unreadable_and_duplicate_name(fund: Path, ctx: ValidationContext) -> None:
    rows = good_goals() + [["产出指标", "数量指标", "药品抽检批次", "≥1", "十"]]
    report = validate_table(read_table(write_csv(fund / "goals.csv", GOALS_HEADER, rows), "goals"), ctx)
    ids = {f.rule_id for f in report.failures}
    assert {"GOL-002", "GOL-003"} <= ids
    msg = next(f.message for f in report.failures if f.rule_id == "GOL-002")
    assert msg == "goals.csv 第5行 列“分值”: 分值无法识别：“十”（规则 GOL-002）"


def test_budget_kind_and_negative_amount(fund: Path, ctx: ValidationContext) -> None:
    rows = good_budget() + [
        [DOCS[0], UNITS[0], "2021-02-01", "100", "追加预算"],
        [DOCS[0], UNITS[0], "2021-02-01", "-5", "追加"],
    ]
    report = validate_table(read_table(write_csv(fund / "budget.csv", BUDGET_HEADER, rows), "budget"), ctx)
    by = {f.rule_id: f for f in report.failures}
    assert (
        by["BUD-004"].message
        == "budget.csv 第5行 列“类型”: 类型“追加预算”无效，应为 年初、追加 或 调减（规则 BUD-004）"
    )
    assert by["BUD-005"].row == 6


def _budget(fund: Path, ctx: ValidationContext, rows: list[list[str]]):
    return validate_table(read_table(write_csv(fund / "budget.csv", BUDGET_HEADER, rows), "budget"), ctx)


def test_budget_duplicate_doc_unit_kind_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    # BUD-008: the store keys allocations by 指标文号 + 预算单位 + 类型.
    rows = good_budget() + [[DOCS[0], UNITS[0], "2021-03-01", "200.00", "年初"]]
    fails = _only(_budget(fund, ctx, rows), "BUD-008")
    assert [f.row for f in fails] == [2, 5]
    assert fails[1].message == (
        f"budget.csv 第5行 列“指标文号”: 指标文号“{DOCS[0]}”、预算单位“{UNITS[0]}”、类型“年初”重复："
        "同一指标文号、预算单位、类型只能有一行（请合并金额）（规则 BUD-008）"
    )
    # same doc_no and unit with another 类型 is a different allocation
    assert _budget(fund, ctx, good_budget() + [[DOCS[0], UNITS[0], "2021-03-01", "200.00", "追加"]]).ok


def _paid(ctx: ValidationContext, by_unit: dict[str, int], by_doc: dict[str, int]) -> ValidationContext:
    return ValidationContext(**{**ctx.__dict__, "paid_by_unit": by_unit, "paid_by_doc": by_doc, "paid_by_pair": {}})


def test_budget_dropping_a_unit_or_doc_with_stored_payments_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    # BUD-009 / BUD-011: the corrected budget drops UNITS[1] and DOCS[1], which have payments.
    paid = _paid(ctx, {UNITS[0]: 100_000, UNITS[1]: 50_000}, {DOCS[0]: 100_000, DOCS[1]: 50_000})
    report = _budget(fund, paid, good_budget()[:1])
    assert [f.rule_id for f in report.failures] == ["BUD-009", "BUD-011"]
    bud009, bud011 = report.failures
    assert (bud009.row, bud009.column, bud009.value) == (None, "unit", UNITS[1])
    assert bud009.message == (
        f"budget.csv 列“预算单位”: 预算单位“{UNITS[1]}”已有入库支付（净支付 500.00 元），"
        "新的预算指标表中不能没有该单位（规则 BUD-009）"
    )
    assert bud011.message == (
        f"budget.csv 列“指标文号”: 指标文号“{DOCS[1]}”已有入库支付（净支付 500.00 元），"
        "新的预算指标表中不能没有该文号（规则 BUD-011）"
    )
    # a header-only budget misses every paid unit and doc_no
    empty = _budget(fund, paid, [])
    assert empty.counts == {"BUD-009": 2, "BUD-011": 2}
    # a unit whose payments net to 0 (paid then refunded) must stay too
    zero = _budget(fund, _paid(ctx, {UNITS[1]: 0}, {}), good_budget()[:1])
    assert [(f.rule_id, f.value) for f in zero.failures] == [("BUD-009", UNITS[1])]


def test_budget_below_net_paid_of_a_unit_or_doc_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    # BUD-010 / BUD-012: UNITS[1] / DOCS[1] keep 5000 − 1000 = 4000 元 but have paid 4000.01 元.
    paid = _paid(ctx, {UNITS[0]: 100_000, UNITS[1]: 400_001}, {DOCS[0]: 100_000, DOCS[1]: 400_001})
    report = _budget(fund, paid, good_budget())
    assert [(f.rule_id, f.row) for f in report.failures] == [
        ("BUD-010", 3),
        ("BUD-010", 4),
        ("BUD-012", 3),
        ("BUD-012", 4),
    ]
    assert report.failures[0].message == (
        f"budget.csv 第3行 列“预算单位”: 预算单位“{UNITS[1]}”的全年预算数（年初 + 追加 − 调减）4000.00 元"
        "低于其已入库净支付 4000.01 元（规则 BUD-010）"
    )
    assert report.failures[2].message == (
        f"budget.csv 第3行 列“指标文号”: 指标文号“{DOCS[1]}”的全年预算数（年初 + 追加 − 调减）4000.00 元"
        "低于其已入库净支付 4000.01 元（规则 BUD-012）"
    )
    # exactly the net paid is enough; an unreadable amount is reported once (BUD-002), not judged
    assert _budget(fund, _paid(ctx, {UNITS[1]: 400_000}, {DOCS[1]: 400_000}), good_budget()).ok
    rows = good_budget()
    rows[2][3] = "壹仟元"
    bad = _budget(fund, paid, rows)
    assert {f.rule_id for f in bad.failures} == {"BUD-002"}


def test_budget_moving_a_paid_doc_no_to_another_unit_is_rejected(fund: Path) -> None:
    """BUD-013: payments of (DOCS[0], UNITS[0]) are stored; the corrected budget
    still has DOCS[0] and UNITS[0] (BUD-009/011 pass) but gives DOCS[0] to UNITS[1]."""
    cfg = load_fund_config(fund)
    paid = ValidationContext.for_fund(
        cfg,
        fund_dir=fund,
        paid_by_unit={UNITS[0]: 100_000},
        paid_by_doc={DOCS[0]: 100_000},
        paid_by_pair={(DOCS[0], UNITS[0]): 100_000},
    )
    moved = [
        [DOCS[0], UNITS[1], "2021-01-04", "10,000.00", "年初"],
        [DOCS[1], UNITS[0], "2021-01-04", "5,000.00", "年初"],
    ]
    report = _budget(fund, paid, moved)
    (f,) = _only(report, "BUD-013")
    assert (f.row, f.value) == (None, f"{DOCS[0]}｜{UNITS[0]}")
    assert f.message == (
        f"budget.csv 列“指标文号”: 指标文号｜预算单位“{DOCS[0]}｜{UNITS[0]}”这一分配已有入库支付（净支付 1000.00 元），"
        "新的预算指标表中不能没有该分配（不能把已支付的文号改到其他单位）（规则 BUD-013）"
    )
    assert _budget(fund, paid, good_budget()).ok  # the allocation kept: fine


def test_budget_store_rules_pass_without_stored_payments_and_skip_without_context(
    fund: Path, ctx: ValidationContext
) -> None:
    assert _budget(fund, _paid(ctx, {}, {}), good_budget()).ok
    report = _budget(fund, ctx, good_budget())
    assert report.ok
    assert [s[:7] for s in report.skipped] == ["BUD-009", "BUD-010", "BUD-011", "BUD-012", "BUD-013"]


def test_for_fund_fills_the_stored_payment_maps(fund: Path) -> None:
    cfg = load_fund_config(fund)
    ctx = ValidationContext.for_fund(cfg, fund_dir=fund, paid_by_unit={UNITS[0]: 5}, paid_by_doc={DOCS[0]: 5})
    assert ctx.paid_by_unit == {UNITS[0]: 5} and ctx.paid_by_doc == {DOCS[0]: 5}
    assert ctx.gx_parameters()["paid_units"] == [UNITS[0]]


def test_budget_date_far_outside_year_is_a_warning(fund: Path, ctx: ValidationContext) -> None:
    rows = good_budget() + [[DOCS[0], UNITS[0], "2019-12-01", "100", "追加"]]
    report = validate_table(read_table(write_csv(fund / "budget.csv", BUDGET_HEADER, rows), "budget"), ctx)
    assert report.ok
    (w,) = report.warnings
    assert w.rule_id == "BUD-007" and w.row == 5


def test_inspection_rules(fund: Path, ctx: ValidationContext) -> None:
    rows = [
        ["S1", "2021-03-01", "药品", UNITS[0], "合格"],
        ["S2", "2021-03-02", "食品", UNITS[0], "合格"],
        ["S2", "2021-03-03", "化妆品", UNITS[0], "基本合格"],
        ["S4", "2021-03-04", "化妆品", "某检测所", "待检"],
    ]
    path = write_csv(fund / "inspections" / "2021-Q1_抽检记录.csv", INS_HEADER, rows, "gbk")
    report = validate_table(read_table(path, "inspections"), ctx)
    by = {f.rule_id: f for f in report.failures}
    assert set(by) == {"INS-003", "INS-004", "INS-005"}
    assert by["INS-004"].message == (
        "inspections/2021-Q1_抽检记录.csv 第3行 列“品种类别”: 品种类别“食品”不在本资金允许的类别（fund.yaml inspection_categories）中（规则 INS-004）"
    )
    assert by["INS-005"].row == 4
    assert [w.rule_id for w in report.warnings] == ["INS-007"]


def test_outputs_rules(fund: Path, ctx: ValidationContext) -> None:
    rows = [
        ["2021-06", "", "药品抽检批次", "300", ""],
        ["2022-01", "", "抽检合格率", "98%", ""],
        ["2021-07", "", "不存在的指标", "1", ""],
    ]
    path = write_csv(fund / "outputs" / "2021-06_产出数据.csv", OUT_HEADER, rows)
    report = validate_table(read_table(path, "outputs"), ctx)
    by = {f.rule_id: f for f in report.failures}
    assert set(by) == {"OUT-003", "OUT-004"}
    assert (
        by["OUT-003"].message
        == "outputs/2021-06_产出数据.csv 第4行 列“三级指标”: 三级指标“不存在的指标”不在绩效目标表中（规则 OUT-003）"
    )
    assert by["OUT-004"].row == 3


def test_missing_context_skips_rules_visibly(fund: Path) -> None:
    report = validate_table(
        read_table(write_csv(fund / PAY_FILE, PAY_HEADER, good_payments()), "payments"), ValidationContext()
    )
    assert report.ok
    assert any(s.startswith("PAY-004") for s in report.skipped)
    assert any(s.startswith("PAY-011") for s in report.skipped)


def test_ingest_errors_become_reports(fund: Path, ctx: ValidationContext) -> None:
    path = fund / "payments" / "2021-05_支出明细.csv"
    write_csv(path, PAY_HEADER, good_payments(), "utf-16")
    with pytest.raises(IngestError) as exc:
        read_table(path, "payments")
    report = report_for_ingest_error(exc.value, "payments", ctx)
    assert not report.ok
    assert report.first_reason() == (
        "payments/2021-05_支出明细.csv: 编码无法识别（应为 UTF-8 或 GBK/GB18030 编码的 CSV）（规则 ING-001）"
    )
    assert len(report.sha256) == 64


def test_missing_column_report(fund: Path, ctx: ValidationContext) -> None:
    path = write_csv(fund / PAY_FILE, [h for h in PAY_HEADER if h != "支付日期"], [])
    with pytest.raises(IngestError) as exc:
        read_table(path, "payments")
    reason = report_for_ingest_error(exc.value, "payments", ctx).first_reason()
    assert reason == f"{PAY_FILE}: 缺少必需的列“支付日期”（规则 ING-003）"


def test_validate_many_shares_the_context(fund: Path, ctx: ValidationContext) -> None:
    a = read_table(write_csv(fund / "payments" / "a.csv", PAY_HEADER, good_payments()), "payments")
    b = read_table(write_csv(fund / "payments" / "b.csv", PAY_HEADER, [payment("V1", "-1")]), "payments")
    ra, rb = validate_many([(a, ctx), (b, ctx)])
    assert ra.ok and not rb.ok


def test_validate_batch_gives_every_file_its_own_report(
    fund: Path,
    ctx: ValidationContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small files validated together get exactly the reports they get alone:
    row failures, warnings, per-file sums (PAY-011) and per-fund parameters
    (INS-004's categories) stay with their own file; only the files that
    failed something are run again on their own."""
    import budget_monitor.validate as v

    near_limit = ValidationContext(**{**ctx.__dict__, "stored_net_fen": 1_300_000})
    only_drugs = ValidationContext(**{**ctx.__dict__, "inspection_categories": frozenset({"药品"})})

    def pay(name: str, rows: list[list[str]]):
        return read_table(write_csv(fund / "payments" / name, PAY_HEADER, rows, "gbk"), "payments")

    def ins(name: str, category: str, unit: str = UNITS[0]):
        rows = [["S1", "2021-03-01", "药品", UNITS[0], "合格"], ["S2", "2021-03-02", category, unit, "合格"]]
        return read_table(write_csv(fund / "inspections" / name, INS_HEADER, rows), "inspections")

    items = [
        (pay("good1.csv", good_payments()), ctx),
        (pay("bad_amount.csv", [payment("V1"), payment("V2", "壹仟元")]), ctx),
        (pay("good2.csv", [payment("V1", "600.00")]), near_limit),
        (pay("over.csv", [payment("V1", "600.00"), payment("V2", "400.01")]), near_limit),  # PAY-011 only
        (pay("dup.csv", [payment("V1"), payment("V1")]), ctx),
        (ins("ins_ok.csv", "化妆品"), ctx),
        (ins("ins_ok_but_warned.csv", "化妆品", unit="某检测所"), ctx),  # INS-007 warning, loads
        (ins("ins_cosmetics.csv", "化妆品"), only_drugs),  # same file content, other fund: INS-004
        (ins("ins_drugs.csv", "药品"), only_drugs),
        (
            read_table(write_csv(fund / "payments" / "alone.csv", PAY_HEADER, good_payments()), "payments"),
            ValidationContext(),
        ),  # another rule set (no context): its own group
    ]
    alone = [validate_table(t, c).to_dict() for t, c in items]
    rerun: list[str] = []
    real = v.validate_table

    def counting(t, c):
        rerun.append(t.path.name)
        return real(t, c)

    monkeypatch.setattr(v, "validate_table", counting)
    together = [r.to_dict() for r in validate_batch(items)]
    assert together == alone
    assert [r["ok"] for r in together] == [True, False, True, False, False, True, True, False, True, True]
    assert together[3]["counts"] == {"PAY-011": 1} and together[7]["counts"] == {"INS-004": 1}
    # Good files passed in the shared runs; a group of one is validated alone.
    assert sorted(rerun) == sorted(
        ["bad_amount.csv", "over.csv", "dup.csv", "ins_ok_but_warned.csv", "ins_cosmetics.csv", "alone.csv"]
    )


def test_validate_batch_judges_each_file_by_its_own_fund_in_one_run(
    fund: Path,
    ctx: ValidationContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Native value sets and bounds take their values from each file's fund (its
    units, its budget, its year): files of different funds still share one GX
    run, and each is judged by its own values (a unit known only to the other
    fund, an amount within the other fund's budget, a voucher repeated across
    files: each file alone is fine or not as it is alone)."""
    import budget_monitor.validate as v

    other_unit = "开平市市场监督管理局"
    other = ValidationContext(
        **{
            **ctx.__dict__,
            "units": frozenset({*UNITS, other_unit}),
            "pairs": frozenset({*ctx.pairs, (DOCS[0], other_unit)}),
            "adjusted_budget_fen": 10_000_000,
            "fund_year": 2022,
        }
    )

    def pay(name: str, rows: list[list[str]]):
        return read_table(write_csv(fund / "payments" / name, PAY_HEADER, rows), "payments")

    items = [
        (pay("a.csv", [payment("V1", unit=other_unit)]), ctx),  # PAY-004 here only
        (pay("b.csv", [payment("V1", unit=other_unit, date="2022-03-05")]), other),  # fine in its fund
        (pay("c.csv", [payment("V2", "20000.00")]), ctx),  # PAY-014/PAY-011 here only
        (pay("d.csv", [payment("V2", "20000.00", date="2022-03-05")]), other),  # fine in its fund
        (pay("e.csv", [payment("V3"), payment("V4")]), ctx),
        (pay("f.csv", [payment("V3", date="2022-01-31"), payment("V4", date="2022-02-01")]), other),
    ]
    alone = [validate_table(t, c).to_dict() for t, c in items]
    rerun: list[str] = []
    real = v.validate_table
    monkeypatch.setattr(v, "validate_table", lambda t, c: rerun.append(t.path.name) or real(t, c))
    together = [r.to_dict() for r in validate_batch(items)]
    assert together == alone
    assert [r["ok"] for r in together] == [False, True, False, True, True, True]
    assert set(together[0]["counts"]) == {"PAY-004"}
    assert set(together[2]["counts"]) == {"PAY-011", "PAY-014"}
    assert sorted(rerun) == ["a.csv", "c.csv"]


def test_validate_batch_validates_a_big_file_on_its_own(
    fund: Path,
    ctx: ValidationContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import budget_monitor.validate as v

    monkeypatch.setattr(v, "BATCH_MAX_ROWS", 2)
    a = read_table(write_csv(fund / "payments" / "a.csv", PAY_HEADER, good_payments()), "payments")  # 3 rows
    b = read_table(write_csv(fund / "payments" / "b.csv", PAY_HEADER, [payment("V9")]), "payments")
    c = read_table(write_csv(fund / "payments" / "c.csv", PAY_HEADER, [payment("V8")]), "payments")
    seen: list[str] = []
    real = v.validate_table
    monkeypatch.setattr(v, "validate_table", lambda t, x: seen.append(t.path.name) or real(t, x))
    assert all(r.ok for r in validate_batch([(a, ctx), (b, ctx), (c, ctx)]))
    assert seen == ["a.csv"]


def test_bad_fund_yaml_is_a_fund_config_error(tmp_path: Path) -> None:
    (tmp_path / "fund.yaml").write_text("code: X\nname: n\nyear: 1990\ndepartment: d\ncolour: red\n", encoding="utf-8")
    with pytest.raises(FundConfigError) as exc:
        load_fund_config(tmp_path)
    assert "字段 year" in str(exc.value) and "字段 colour：未知字段" in str(exc.value)
    (tmp_path / "fund.yaml").write_text("code: [unclosed\n", encoding="utf-8")
    with pytest.raises(FundConfigError, match="无法解析 YAML"):
        load_fund_config(tmp_path)
    with pytest.raises(FundConfigError, match="找不到 fund.yaml"):
        load_fund_config(tmp_path / "nowhere")


# ------------------------------------------------------------------ rule table


def test_rule_table_is_well_formed() -> None:
    import great_expectations as gx

    rules = load_rules()
    assert len({r.rule_id for r in rules}) == len(rules)
    for r in rules:
        assert r.severity in ("fatal", "warning")
        assert r.message_zh
        if r.expectation:
            assert hasattr(gx.expectations, r.expectation), r.rule_id
            assert r.columns, r.rule_id
    for kind in ("goals", "budget", "payments", "inspections", "outputs"):
        assert rules_for(kind)


def test_adjusted_budget() -> None:
    import pandas as pd

    df = pd.DataFrame({"kind": ["年初", "追加", "调减"], "amount_fen": pd.array([100, 50, 30], dtype="Int64")})
    assert adjusted_budget_fen(df) == 120


def test_budget_sign_is_defined_once() -> None:
    # Validation and execution share budget.py: one sign table, one 全年预算数.
    from budget_monitor import budget, execution, validate

    assert validate.adjusted_budget_fen is budget.adjusted_budget_fen
    assert not hasattr(validate, "_BUDGET_SIGN") and not hasattr(execution, "_BUDGET_SIGN")
    assert dict(budget.BUDGET_SIGN) == {"年初": 1, "追加": 1, "调减": -1}


def test_data_docs_fund_items_skip_lock_and_dot_files(fund: Path) -> None:
    from budget_monitor.validate import _fund_items

    for name in ("2021-03_支出明细.csv", "~$2021-03_支出明细.csv", ".2021-03_支出明细.csv"):
        write_csv(fund / "payments" / name, PAY_HEADER, good_payments())
    items = _fund_items(fund)
    assert sorted(t.path.name for t, _ in items) == ["2021-03_支出明细.csv", "budget.csv", "goals.csv"]


@pytest.mark.slow
def test_data_docs_site_is_built(fund: Path, ctx: ValidationContext, tmp_path: Path) -> None:
    from budget_monitor.validate import build_data_docs

    write_csv(fund / PAY_FILE, PAY_HEADER, [payment("V1", "壹仟元")])
    index = build_data_docs(tmp_path / "docs", fund_dir=fund)
    assert index.is_file()
    pages = list((tmp_path / "docs" / "data_docs" / "validations").rglob("*.html"))
    assert any("payments" in str(p) for p in pages)


def test_failing_rows_are_the_first_in_file_order_for_each_rule(fund: Path, ctx: ValidationContext) -> None:
    rows = [payment(f"V{i:02d}") for i in range(60)]
    for i in range(10, 60):
        rows[i] = payment(f"V{i:02d}", unit=f"未知单位{i}")
    rows[5] = payment("V05", date="2021-02-30")
    rows[40] = payment("V40", "-1.00", unit=f"未知单位{40}")
    report = _pay(fund, ctx, rows)
    assert report.counts == {"PAY-003": 1, "PAY-004": 50, "PAY-008": 1}
    pay004 = [f.row for f in report.failures if f.rule_id == "PAY-004"]
    assert pay004 == list(range(12, 32))  # file rows of data rows 10..29
    assert [f.row for f in report.failures if f.rule_id == "PAY-003"] == [7]
    assert [f.row for f in report.failures if f.rule_id == "PAY-008"] == [42]
    assert report.failures[0].rule_id == "PAY-003"


def test_failed_expectation_without_rows_still_fails(fund: Path, ctx: ValidationContext) -> None:
    from types import SimpleNamespace

    from budget_monitor.validate import ValidationReport, _collect, rule

    table = read_table(write_csv(fund / PAY_FILE, PAY_HEADER, good_payments()), "payments")
    report = ValidationReport("f.csv", "f.csv", "payments", "x", 3)
    res = SimpleNamespace(exception_info={}, result={"unexpected_count": 2, "partial_unexpected_list": ["甲"]})
    _collect(report, rule("PAY-004"), "unit", res, None, table, ctx, "f.csv")
    assert not report.ok
    assert report.failures[0].message == "f.csv 列“预算单位”: 预算单位“甲”不在预算指标表中（共 2 行，规则 PAY-004）"


def test_importing_validate_does_not_import_great_expectations() -> None:
    import subprocess
    import sys

    code = "import sys, budget_monitor.quarantine, budget_monitor.validate; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------- issue #13: the budget check cannot be fooled


def test_absurd_amounts_cannot_wrap_the_over_budget_sum(fund: Path, ctx: ValidationContext) -> None:
    """Ten rows of 9999999999999999.99 元 once summed (int64) to a negative number and
    passed PAY-011. Each is now out of range at parse (PAY-013), and no sum wraps."""
    rows = [payment(f"V{i}", "9999999999999999.99") for i in range(10)]
    report = _pay(fund, ctx, rows)
    fails = _only(report, "PAY-013")
    assert report.counts == {"PAY-013": 10}
    assert fails[0].message == (
        f"{PAY_FILE} 第2行 列“支付金额”: 金额“9999999999999999.99”超出可受理范围："
        "单笔金额的绝对值应小于 1 万亿元（规则 PAY-013）"
    )


def test_single_payment_above_the_budget_in_force_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    # PAY-014: the budget is 14000.00 元; a refund's magnitude is bounded too.
    report = _pay(fund, ctx, [payment("V1", "14000.01"), payment("V2", "-14000.01", kind="退回")])
    fails = [f for f in report.failures if f.rule_id == "PAY-014"]
    assert [f.row for f in fails] == [2, 3]
    assert fails[0].message == (
        f"{PAY_FILE} 第2行 列“支付金额”: 单笔金额“14000.01”的绝对值超过本资金全年预算 14000.00 元（规则 PAY-014）"
    )
    assert _pay(fund, ctx, [payment("V1", "14000.00")]).ok


def test_over_budget_names_the_row_where_the_running_total_first_exceeds(fund: Path, ctx: ValidationContext) -> None:
    # 5000 + 5000 + 5000 > 14000 at row 4; a later refund does not bring the file total back.
    rows = [
        payment("V1", "5000.00"),
        payment("V2", "5000.00"),
        payment("V3", "5000.00"),
        payment("V4", "-500.00", kind="退回"),
    ]
    (f,) = _only(_pay(fund, ctx, rows), "PAY-011")
    assert (f.row, f.column) == (4, "amount_fen")
    assert "本文件截至本行 15000.00 元 > 全年预算 14000.00 元（本文件合计 14500.00 元）" in f.message
    # A refund later in the file that brings the total back within the budget: accepted.
    rows[3] = payment("V4", "-1000.00", kind="退回")
    assert _pay(fund, ctx, rows).ok


def test_over_budget_with_many_large_rows_is_exact(fund: Path, ctx: ValidationContext) -> None:
    """100,000 rows of 999,999,999,999.99 元 would wrap an int64 sum; the running total
    is exact (Python ints past int64's reach), so the fund is still over budget."""
    import dataclasses

    import numpy as np
    import pandas as pd

    from budget_monitor.validate import exact_ints, running_totals

    big = ValidationContext(**{**ctx.__dict__, "adjusted_budget_fen": 10**14 - 1})
    assert exact_ints(np.full(100_000, 10**14 - 1, dtype="int64")).dtype == object
    assert exact_ints(np.full(90_000, 10**14 - 1, dtype="int64")).dtype == np.int64  # cannot wrap
    table = read_table(write_csv(fund / PAY_FILE, PAY_HEADER, [payment("V1")]), "payments")
    frame = (
        table.df.iloc[[0] * 100_000]
        .reset_index(drop=True)
        .assign(amount_fen=pd.array([10**14 - 1] * 100_000, dtype="Int64"), row=range(2, 100_002))
    )
    running = running_totals(dataclasses.replace(table, df=frame), "amount_fen", big)
    assert running[-1] == 100_000 * (10**14 - 1) > 2**63


def test_text_longer_than_the_store_column_is_rejected_on_every_engine(fund: Path, ctx: ValidationContext) -> None:
    # PAY-015: PostgreSQL's varchar(100) refused a 101-character voucher that SQLite kept.
    long = "V" * 101
    (f,) = _only(_pay(fund, ctx, [payment(long)]), "PAY-015")
    assert (f.row, f.column) == (2, "voucher_no")
    assert f.message.endswith(f"“{long}”长 101 个字符，超过该列上限 100 个字符（规则 PAY-015）")
    assert _pay(fund, ctx, [payment("V" * 100)]).ok


def test_budget_amount_out_of_range_and_total_bound(fund: Path, ctx: ValidationContext) -> None:
    (f,) = _only(
        _budget(fund, ctx, good_budget() + [[DOCS[0], UNITS[0], "2021-03-01", "1000000000000", "追加"]]), "BUD-014"
    )
    assert f.row == 5 and "超出可受理范围" in f.message
    # Two allocations each in range whose total is 1 万亿元 or more: BUD-015.
    rows = [
        [DOCS[0], UNITS[0], "2021-01-04", "999999999999.99", "年初"],
        [DOCS[1], UNITS[1], "2021-01-04", "999999999999.99", "年初"],
    ]
    (f,) = _only(_budget(fund, ctx, rows), "BUD-015")
    assert f.message == (
        "budget.csv 列“金额”: 全年预算数（年初 + 追加 − 调减）1999999999999.98 元"
        "超出可受理范围（应小于 1 万亿元）（规则 BUD-015）"
    )


def test_long_text_rules_of_every_table(fund: Path, ctx: ValidationContext) -> None:
    long = "长" * 201
    fails = _only(_budget(fund, ctx, good_budget() + [[long, UNITS[0], "2021-03-01", "1.00", "追加"]]), "BUD-016")
    assert fails[0].row == 5 and "长 201 个字符，超过该列上限 200 个字符" in fails[0].message
    goals = good_goals() + [["产出指标", "数量指标", long, "≥1", "0"]]
    report = validate_table(read_table(write_csv(fund / "goals.csv", GOALS_HEADER, goals), "goals"), ctx)
    assert [f.rule_id for f in report.failures] == ["GOL-006"]
    ins = write_csv(fund / "inspections" / "i.csv", INS_HEADER, [["S1", "2021-03-01", "药" * 51, UNITS[0], "合格"]])
    report = validate_table(read_table(ins, "inspections"), ctx)
    assert "INS-008" in report.counts and "上限 50 个字符" in report.failures[0].message
    out = write_csv(fund / "outputs" / "o.csv", OUT_HEADER, [["2021-06", long, "药品抽检批次", "1", ""]])
    report = validate_table(read_table(out, "outputs"), ctx)
    assert "OUT-006" in report.counts


def test_value_sets_run_as_the_columns_absent_values_and_conditions_on_a_narrow_frame() -> None:
    """GX's cost grows with a value set's size and a row condition copies the
    frame: a $PARAMETER in-set runs as not-in-set on the column's values the set
    lacks, a conditioned expectation over the columns it reads; results keep the
    spec asked for (bench/RESULTS.md, stage b)."""
    import pandas as pd

    from budget_monitor.validation.runtime import RESULT_FORMAT, _absent_values, _narrow, specs_for

    pay004 = [s for s in specs_for(rules_for("payments")) if s.rule_id == "PAY-004"]
    frame = pd.DataFrame({"row": [2, 3, 4], "unit": pd.Categorical(["甲", "乙", None]), "x": [1, 2, 3]})
    (spec,), params = _absent_values(tuple(pay004), frame, {"units": ["甲", "丙"] * 1000})
    assert spec.expectation == "ExpectColumnValuesToNotBeInSet" and spec.id == pay004[0].id
    assert params[spec.kwargs["value_set"]["$PARAMETER"]] == ["乙"]
    pay008 = [s for s in specs_for(rules_for("payments")) if s.rule_id in ("PAY-008", "PAY-007")]
    frame = pd.DataFrame({c: [0] for c in ("row", "amount_fen", "kind", "voucher_no", "unit")})
    (whole, plain), (narrow, conditioned) = _narrow(tuple(pay008), frame, RESULT_FORMAT)
    assert [s.rule_id for s in plain] == ["PAY-007"] and [s.rule_id for s in conditioned] == ["PAY-008"]
    assert whole is frame and sorted(narrow.columns) == ["amount_fen", "kind", "row"]
