"""The committed example funds: reproducible and with the intended figures.

The files are read here with pandas directly (not through the project's
ingest) so that these tests pin the data itself, whatever ingest does.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import sys
import zipfile
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import jinja2
import pandas as pd
import pytest

from budget_monitor.config import load_fund_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
JM = EXAMPLES / "jiangmen-2021"
SF = EXAMPLES / "second-fund-2022"

JM_TOTAL_FEN = 372_090_000
JM_ALLOC_FEN = {
    "江门市市场监督管理局": 162_090_000,
    "台山市市场监督管理局": 78_000_000,
    "开平市市场监督管理局": 70_000_000,
    "恩平市市场监督管理局": 62_000_000,
}
# Intended fund-level cumulative rates at each month end (README table).
JM_RATES = ["8.6", "14.9", "26.4", "30.1", "34.8", "38.2", "44.5", "53.0", "62.1", "71.8", "84.0", "100"]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_example_fund", REPO / "scripts" / "make_example_fund.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("examples")
    _load_script().main(["--out", str(out)])
    return out


# ---------------------------------------------------------------- readers


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("gbk")


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".xlsx":
        return pd.read_excel(path, sheet_name=0, dtype=object, engine="openpyxl")
    from io import StringIO

    return pd.read_csv(StringIO(_decode(path)), dtype=str, keep_default_na=False)


def to_fen(value: object, wan: bool = False) -> int:
    """Independent money parser: 1,234.50 / 1234.5 / 1234.50元 / float cell -> fen."""
    text = str(value).replace(",", "").replace("元", "").strip()
    amount = Decimal(text) * (10000 if wan else 1)
    fen = amount * 100
    assert fen == fen.to_integral_value(), value
    return int(fen)


def to_date(value: object) -> dt.date:
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return value.date()
    m = re.fullmatch(r"(\d{4})[-/年](\d{1,2})[-/月](\d{1,2})日?", str(value).strip())
    assert m, value
    return dt.date(*map(int, m.groups()))


ENGLISH = {
    "voucher_no": "支付凭证号",
    "unit": "预算单位",
    "doc_no": "指标文号",
    "amount": "支付金额",
    "pay_date": "支付日期",
    "kind": "业务类型",
    "econ_class": "经济分类",
    "memo": "摘要",
}


def payments(fund: Path) -> pd.DataFrame:
    frames = []
    for path in sorted((fund / "payments").iterdir()):
        df = read_table(path).rename(columns=ENGLISH)
        df["fen"] = [to_fen(v) for v in df["支付金额"]]
        df["date"] = [to_date(v) for v in df["支付日期"]]
        df["file"] = path.name
        frames.append(df[["支付凭证号", "预算单位", "指标文号", "fen", "date", "业务类型", "file"]])
    return pd.concat(frames, ignore_index=True)


def inspections(fund: Path) -> pd.DataFrame:
    frames = []
    for path in sorted((fund / "inspections").iterdir()):
        df = read_table(path)
        df["date"] = [to_date(v) for v in df["抽样日期"]]
        df["file"] = path.name
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def outputs(fund: Path) -> pd.DataFrame:
    return pd.concat([read_table(p).fillna("") for p in sorted((fund / "outputs").iterdir())], ignore_index=True)


def cumulative_by_month(pay: pd.DataFrame) -> list[int]:
    per_month = Counter()
    for d, fen in zip(pay["date"], pay["fen"]):
        per_month[d.month] += int(fen)
    total, out = 0, []
    for m in range(1, 13):
        total += per_month[m]
        out.append(total)
    return out


# ---------------------------------------------------------------- reproducibility


def _generated_files(fund: Path) -> list[str]:
    names = [p.name for p in fund.iterdir() if p.is_file()]
    for sub in ("payments", "inspections", "outputs"):
        names += [f"{sub}/{p.name}" for p in (fund / sub).iterdir()]
    return sorted(names)


@pytest.mark.parametrize("fund", ["jiangmen-2021", "second-fund-2022"])
def test_regenerated_files_equal_committed_bytes(regenerated: Path, fund: str) -> None:
    fresh = _generated_files(regenerated / fund)
    assert fresh == _generated_files(EXAMPLES / fund)
    for name in fresh:
        assert (regenerated / fund / name).read_bytes() == (EXAMPLES / fund / name).read_bytes(), name


# ---------------------------------------------------------------- jiangmen-2021


def test_regenerated_contacts_file_equals_committed_bytes(regenerated: Path) -> None:
    """examples/contacts.csv (the inbox's department contacts) is generated too."""
    assert (regenerated / "contacts.csv").read_bytes() == (EXAMPLES / "contacts.csv").read_bytes()


def test_jiangmen_fund_yaml_is_valid_and_covers_every_goal() -> None:
    cfg = load_fund_config(JM)
    assert cfg.code == "JM-2021-YPJG"
    assert cfg.year == 2021 and cfg.department == "江门市市场监督管理局"
    assert cfg.pace.policy == "linear_month"
    assert len(cfg.goal_paragraphs) == 4 and len(cfg.achievement_templates) == 4
    goals = read_table(JM / "goals.csv")
    assert set(goals["三级指标"]) == set(cfg.measures)
    assert sum(Decimal(w) for w in goals["分值"]) + cfg.scoring.execution_weight == 100


def test_jiangmen_achievement_templates_reproduce_the_seed_figures() -> None:
    cfg = load_fund_config(JM)
    actual = {
        "药品抽检批次": "550",
        "药包材抽检批次": "9",
        "化妆品抽检批次": "30",
        "医疗器械抽检批次": "55",
        "药品监管干部培训人次": "372",
        "装备品种覆盖率": "70%",
        "在职干部参加培训率": "70",
        "大要案查办率": "100%",
        "服务对象满意度": "93.6%",
    }
    text = "".join(jinja2.Template(t).render(actual=actual) for t in cfg.achievement_templates)
    seed = next((REPO.parent / "shared" / "seed").glob("*.txt"), None)
    for fragment in (
        "药品抽检550批次，药包材抽检（抽样）9批次，化妆品抽检30批次，医疗器械抽检55批次",
        "装备品种覆盖率达到70%",
        "大要案查办率达100%",
        "脱产培训372人次",
        "参加培训率达到70%。",
    ):
        assert fragment in text
        if seed is not None:
            assert fragment in seed.read_text(encoding="utf-8")


def test_jiangmen_budget_total_is_exact() -> None:
    budget = read_table(JM / "budget.csv")
    assert set(budget["类型"]) == {"年初"}
    per_unit = defaultdict(int)
    for unit, amount in zip(budget["预算单位"], budget["金额"]):
        per_unit[unit] += to_fen(amount)
    assert dict(per_unit) == JM_ALLOC_FEN
    assert sum(per_unit.values()) == JM_TOTAL_FEN
    assert all(to_date(d).year == 2021 for d in budget["下达日期"])


def test_jiangmen_cumulative_path_hits_the_intended_rates() -> None:
    cum = cumulative_by_month(payments(JM))
    assert cum == [int(Decimal(JM_TOTAL_FEN) * Decimal(r) / 100) for r in JM_RATES]
    assert cum[2] * 100 >= JM_TOTAL_FEN * 25  # Q1 on pace
    assert cum[5] * 100 < JM_TOTAL_FEN * 50  # Q2 lagging
    assert cum[8] * 100 < JM_TOTAL_FEN * 75  # Q3 lagging
    assert cum[11] == JM_TOTAL_FEN  # Q4 100%
    below = [m + 1 for m in range(12) if cum[m] * 12 < JM_TOTAL_FEN * (m + 1)]
    assert below and len(below) < 12


def test_jiangmen_each_unit_spends_exactly_its_allocation() -> None:
    pay = payments(JM)
    spent = pay.groupby("预算单位")["fen"].apply(lambda s: sum(int(v) for v in s)).to_dict()
    assert spent == JM_ALLOC_FEN


def test_jiangmen_payments_are_consistent() -> None:
    pay = payments(JM)
    assert pay["支付凭证号"].is_unique
    budget = read_table(JM / "budget.csv")
    issued = {(u, d): to_date(day) for u, d, day in zip(budget["预算单位"], budget["指标文号"], budget["下达日期"])}
    for unit, doc, day in zip(pay["预算单位"], pay["指标文号"], pay["date"]):
        assert issued[(unit, doc)] <= day, (unit, doc, day)  # no payment before its allocation
    refunds = pay[pay["业务类型"] == "退回"]
    assert len(refunds) >= 3 and (refunds["fen"] < 0).all()
    assert (pay[pay["业务类型"] == "支付"]["fen"] > 0).all()
    files = sorted(set(pay["file"]))
    assert len(files) == 12
    for name, dates in pay.groupby("file")["date"]:
        month = int(name[5:7])
        assert all(d.year == 2021 and d.month == month for d in dates), name


def test_jiangmen_payment_formats_vary_like_real_exports() -> None:
    folder = JM / "payments"
    jan = _decode(folder / "2021-01_支出明细.csv")
    assert re.search(r'"\d{1,3}(,\d{3})+\.\d\d"', jan) and "2021/1/" in jan
    assert "2021年3月" in _decode(folder / "2021-03_支出明细.csv")
    assert re.search(r",\d+\.\d\d元,", _decode(folder / "2021-07_支出明细.csv"))
    may = read_table(folder / "2021-05_支出明细.csv")
    assert not any("," in v for v in may["支付金额"]) and any(re.fullmatch(r"\d+(\.\d)?", v) for v in may["支付金额"])
    sep = read_table(folder / "2021-09_支出明细.xlsx")
    assert all(isinstance(v, (dt.datetime, pd.Timestamp)) for v in sep["支付日期"])
    assert all(isinstance(v, (int, float)) for v in sep["支付金额"])


def test_jiangmen_encodings_are_what_they_claim() -> None:
    gbk = [JM / "payments" / f"2021-0{m}_支出明细.csv" for m in (1, 2, 3, 4)]
    gbk += [JM / "inspections" / "2021-Q2_抽检记录.csv", JM / "outputs" / "2021-07_产出数据.csv"]
    bom = [JM / "payments" / f"2021-0{m}_支出明细.csv" for m in (5, 6, 7, 8)]
    bom += [JM / "goals.csv", JM / "inspections" / "2021-Q4_抽检记录.csv"]
    bom += [JM / "outputs" / f"2021-{m}_产出数据.csv" for m in ("09", "10", "11", "12")]
    plain = [JM / "budget.csv", JM / "inspections" / "2021-Q1_抽检记录.csv", JM / "outputs" / "2021-03_产出数据.csv"]
    for path in gbk:
        raw = path.read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        raw.decode("gbk")
    for path in bom:
        assert path.read_bytes().startswith(b"\xef\xbb\xbf"), path
        path.read_bytes().decode("utf-8-sig")
    for path in plain:
        raw = path.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")
        raw.decode("utf-8")
    for path in JM.rglob("*.xlsx"):
        assert zipfile.is_zipfile(path)


def test_jiangmen_inspection_batches_match_the_seed() -> None:
    cfg = load_fund_config(JM)
    ins = inspections(JM)
    assert ins["品种类别"].value_counts().to_dict() == {"药品": 550, "医疗器械": 55, "化妆品": 30, "药包材": 9}
    assert set(ins["品种类别"]) <= set(cfg.inspection_categories)
    assert ins["抽样单号"].is_unique
    assert set(ins["检验结论"]) == {"合格", "不合格"}
    assert set(ins["抽检单位"]) == set(JM_ALLOC_FEN)
    for name, dates in ins.groupby("file")["date"]:
        quarter = int(name[6])
        assert all(d.year == 2021 and (d.month - 1) // 3 + 1 == quarter for d in dates), name


def test_jiangmen_outputs_give_the_seed_actuals() -> None:
    out = outputs(JM)
    training = out[out["三级指标"] == "药品监管干部培训人次"]
    assert sum(int(v) for v in training["完成值"]) == 372
    dec = out[out["月份"] == "2021-12"].set_index("三级指标")["完成值"].to_dict()
    assert dec == {
        "在职干部参加培训率": "70%",
        "装备品种覆盖率": "70%",
        "大要案查办率": "100%",
        "服务对象满意度": "93.6%",
    }
    goals = set(read_table(JM / "goals.csv")["三级指标"])
    assert set(out["三级指标"]) <= goals


# ---------------------------------------------------------------- second-fund-2022


def test_second_fund_yaml_has_milestone_pace() -> None:
    cfg = load_fund_config(SF)
    assert cfg.pace.policy == "milestones"
    assert {k: int(v) for k, v in cfg.pace.milestones.items()} == {"03-31": 20, "06-30": 50, "09-30": 75, "12-31": 100}
    goals = read_table(SF / "goals.xlsx")
    assert set(goals["三级指标"]) == set(cfg.measures)
    assert sum(Decimal(str(w)) for w in goals["分值"]) + cfg.scoring.execution_weight == 100
    assert "≤400元/人天" in set(goals["指标值"]) and "有效提升" in set(goals["指标值"])


def test_second_fund_budget_has_addition_and_reduction_in_wan_yuan() -> None:
    budget = read_table(SF / "budget.xlsx")
    fen = {k: sum(to_fen(a, wan=True) for a in g["金额（万元）"]) for k, g in budget.groupby("类型")}
    assert fen == {"年初": 120_000_000, "追加": 15_000_000, "调减": 10_000_000}
    assert fen["年初"] + fen["追加"] - fen["调减"] == 125_000_000


def test_second_fund_executes_ninety_percent() -> None:
    pay = payments(SF)
    assert pay["支付凭证号"].is_unique
    cum = cumulative_by_month(pay)
    assert cum[-1] * 100 == 125_000_000 * 90
    assert cum[2] * 100 < 120_000_000 * 20  # Q1 behind 20
    assert cum[5] * 100 < 120_000_000 * 50  # Q2 behind 50
    assert cum[8] * 100 == 135_000_000 * 75  # Q3 exactly on the 75 milestone (budget in force)
    spent = pay.groupby("预算单位")["fen"].apply(lambda s: sum(int(v) for v in s)).to_dict()
    assert spent == {"江门市市场监督管理局": 88_000_000, "鹤山市市场监督管理局": 24_500_000}
    added = pay[pay["指标文号"] == "江财行〔2022〕56号"]
    assert 0 < sum(int(v) for v in added["fen"]) <= 15_000_000
    assert all(d >= dt.date(2022, 7, 15) for d in added["date"])
    assert list(read_table(SF / "payments" / "2022-08_支出明细.csv").columns)[0] == "voucher_no"


def test_second_fund_inspections_and_outputs_give_partly_met_goals() -> None:
    ins = inspections(SF)
    assert len(ins) == 320 and ins["抽样单号"].is_unique
    assert (ins["检验结论"] == "不合格").sum() == 10
    assert all(d <= dt.date(2022, 6, 30) for d in ins[ins["file"].str.contains("H1")]["date"])
    out = outputs(SF)
    assert sum(int(v) for v in out[out["三级指标"] == "食品安全培训人次"]["完成值"]) == 255
    dec = out[out["月份"] == "2022-12"].set_index("三级指标")["完成值"].to_dict()
    assert dec == {
        "抽检结果按时报送率": "90%",
        "人均培训成本": "500",
        "食品安全事件发生数": "0",
        "服务对象满意度": "基本达成",
    }
    # The README's hand-computed scores add up to a 良.
    total = sum(map(Decimal, ["16.00", "12.75", "9.99", "9.47", "12.00", "10.00", "8.00", "9.00"]))
    assert total == Decimal("87.21") and Decimal(80) <= total < Decimal(90)
