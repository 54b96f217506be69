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
