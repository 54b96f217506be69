"""fund.yaml: the schema's defaults come from rules.md; bad settings fail with a Chinese reason."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from budget_monitor.config import FundConfigError, load_fund_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "jiangmen-2021"


def _with(tmp_path: Path, **changes) -> Path:
    fund = tmp_path / "f"
    shutil.copytree(EXAMPLE, fund)
    data = yaml.safe_load((fund / "fund.yaml").read_text(encoding="utf-8"))
    data.update(changes)
    (fund / "fund.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return fund


def test_defaults_follow_rules_md(tmp_path: Path) -> None:
    cfg = load_fund_config(_with(tmp_path))
    assert cfg.pace.policy == "linear_month" and cfg.pace.tolerance == 0
    assert cfg.pace.red_gap == Decimal(20) and cfg.scoring.execution_weight == Decimal(10)
    assert [(g.grade, g.min_score) for g in cfg.scoring.grades] == [("优", 90), ("良", 80), ("中", 60), ("差", 0)]


def test_fund_without_recipients_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(FundConfigError, match="recipients"):
        load_fund_config(_with(tmp_path, recipients=[]))


def test_unknown_key_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    with pytest.raises(FundConfigError, match="字段 tolerence：未知字段"):
        load_fund_config(_with(tmp_path, tolerence=5))


def test_milestones_policy_needs_its_table(tmp_path: Path) -> None:
    with pytest.raises(FundConfigError, match="milestones"):
        load_fund_config(_with(tmp_path, pace={"policy": "milestones"}))


def test_validator_reasons_read_in_chinese_without_pydantic_prefix(tmp_path: Path) -> None:
    with pytest.raises(FundConfigError) as caught:
        load_fund_config(_with(tmp_path, pace={"policy": "milestones"}))
    assert "Value error" not in str(caught.value)
    assert "字段 pace：policy 为 milestones 时必须给出 milestones 表" in str(caught.value)


def test_fund_code_dot_dot_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(FundConfigError, match="字段 code：资金代码“..”无效：.*不能以点或连字符开头"):
        load_fund_config(_with(tmp_path, code=".."))


def test_symlinked_fund_yaml_is_refused(tmp_path: Path) -> None:
    fund = _with(tmp_path)
    real = tmp_path / "elsewhere.yaml"
    (fund / "fund.yaml").rename(real)
    (fund / "fund.yaml").symlink_to(real)
    with pytest.raises(FundConfigError, match="fund.yaml 是符号链接，已拒绝读取"):
        load_fund_config(fund)


def test_unknown_pace_policy_names_the_table(tmp_path: Path) -> None:
    with pytest.raises(
        FundConfigError, match="字段 pace.policy：取值无效（应为 linear_month、linear_day、milestones、workdays 之一"
    ):
        load_fund_config(_with(tmp_path, pace={"policy": "linear_week"}))


def test_a_pace_policy_registered_in_the_table_is_in_the_schema_the_pace_and_the_mails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new policy is a function and a row of pace.POLICIES: nothing else changes."""
    from datetime import date
    from fractions import Fraction

    from budget_monitor import pace
    from budget_monitor.alerts import render_environment
    from budget_monitor.config import FundConfig, PaceConfig

    def half_year(day: date, cfg: PaceConfig) -> Fraction:
        return Fraction(50) if day.month <= 6 else Fraction(100)

    monkeypatch.setitem(
        pace.POLICIES, "half_year", pace.Policy("half_year", "按半年", half_year, needs=("milestones",))
    )

    schema = FundConfig.model_json_schema()
    assert "half_year" in schema["$defs"]["PaceConfig"]["properties"]["policy"]["enum"]
    with pytest.raises(FundConfigError, match="字段 pace：policy 为 half_year 时必须给出 milestones 表"):
        load_fund_config(_with(tmp_path / "a", pace={"policy": "half_year"}))
    cfg = load_fund_config(_with(tmp_path / "b", pace={"policy": "half_year", "milestones": {"06-30": 50}}))
    assert pace.pace_fraction_at(date(2021, 3, 1), cfg.pace) == 50
    assert pace.month_end_pace(2021, 12, cfg.pace) == 100
    label = render_environment().from_string('{% from "alert_policy.j2" import policy_zh %}{{ policy_zh[p] }}')
    assert label.render(p="half_year") == "按半年"

    monkeypatch.undo()
    assert "half_year" not in FundConfig.model_json_schema()["$defs"]["PaceConfig"]["properties"]["policy"]["enum"]


@pytest.mark.parametrize(
    "address", ["caiwu@example.com\n", "caiwu@example.com\r\nBcc: evil@x.cn", "caiwu @example.com"]
)
def test_a_recipient_with_a_line_break_or_blank_is_refused(tmp_path: Path, address: str) -> None:
    # "$" of re.match let a trailing newline through, and the mail's To header then failed to build.
    with pytest.raises(FundConfigError, match="recipients"):
        load_fund_config(_with(tmp_path, recipients=[address]))
