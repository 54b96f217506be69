"""Each goal's actual from inspections/outputs DataFrames, per fund.yaml measures."""

from __future__ import annotations

from decimal import Decimal as D

import pandas as pd
import pytest

from budget_monitor.config import FundConfig, Measure
from budget_monitor.measures import Actual, actual_from_text, measure_actuals, measure_one


def inspections() -> pd.DataFrame:
    rows = []
    for i, (cat, res) in enumerate(
        [("药品", "合格")] * 8
        + [("药品", "不合格")] * 2
        + [("化妆品", "合格")] * 3
        + [("药品", "待检")]
        + [("药包材", "合格")]
    ):
        rows.append(dict(sample_no=f"S{i}", sample_date="2021-05-01", category=cat, unit="台山", result=res))
    rows.append(dict(rows[0]))  # a duplicate sample_no counts once
    return pd.DataFrame(rows)


def outputs() -> pd.DataFrame:
    rows = [
        ("2021-03", "台山", "培训人次", "100", D(100)),
        ("2021-06", "开平", "培训人次", "1,200", D(1200)),
        ("2021-06", "台山", "培训人次", "50", D(50)),
        ("2021-06", "", "覆盖率", "60%", None),
        ("2021-12", "台山", "覆盖率", "75%", None),
        ("2021-12", "", "覆盖率", "70%", None),
        ("2021-09", "", "满意度", "基本达成", None),
        ("2021-12", "", "满意度", "达成", None),
        ("2021-12", "", "成本", "380元/人天", None),
    ]
    df = pd.DataFrame(rows, columns=["month", "unit", "name", "value", "value_num"])
    df["note"] = ""
    return df


@pytest.mark.parametrize(
    "measure,expected_value,expected_text",
    [
        (Measure(source="inspections", agg="count", where={"category": "药品"}), "11", "11"),
        (Measure(source="inspections", agg="count", where={"category": "药品|药包材"}), "12", "12"),
        (Measure(source="inspections", agg="count", where={"category": "药品", "result": "合格"}), "8", "8"),
        (Measure(source="inspections", agg="count"), "15", "15"),
        (
            Measure(
                source="inspections",
                agg="ratio",
                where={"category": "药品", "result": "合格"},
                denominator_where={"category": "药品", "result": "合格|不合格"},
            ),
            "80",
            "80%",
        ),
        (
            Measure(
                source="inspections", agg="ratio", where={"result": "合格"}, denominator_where={"category": "化妆品"}
            ),
            "400",
            "400%",
        ),
    ],
)
def test_measure_inspections_count_and_ratio(measure, expected_value, expected_text):
    a = measure_one("x", measure, inspections(), None, None)
    assert a.value == D(expected_value) and a.text == expected_text and not a.missing


@pytest.mark.parametrize(
    "measure,name,expected_value,expected_text",
    [
        (Measure(source="outputs", agg="sum"), "培训人次", "1350", "1350"),
        (Measure(source="outputs", agg="sum", unit="台山"), "培训人次", "150", "150"),
        (Measure(source="outputs", agg="max"), "培训人次", "1200", "1200"),
        (Measure(source="outputs", agg="mean"), "培训人次", "450", "450"),
        (Measure(source="outputs", agg="latest"), "覆盖率", "70", "70%"),  # fund-level row wins
        (Measure(source="outputs", agg="latest", unit="台山"), "覆盖率", "75", "75%"),
        (Measure(source="outputs", agg="mean"), "覆盖率", "68.33", "68.33%"),
        (Measure(source="outputs", agg="latest", indicator="培训人次", unit="开平"), "其他名称", "1200", "1,200"),
        (Measure(source="outputs", agg="latest"), "成本", "380", "380元/人天"),
    ],
)
def test_measure_outputs_aggregates(measure, name, expected_value, expected_text):
    a = measure_one(name, measure, None, outputs(), None)
    assert a.value == D(expected_value) and a.text == expected_text


def test_measure_qualitative_is_latest_text():
    a = measure_one("满意度", Measure(source="qualitative"), None, outputs(), None)
    assert a == Actual(None, "达成")


def test_measure_execution_is_the_fund_rate():
    a = measure_one("预算执行率", Measure(source="execution"), None, None, D("92.456"))
    assert a.value == D("92.46") and a.text == "92.46%" and a.is_percent


def test_measure_default_is_latest_outputs_value_of_same_name():
    cfg = FundConfig(code="f", name="基金", year=2021, department="局")
    goals = pd.DataFrame({"name": ["覆盖率", "没有数据的指标"]})
    actuals = measure_actuals(cfg, goals, inspections(), outputs(), D(100))
    assert actuals["覆盖率"].text == "70%"
    assert actuals["没有数据的指标"].missing


@pytest.mark.parametrize(
    "measure",
    [
        Measure(source="inspections", agg="ratio", where={"result": "合格"}, denominator_where={"category": "食品"}),
        Measure(source="outputs", agg="sum"),
        Measure(source="qualitative"),
        Measure(source="execution"),
    ],
)
def test_measure_without_data_is_missing(measure):
    assert measure_one("无此指标", measure, inspections(), outputs(), None).missing


def test_measure_count_of_nothing_is_a_measured_zero():
    # Inspection records exist but none matches: zero is a measurement, not missing data.
    a = measure_one(
        "x", Measure(source="inspections", agg="count", where={"category": "食品"}), inspections(), None, None
    )
    assert a.value == 0 and not a.missing


def test_measure_empty_frames_are_missing():
    empty_i = inspections().iloc[0:0]
    empty_o = outputs().iloc[0:0]
    assert measure_one("x", Measure(source="inspections", agg="count"), empty_i, empty_o, None).missing
    assert measure_one("x", None, empty_i, empty_o, None).missing


@pytest.mark.parametrize(
    "measure",
    [
        Measure(source="inspections", agg="count", where={"品种": "药品"}),
        Measure(source="inspections", agg="ratio", where={"result": "合格"}, denominator_where={"品种": "药品"}),
    ],
)
def test_measure_unknown_filter_column_is_a_chinese_value_error_naming_column_and_measure(measure):
    with pytest.raises(ValueError) as exc:
        measure_one("药品抽检批次", measure, inspections(), None, None)
    assert not isinstance(exc.value, KeyError)
    msg = str(exc.value)
    assert "「品种」不存在" in msg and "药品抽检批次" in msg and "category" in msg


@pytest.mark.parametrize("source,agg", [("outputs", "latest"), ("qualitative", "latest")])
def test_measure_latest_with_several_units_and_no_fund_level_row_is_an_error(source, agg):
    # 2021-06: 开平 and 台山 both reported 培训人次, no fund-level row: which one would be a guess.
    with pytest.raises(ValueError) as exc:
        measure_one("培训人次", Measure(source=source, agg=agg), None, outputs(), None)
    msg = str(exc.value)
    assert "培训人次" in msg and "2021-06" in msg and "开平" in msg and "台山" in msg
    assert "unit" in msg
    assert ("agg: sum / mean" in msg) == (source == "outputs")


def test_measure_latest_with_one_unit_in_the_latest_month_takes_it():
    df = outputs()
    df = df[~((df["month"] == "2021-06") & (df["unit"] == "开平"))]
    a = measure_one("培训人次", Measure(source="outputs", agg="latest"), None, df, None)
    assert a.value == D(50) and a.text == "50"


def test_measure_latest_several_units_resolved_by_unit_or_sum():
    assert (
        measure_one("培训人次", Measure(source="outputs", agg="latest", unit="台山"), None, outputs(), None).value == 50
    )
    assert measure_one("培训人次", Measure(source="outputs", agg="sum"), None, outputs(), None).value == 1350


@pytest.mark.parametrize(
    "text,num,value,is_percent",
    [
        ("70%", None, "70", True),
        ("７０％", None, "70", True),
        ("372", D(372), "372", False),
        ("372", None, "372", False),
        ("1,000人次", None, "1000", False),
        ("0起", None, "0", False),
        ("达成", None, None, False),
        ("70%", D("0.7"), "70", True),
    ],
)
def test_actual_from_text(text, num, value, is_percent):
    a = actual_from_text(text, num)
    assert a.value == (None if value is None else D(value))
    assert a.is_percent == is_percent and not a.missing


def test_actual_from_empty_text_is_missing():
    assert actual_from_text("", None).missing
    assert actual_from_text(None, None).missing
