"""Every rule of rules/validation_rules.csv is made to fire by at least one test.

One minimal real file per rule that no other test exercised (written to
tmp_path, read with ingest.read_table, validated with validate.validate_table),
asserting the rule id, the row, the column and the Chinese message; then a
meta-test that every rule id of the table is named somewhere under tests/.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from budget_monitor.config import load_fund_config
from budget_monitor.ingest import read_table
from budget_monitor.validate import Failure, ValidationContext, ValidationReport, validate_table
from ingest_fixtures import (
    BUDGET_HEADER,
    DOCS,
    GOALS_HEADER,
    INS_HEADER,
    OUT_HEADER,
    UNITS,
    good_budget,
    good_goals,
    validation_fund,
    write_csv,
)

RULES_CSV = Path(__file__).resolve().parents[1] / "include" / "budget_monitor" / "rules" / "validation_rules.csv"
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def fund(tmp_path: Path) -> Path:
    return validation_fund(tmp_path)


@pytest.fixture
def ctx(fund: Path) -> ValidationContext:
    cfg = load_fund_config(fund)
    return ValidationContext.for_fund(
        cfg,
        fund_dir=fund,
        budget=read_table(fund / "budget.csv", "budget"),
        goals=read_table(fund / "goals.csv", "goals"),
        stored_net_fen=0,
    )


def _validate(
    fund: Path, ctx: ValidationContext, rel: str, kind: str, header: list[str], rows: list[list[str]]
) -> ValidationReport:
    path = write_csv(fund / rel, header, rows)
    return validate_table(read_table(path, kind), ctx)


def _fired(found: list[Failure], rule_id: str) -> list[Failure]:
    hits = [f for f in found if f.rule_id == rule_id]
    assert hits, f"{rule_id} did not fire: {[f.message for f in found]}"
    return hits


# ------------------------------------------------------------------ goals


def test_gol_001_empty_required_goal_cell_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = good_goals()
    rows[1][3] = ""  # 指标值 of the second goal (file row 3)
    report = _validate(fund, ctx, "goals.csv", "goals", GOALS_HEADER, rows)
    (f,) = _fired(report.failures, "GOL-001")
    assert (f.row, f.column, f.header) == (3, "target", "指标值")
    assert f.message == "goals.csv 第3行 列“指标值”: 必填项为空（规则 GOL-001）"


def test_gol_004_negative_goal_weight_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = good_goals()
    rows[2][4] = "-20"  # file row 4
    report = _validate(fund, ctx, "goals.csv", "goals", GOALS_HEADER, rows)
    (f,) = _fired(report.failures, "GOL-004")
    assert (f.row, f.column) == (4, "weight")
    assert f.message == "goals.csv 第4行 列“分值”: 分值不能为负数：“-20”（规则 GOL-004）"


# ------------------------------------------------------------------ budget


def test_bud_001_empty_required_budget_cell_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = good_budget()
    rows[0][1] = ""  # 预算单位 of file row 2
    report = _validate(fund, ctx, "budget.csv", "budget", BUDGET_HEADER, rows)
    (f,) = _fired(report.failures, "BUD-001")
    assert (f.row, f.column, f.header) == (2, "unit", "预算单位")
    assert f.message == "budget.csv 第2行 列“预算单位”: 必填项为空（规则 BUD-001）"


def test_bud_003_impossible_budget_date_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = good_budget()
    rows[2][2] = "2021-02-30"  # file row 4
    report = _validate(fund, ctx, "budget.csv", "budget", BUDGET_HEADER, rows)
    (f,) = _fired(report.failures, "BUD-003")
    assert (f.row, f.column, f.header) == (4, "date", "下达日期")
    assert f.message == "budget.csv 第4行 列“下达日期”: 日期无法识别或不存在：“2021-02-30”（规则 BUD-003）"


def test_bud_006_negative_annual_budget_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = [[DOCS[0], UNITS[0], "2021-01-04", "100.00", "年初"], [DOCS[0], UNITS[0], "2021-06-01", "250.50", "调减"]]
    report = _validate(fund, ctx, "budget.csv", "budget", BUDGET_HEADER, rows)
    (f,) = _fired(report.failures, "BUD-006")
    assert f.column == "amount_fen" and f.row is None  # a whole-table rule
    assert f.message == "budget.csv 列“金额”: 全年预算数（年初 + 追加 − 调减）为负数：-150.50 元（规则 BUD-006）"


# ------------------------------------------------------------------ inspections


def test_ins_001_empty_required_inspection_cell_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = [["S1", "2021-03-01", "药品", UNITS[0], "合格"], ["S2", "2021-03-02", "药品", UNITS[0], ""]]
    report = _validate(fund, ctx, "inspections/2021-03_抽检.csv", "inspections", INS_HEADER, rows)
    (f,) = _fired(report.failures, "INS-001")
    assert (f.row, f.column, f.header) == (3, "result", "检验结论")
    assert f.message == "inspections/2021-03_抽检.csv 第3行 列“检验结论”: 必填项为空（规则 INS-001）"


def test_ins_002_impossible_sample_date_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = [["S1", "2021-13-01", "药品", UNITS[0], "合格"]]
    report = _validate(fund, ctx, "inspections/2021-03_抽检.csv", "inspections", INS_HEADER, rows)
    (f,) = _fired(report.failures, "INS-002")
    assert (f.row, f.column, f.header) == (2, "sample_date", "抽样日期")
    assert (
        f.message
        == "inspections/2021-03_抽检.csv 第2行 列“抽样日期”: 日期无法识别或不存在：“2021-13-01”（规则 INS-002）"
    )


def test_ins_006_sample_date_outside_fund_year_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = [["S1", "2021-03-01", "药品", UNITS[0], "合格"], ["S2", "2020-12-31", "药品", UNITS[0], "合格"]]
    report = _validate(fund, ctx, "inspections/2021-03_抽检.csv", "inspections", INS_HEADER, rows)
    (f,) = _fired(report.failures, "INS-006")
    assert (f.row, f.column, f.header) == (3, "sample_date", "抽样日期")
    assert (
        f.message
        == "inspections/2021-03_抽检.csv 第3行 列“抽样日期”: 抽样日期“2020-12-31”不在资金年度 2021 年内（规则 INS-006）"
    )


# ------------------------------------------------------------------ outputs


def test_out_001_empty_required_output_cell_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = [["2021-06", "", "药品抽检批次", "", ""]]
    report = _validate(fund, ctx, "outputs/2021-06_产出.csv", "outputs", OUT_HEADER, rows)
    (f,) = _fired(report.failures, "OUT-001")
    assert (f.row, f.column, f.header) == (2, "value", "完成值")
    assert f.message == "outputs/2021-06_产出.csv 第2行 列“完成值”: 必填项为空（规则 OUT-001）"


def test_out_002_unreadable_month_is_rejected(fund: Path, ctx: ValidationContext) -> None:
    rows = [["2021-06", "", "药品抽检批次", "300", ""], ["六月", "", "药品抽检批次", "310", ""]]
    report = _validate(fund, ctx, "outputs/2021-06_产出.csv", "outputs", OUT_HEADER, rows)
    (f,) = _fired(report.failures, "OUT-002")
    assert (f.row, f.column, f.header) == (3, "month", "月份")
    assert f.message == "outputs/2021-06_产出.csv 第3行 列“月份”: 月份无法识别：“六月”（规则 OUT-002）"


def test_out_005_output_unit_not_in_budget_is_a_warning(fund: Path, ctx: ValidationContext) -> None:
    rows = [["2021-06", UNITS[0], "药品抽检批次", "300", ""], ["2021-06", "某检测所", "药品抽检批次", "20", ""]]
    report = _validate(fund, ctx, "outputs/2021-06_产出.csv", "outputs", OUT_HEADER, rows)
    assert report.ok  # a warning does not reject the file
    (w,) = _fired(report.warnings, "OUT-005")
    assert (w.row, w.column, w.header, w.severity) == (3, "unit", "预算单位", "warning")
    assert (
        w.message == "outputs/2021-06_产出.csv 第3行 列“预算单位”: 预算单位“某检测所”不在预算指标表中（规则 OUT-005）"
    )


# ------------------------------------------------------------------ meta


def _rule_ids() -> list[str]:
    with RULES_CSV.open(encoding="utf-8", newline="") as fh:
        return [row["rule_id"] for row in csv.DictReader(fh)]


def test_every_rule_is_named_by_a_test() -> None:
    """A rule id must appear in some test source other than this meta-test's
    own rule table reading (this file names the rules it covers in its tests)."""
    ids = _rule_ids()
    assert len(ids) == len(set(ids)) and ids, "rule ids must be unique and present"
    named: set[str] = set()
    pattern = re.compile(r"\b[A-Z]{3}-\d{3}\b")
    for src in TESTS.rglob("*.py"):
        named.update(pattern.findall(src.read_text(encoding="utf-8")))
    missing = [r for r in ids if r not in named]
    assert not missing, f"rules no test makes fire (add a test naming each): {missing}"
