"""rules.md "Self-evaluation score": one table-driven test per rule, plus worked examples."""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest

from budget_monitor.config import GradeBand, ScoringConfig
from budget_monitor.measures import Actual, actual_from_text
from budget_monitor.narrative import load_texts
from budget_monitor.scoring import (
    ScoringError,
    check_weights,
    execution_met,
    execution_score,
    grade_for,
    round2,
    score_fund,
    score_indicator,
)
from budget_monitor.targets import parse_target

LEVELS = ScoringConfig().qualitative_levels
# scoring reads no files: the deviation texts are passed in, as yearend.build_year_end does.
DEVIATION = load_texts()["deviation"]


def score(target: str, actual: str | None, weight: str = "10"):
    a = Actual.none() if actual is None else actual_from_text(actual)
    return score_indicator(parse_target(target), a, D(weight), LEVELS, texts=DEVIATION)


@pytest.mark.parametrize(
    "rate,weight,expected",
    [
        ("100", "10", "10.00"),
        ("92.5", "10", "9.25"),
        ("120", "10", "10.00"),
        ("0", "10", "0.00"),
        ("38.2", "10", "3.82"),
        ("66.666", "15", "10.00"),
        ("-5", "10", "0.00"),
    ],
)
def test_execution_score_is_weight_times_rate_capped_at_100(rate, weight, expected):
    assert execution_score(D(rate), D(weight)) == D(expected)


@pytest.mark.parametrize(
    "target,actual,weight,expected",
    [
        ("≥550批次", "550", "15", "15.00"),
        ("≥550批次", "600", "15", "15.00"),
        ("≥550批次", "500", "15", "13.64"),
        ("550批次", "275", "10", "5.00"),
        (">90%", "45%", "10", "5.00"),
        ("≥70%", "70%", "10", "10.00"),
        ("≥ 1,000 人次", "999", "20", "19.98"),
        ("≥70%", "0%", "10", "0.00"),
    ],
)
def test_higher_is_better_scores_weight_times_actual_over_target_capped(target, actual, weight, expected):
    s, met, dev = score(target, actual, weight)
    assert s == D(expected)
    assert met == (s == D(weight))


@pytest.mark.parametrize(
    "target,actual,expected,met",
    [
        ("=100%", "100%", "10.00", True),
        ("=100%", "95%", "9.50", False),
        ("=12个", "12", "10.00", True),
        ("=12个", "9", "7.50", False),
    ],
)
def test_exact_target_full_weight_when_equal_else_proportional(target, actual, expected, met):
    s, m, dev = score(target, actual)
    assert (s, m) == (D(expected), met)
    assert (dev == "") == met


@pytest.mark.parametrize(
    "target,actual,weight,expected,met",
    [
        ("≤400元/人天", "380", "10", "10.00", True),
        ("≤400元/人天", "400", "10", "10.00", True),
        ("≤400元/人天", "500", "10", "8.00", False),
        ("<5%", "4%", "10", "10.00", True),
        ("<5%", "7.5%", "15", "10.00", False),
        ("≤400元/人天", "1200", "9", "3.00", False),
    ],
)
def test_lower_is_better_full_when_met_else_target_over_actual(target, actual, weight, expected, met):
    s, m, dev = score(target, actual, weight)
    assert (s, m) == (D(expected), met)
    if not met:
        assert "超出年度指标值" in dev


@pytest.mark.parametrize(
    "target,actual,expected",
    [("0起", "0", "10.00"), ("0起", "1", "0.00"), ("≤0起", "3", "0.00"), ("0起", "0起", "10.00")],
)
def test_zero_target_full_at_zero_nothing_otherwise(target, actual, expected):
    s, met, dev = score(target, actual)
    assert s == D(expected)
    assert met == (s == D(10))


@pytest.mark.parametrize(
    "actual,expected,met",
    [("达成", "10.00", True), ("基本达成", "8.00", False), ("部分达成", "6.00", False), ("未达成", "0.00", False)],
)
def test_qualitative_levels_give_share_of_weight(actual, expected, met):
    s, m, dev = score_indicator(parse_target("有效提升"), Actual(None, actual), D(10), LEVELS, texts=DEVIATION)
    assert (s, m) == (D(expected), met)
    if not met:
        assert actual in dev and "有效提升" in dev


def test_qualitative_levels_come_from_fund_config():
    levels = {"达成": D("1"), "较好": D("0.9")}
    s, met, _ = score_indicator(parse_target("有效提升"), Actual(None, "较好"), D(10), levels, texts=DEVIATION)
    assert s == D("9.00") and not met


def test_qualitative_unknown_level_scores_zero_with_reason():
    s, met, dev = score_indicator(parse_target("有效提升"), Actual(None, "还行"), D(10), LEVELS, texts=DEVIATION)
    assert (s, met) == (D(0), False) and "无法识别" in dev


@pytest.mark.parametrize("target", ["≥550批次", "≤400元/人天", "0起", "=100%", "有效提升"])
def test_missing_actual_scores_zero_and_is_reported(target):
    s, met, dev = score(target, None)
    assert (s, met) == (D(0), False)
    assert "未取得实际完成值" in dev


def test_missing_actual_is_missing_in_the_score_sheet():
    goals = [dict(level1="产出指标", level2="数量指标", name="A", target="≥10个", weight=D(90))]
    sheet = score_fund(goals, {}, D(100), ScoringConfig(), texts=DEVIATION)
    ind = sheet.indicators[0]
    assert ind.missing and ind.actual is None and ind.score == 0 and not ind.met
    assert ind.to_json()["actual"] is None
    assert sheet.total == D(10)


@pytest.mark.parametrize("value,expected", [("1.005", "1.01"), ("1.004", "1.00"), ("2.675", "2.68"), ("0.125", "0.13")])
def test_scores_rounded_half_up_to_two_decimals(value, expected):
    assert round2(D(value)) == D(expected)


def test_total_is_sum_of_rounded_scores():
    # 10 × 1/3 = 3.333… -> 3.33 three times: total 9.99 (+ execution 10), not 10.
    goals = [dict(level1="产出指标", level2="数量指标", name=n, target="≥3个", weight=D(10)) for n in "ABC"]
    goals.append(dict(level1="产出指标", level2="数量指标", name="D", target="≥1个", weight=D(60)))
    actuals = {"A": Actual(D(1), "1"), "B": Actual(D(1), "1"), "C": Actual(D(1), "1"), "D": Actual(D(1), "1")}
    sheet = score_fund(goals, actuals, D(100), ScoringConfig(), texts=DEVIATION)
    assert [i.score for i in sheet.indicators] == [D("3.33")] * 3 + [D("60.00")]
    assert sheet.total == D("79.99")
    assert sheet.grade == "中"


@pytest.mark.parametrize(
    "total,grade",
    [
        ("100", "优"),
        ("90", "优"),
        ("89.99", "良"),
        ("80", "良"),
        ("79.99", "中"),
        ("60", "中"),
        ("59.99", "差"),
        ("0", "差"),
    ],
)
def test_grade_bands(total, grade):
    assert grade_for(D(total), ScoringConfig().grades) == grade


def test_grade_bands_come_from_fund_config():
    bands = [GradeBand(grade="合格", min_score=D(70)), GradeBand(grade="不合格", min_score=D(0))]
    assert grade_for(D("70"), bands) == "合格" and grade_for(D("69.99"), bands) == "不合格"


@pytest.mark.parametrize(
    "target,actual,met",
    [("≥550批次", "550", True), ("≥550批次", "549", False), ("≤400元/人天", "401", False), ("=100%", "99%", False)],
)
def test_met_only_with_full_weight_deviation_otherwise(target, actual, met):
    s, m, dev = score(target, actual)
    assert m == met
    if met:
        assert dev == ""
    else:
        assert actual in dev and target in dev  # measured actual vs target


@pytest.mark.parametrize(
    "weights,execution", [(["30", "30", "20"], "10"), (["30", "30", "30", "1"], "10"), (["50", "50"], "10")]
)
def test_weights_must_sum_to_100(weights, execution):
    with pytest.raises(ScoringError) as exc:
        check_weights([D(w) for w in weights], D(execution))
    assert "应为100分" in str(exc.value)


def test_weights_summing_to_100_pass():
    check_weights([D("45"), D("45")], D("10"))
    check_weights([D("42.5"), D("42.5")], D("15"))


def test_unreadable_target_names_the_indicator():
    goals = [dict(level1="产出指标", level2="数量指标", name="抽检批次", target="550-600批次", weight=D(90))]
    with pytest.raises(ScoringError) as exc:
        score_fund(goals, {}, D(100), ScoringConfig(), texts=DEVIATION)
    assert "抽检批次" in str(exc.value)


# ---- worked examples, one per grade


def _fund(actuals: dict[str, str], rate: str):
    goals = [
        dict(level1="产出指标", level2="数量指标", name="抽检批次", target="≥500批次", weight=D(40)),
        dict(level1="产出指标", level2="质量指标", name="合格率", target="≥95%", weight=D(30)),
        dict(level1="满意度指标", level2="服务对象满意度指标", name="满意度", target="有效提升", weight=D(20)),
    ]
    acts = {k: actual_from_text(v) if v[0].isdigit() else Actual(None, v) for k, v in actuals.items()}
    return score_fund(goals, acts, D(rate), ScoringConfig(), texts=DEVIATION)


@pytest.mark.parametrize(
    "actuals,rate,total,grade",
    [
        # 10 + 40 + 30 + 20
        ({"抽检批次": "520", "合格率": "96%", "满意度": "达成"}, "100", "100.00", "优"),
        # 10 + 40×450/500=36 + 30×90/95=28.42 + 20×0.8=16 -> 90.42
        ({"抽检批次": "450", "合格率": "90%", "满意度": "基本达成"}, "100", "90.42", "优"),
        # 9.5 + 40×400/500=32 + 30×85/95=26.84 + 16 -> 84.34
        ({"抽检批次": "400", "合格率": "85%", "满意度": "基本达成"}, "95", "84.34", "良"),
        # 8 + 40×300/500=24 + 30×80/95=25.26 + 20×0.6=12 -> 69.26
        ({"抽检批次": "300", "合格率": "80%", "满意度": "部分达成"}, "80", "69.26", "中"),
        # 5 + 40×200/500=16 + 合格率 missing 0 + 0 -> 21
        ({"抽检批次": "200", "满意度": "未达成"}, "50", "21.00", "差"),
    ],
)
def test_worked_example_lands_in_grade(actuals, rate, total, grade):
    sheet = _fund(actuals, rate)
    assert sheet.total == D(total)
    assert sheet.grade == grade


def test_second_fund_different_in_shape_lands_in_liang():
    """Milestone-paced fund (6-30 → 50, 9-30 → 75, 12-31 → 100) ending at 92% executed.

    By hand:
      预算执行率  10 × 92/100                         =  9.20
      培训人次    ≥200人次, actual 150: 20 × 150/200   = 15.00  (partly met)
      人均成本    ≤400元/人天, actual 500: 20 × 400/500 = 16.00  (reverse)
      公众认知度  有效提升, 基本达成: 20 × 0.8         = 16.00  (qualitative)
      覆盖率      =100%, actual 100%                    = 30.00  (exact, met)
      total 86.20 -> 良
    """
    goals = [
        dict(level1="产出指标", level2="数量指标", name="培训人次", target="≥200人次", weight=D(20)),
        dict(level1="成本指标", level2="经济成本指标", name="人均成本", target="≤400元/人天", weight=D(20)),
        dict(level1="效益指标", level2="社会效益指标", name="公众认知度", target="有效提升", weight=D(20)),
        dict(level1="产出指标", level2="质量指标", name="覆盖率", target="=100%", weight=D(30)),
    ]
    actuals = {
        "培训人次": actual_from_text("150"),
        "人均成本": actual_from_text("500"),
        "公众认知度": Actual(None, "基本达成"),
        "覆盖率": actual_from_text("100%"),
    }
    sheet = score_fund(goals, actuals, D("92"), ScoringConfig(), texts=DEVIATION)
    assert sheet.execution_score == D("9.20")
    assert [i.score for i in sheet.indicators] == [D("15.00"), D("16.00"), D("16.00"), D("30.00")]
    assert [i.met for i in sheet.indicators] == [False, False, False, True]
    assert sheet.total == D("86.20")
    assert sheet.grade == "良"
    assert sheet.indicators[0].deviation == "实际完成值150人次，未达到年度指标值≥200人次，按完成比例计分。"
    assert (
        sheet.indicators[1].deviation == "实际完成值500元/人天，超出年度指标值≤400元/人天，按指标值与实际值之比计分。"
    )
    assert sheet.indicators[0].actual == "150"  # the json keeps the value as measured
    assert "基本达成" in sheet.indicators[2].deviation


# ---- exact shares: round only the score, decide met before rounding


@pytest.mark.parametrize(
    "rate,weight,expected",
    [
        (Fraction(12345, 1000), "10", "1.23"),  # 123.45 元 of 1000 元: 10 × 0.12345, not 10 × 0.1235
        (Fraction(12345 * 100, 100000), "10", "1.23"),
        (Fraction(2, 3) * 100, "15", "10.00"),
        (Fraction(99999, 1000), "10", "10.00"),
        (D("12.345"), "10", "1.23"),
    ],
)
def test_execution_score_is_weight_times_exact_rate_rounded_once(rate, weight, expected):
    assert execution_score(rate, D(weight)) == D(expected)


def test_execution_score_sheet_keeps_the_presented_rate_at_two_decimals():
    goals = [dict(level1="产出指标", level2="数量指标", name="A", target="≥1个", weight=D(90))]
    sheet = score_fund(goals, {"A": Actual(D(1), "1")}, Fraction(12345, 1000), ScoringConfig(), texts=DEVIATION)
    assert sheet.execution_rate == D("12.35")  # presented
    assert sheet.execution_score == D("1.23")  # from the exact 12.345
    assert sheet.total == D("91.23")


@pytest.mark.parametrize(
    "rate,met",
    [
        (Fraction(100), True),
        (Fraction(120), True),
        (Fraction(99999, 1000), False),
        (Fraction(372_089_999 * 100, 372_090_000), False),
        (D("99.995"), False),
    ],
)
def test_execution_met_only_when_exact_rate_reaches_100(rate, met):
    assert execution_met(rate) is met
    goals = [dict(level1="产出指标", level2="数量指标", name="A", target="≥1个", weight=D(90))]
    sheet = score_fund(goals, {"A": Actual(D(1), "1")}, rate, ScoringConfig(), texts=DEVIATION)
    assert sheet.execution_met is met


@pytest.mark.parametrize(
    "target,actual,dev_fragment",
    [
        ("≥10000批次", "9999", "未达到年度指标值≥10000批次"),  # 9.999 -> 10.00
        ("=100%", "99.99%", "与年度指标值=100%不一致"),  # 9.999 -> 10.00
        ("≤400元/人天", "400.01", "超出年度指标值≤400元/人天"),  # 10 × 400/400.01 = 9.99975 -> 10.00
        (">90%", "89.99%", "未达到年度指标值>90%"),
    ],
)
def test_met_decided_on_exact_comparison_not_on_rounded_score(target, actual, dev_fragment):
    s, met, dev = score(target, actual)
    assert s == D("10.00")  # the score is still rounded as the rules say
    assert met is False
    assert dev_fragment in dev and actual.rstrip("%") in dev


def test_met_qualitative_level_just_below_one_is_not_met():
    levels = {"达成": D(1), "几乎达成": D("0.9999")}
    s, met, dev = score_indicator(parse_target("有效提升"), Actual(None, "几乎达成"), D(10), levels, texts=DEVIATION)
    assert (s, met) == (D("10.00"), False) and "几乎达成" in dev


def test_met_in_the_score_sheet_follows_the_exact_comparison():
    goals = [dict(level1="产出指标", level2="数量指标", name="抽检批次", target="≥10000批次", weight=D(90))]
    sheet = score_fund(goals, {"抽检批次": actual_from_text("9999")}, D(100), ScoringConfig(), texts=DEVIATION)
    ind = sheet.indicators[0]
    assert ind.score == D("89.99") and not ind.met  # 90 × 0.9999 = 89.991
    goals[0]["weight"] = D(10)
    goals.append(dict(level1="产出指标", level2="数量指标", name="B", target="≥1个", weight=D(80)))
    sheet = score_fund(
        goals, {"抽检批次": actual_from_text("9999"), "B": Actual(D(1), "1")}, D(100), ScoringConfig(), texts=DEVIATION
    )
    ind = sheet.indicators[0]
    assert ind.score == D("10.00") and not ind.met
    assert ind.to_json()["met"] is False and "9999批次" in ind.to_json()["deviation"]
    assert sheet.total == D("100.00")  # the rounded scores still add up as the rules say


@pytest.mark.parametrize(
    "target,actual",
    [
        ("≥550批次", "550"),
        ("≥550批次", "551"),
        (">90%", "90%"),
        ("=100%", "100%"),
        ("≤400元/人天", "400"),
        ("0起", "0"),
    ],
)
def test_met_when_exact_actual_reaches_target(target, actual):
    s, met, dev = score(target, actual)
    assert (s, met, dev) == (D("10.00"), True, "")


def test_weights_message_numbers_are_plain():
    with pytest.raises(ScoringError) as exc:
        check_weights([D("42.50"), D("40")], D("10.00"))
    assert "合计为82.5分" in str(exc.value) and "分值10分" in str(exc.value) and "共92.5分" in str(exc.value)
