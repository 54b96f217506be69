"""存在问题 / 改进意见 derived from facts (narrative.py + rules/narrative.yaml)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from budget_monitor.narrative import build_narrative, load_texts, quarter_phrase

NONE_TEXT = "本专项资金全年支出进度均达到序时进度要求，绩效目标全部完成，未发现明显问题。"


def quarters(*lagging: int) -> list[dict]:
    return [
        {
            "quarter": q,
            "cumulative_rate": 0,
            "pace": 0,
            "gap_points": -1 if q in lagging else 1,
            "lagging": q in lagging,
        }
        for q in range(1, 5)
    ]


def met(name: str = "A") -> dict:
    return {"name": name, "target": "≥10个", "actual": "10", "met": True, "deviation": ""}


@pytest.mark.parametrize(
    "qs,phrase",
    [
        ([2, 3], "第二季度和第三季度"),
        ([1], "第一季度"),
        ([3, 1, 2], "第一季度至第三季度"),
        ([1, 2, 3, 4], "第一季度至第四季度"),
        ([1, 2, 4], "第一季度、第二季度和第四季度"),
        ([1, 3], "第一季度和第三季度"),
        ([], ""),
    ],
)
def test_quarter_phrase_names_quarters_in_chinese(qs, phrase):
    assert quarter_phrase(qs) == phrase


def test_lagging_quarters_named_as_in_the_seed():
    n = build_narrative(quarters(2, 3), [met()], [], execution_rate=100, unspent_fen=0)
    assert n.problems == ["第二季度和第三季度支出进度不达序时进度。"]
    assert n.kinds == ["lagging_execution"]
    assert n.improvements == [load_texts()["improvements"]["lagging_execution"]]
    assert n.improvements[0].startswith("加强工作规划，提高资金执行进度。一是")
    assert "二是" in n.improvements[0] and "三是" in n.improvements[0]


def test_lagging_cause_sentence_is_added_when_known():
    n = build_narrative(quarters(2, 3), [met()], [], causes={2: "部分项目启动较晚"})
    assert n.problems[0] == "第二季度和第三季度支出进度不达序时进度。部分项目启动较晚导致第二季度支出进度不达序时进度。"


def test_lagging_cause_given_as_full_sentence_is_kept():
    n = build_narrative(quarters(3), [met()], [], causes={3: "因疫情影响采购延后导致第三季度支出放缓"})
    assert n.problems[0].endswith("因疫情影响采购延后导致第三季度支出放缓。")


def test_cause_for_a_quarter_that_did_not_lag_is_ignored():
    n = build_narrative(quarters(2), [met()], [], causes={3: "部分项目启动较晚"})
    assert n.problems == ["第二季度支出进度不达序时进度。"]


def test_nothing_lagged_and_all_goals_met_says_so():
    n = build_narrative(
        quarters(),
        [met("A"), met("B")],
        [{"unit": "台山", "execution_rate": 100, "lagging_quarters": []}],
        execution_rate=100,
        unspent_fen=0,
    )
    assert n.problems == [NONE_TEXT]
    assert n.kinds == []
    joined = "".join(n.improvements)
    assert "加强工作规划" not in joined and "一是" not in joined


def test_unmet_indicator_says_actual_vs_target():
    ind = {"name": "培训率", "target": "≥70%", "actual": "60%", "met": False, "deviation": "x"}
    n = build_narrative(quarters(), [met(), ind], [])
    assert n.problems == ["部分绩效指标未完成：“培训率”实际完成值为60%，年度指标值为≥70%。"]
    assert n.kinds == ["unmet_indicator"]
    assert "绩效目标" in n.improvements[0]


def test_unmet_indicator_prose_carries_units_and_completion_level():
    inds = [
        {"name": "抽检批次", "target": "≥400批次", "actual": "320", "met": False, "deviation": "x"},
        {"name": "满意度", "target": "有效提升", "actual": "基本达成", "met": False, "deviation": "x"},
    ]
    n = build_narrative(quarters(), inds, [])
    assert n.problems == [
        "部分绩效指标未完成：“抽检批次”实际完成值为320批次，年度指标值为≥400批次；"
        "“满意度”完成程度为基本达成，年度指标值为有效提升。"
    ]


def test_missing_actual_is_a_problem_not_a_pass():
    ind = {"name": "满意度", "target": "有效提升", "actual": None, "met": False, "deviation": "x"}
    n = build_narrative(quarters(), [met(), ind], [])
    assert n.problems == ["“满意度”未取得实际完成值，无法评价完成情况。"]
    assert n.kinds == ["missing_actual"]


def test_units_behind_are_named():
    units = [
        {"unit": "台山市市场监督管理局", "execution_rate": 100, "lagging_quarters": [2, 3]},
        {"unit": "恩平市市场监督管理局", "execution_rate": 100, "lagging_quarters": []},
    ]
    n = build_narrative(quarters(2), [met()], units)
    assert n.problems[1] == "分单位看，台山市市场监督管理局第二季度和第三季度支出进度落后于序时进度。"
    assert "恩平" not in "".join(n.problems)
    assert n.kinds == ["lagging_execution", "lagging_units"]


def test_units_behind_are_grouped_by_quarters():
    units = [
        {"unit": "台山", "execution_rate": 100, "lagging_quarters": [1, 2, 3]},
        {"unit": "开平", "execution_rate": 100, "lagging_quarters": [2, 3]},
        {"unit": "恩平", "execution_rate": 100, "lagging_quarters": [3, 2, 1]},
        {"unit": "江门", "execution_rate": 100, "lagging_quarters": [2, 3]},
    ]
    n = build_narrative(quarters(2, 3), [met()], units)
    assert (
        n.problems[1] == "分单位看，台山、恩平第一季度至第三季度，开平、江门第二季度和第三季度支出进度落后于序时进度。"
    )


def test_all_units_behind_in_the_same_quarters_said_once():
    units = [{"unit": u, "execution_rate": 100, "lagging_quarters": [2, 3]} for u in ("台山", "开平", "恩平")]
    n = build_narrative(quarters(2, 3), [met()], units)
    assert n.problems[1] == "分单位看，各预算单位第二季度和第三季度支出进度均落后于序时进度。"


def test_year_end_unspent_money_and_units():
    units = [{"unit": "开平市市场监督管理局", "execution_rate": 85.5, "lagging_quarters": []}]
    n = build_narrative(quarters(), [met()], units, execution_rate=95.12, unspent_fen=18_150_000)
    assert n.problems == [
        "截至年末，专项资金执行率为95.12%，尚有18.15万元未支出。"
        "截至年末，开平市市场监督管理局（85.5%）执行率未达到100%。"
    ]
    assert n.kinds == ["year_end_unspent"]


def test_improvements_follow_problem_types_in_order():
    ind = {"name": "培训率", "target": "≥70%", "actual": "60%", "met": False, "deviation": "x"}
    units = [{"unit": "台山", "execution_rate": 100, "lagging_quarters": [1]}]
    n = build_narrative(quarters(1), [ind], units)
    imp = load_texts()["improvements"]
    assert n.improvements == [imp["lagging_execution"], imp["lagging_units"], imp["unmet_indicator"]]
    assert len(n.problems) == len(n.improvements)


def test_year_end_unspent_reported_when_exact_rate_below_100_though_it_reads_100():
    # 1 fen left of 372.09 万元: the rate presents as 100.00 but the execution indicator is not met.
    n = build_narrative(quarters(), [met()], [], execution_rate=Decimal("100.00"), execution_met=False, unspent_fen=1)
    assert n.problems == ["截至年末，专项资金执行率为100%，尚有0.01元未支出。"]
    assert n.kinds == ["year_end_unspent"]


def test_year_end_fully_spent_is_not_a_problem():
    n = build_narrative(quarters(), [met()], [], execution_rate=Decimal("100.00"), execution_met=True, unspent_fen=0)
    assert n.kinds == []


def test_year_end_unspent_unit_decided_on_exact_money_not_rounded_rate():
    units = [
        {
            "unit": "开平市市场监督管理局",
            "budget_yuan": "1000000.00",
            "executed_yuan": "999999.99",
            "execution_rate": 100.0,
            "lagging_quarters": [],
        },
        {
            "unit": "台山市市场监督管理局",
            "budget_yuan": "1000000.00",
            "executed_yuan": "1000000.00",
            "execution_rate": 100.0,
            "lagging_quarters": [],
        },
    ]
    n = build_narrative(quarters(), [met()], units, execution_rate=100, execution_met=True, unspent_fen=0)
    assert n.problems == ["截至年末，开平市市场监督管理局（100%）执行率未达到100%。"]
