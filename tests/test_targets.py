"""Goal target text -> Target (targets.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from budget_monitor.targets import Target, TargetError, format_target, parse_target


@pytest.mark.parametrize(
    "text,comparator,value,unit,is_percent",
    [
        ("≥550批次", ">=", "550", "批次", False),
        (">=70%", ">=", "70", "%", True),
        ("100%", ">=", "100", "%", True),
        ("=100%", "=", "100", "%", True),
        ("≤400元/人天", "<=", "400", "元/人天", False),
        ("<5%", "<", "5", "%", True),
        ("0起", "<=", "0", "起", False),
        ("≥ 1,000 人次", ">=", "1000", "人次", False),
        ("＞９０％", ">", "90", "%", True),
        ("≥９８．５％", ">=", "98.5", "%", True),
        ("＝100％", "=", "100", "%", True),
        ("<=12天", "<=", "12", "天", False),
        ("不低于90%", ">=", "90", "%", True),
        ("不超过400元", "<=", "400", "元", False),
        ("5%以内", "<=", "5", "%", True),
        ("90%以上", ">=", "90", "%", True),
        ("372", ">=", "372", "", False),
        ("≥1，000人次", ">=", "1000", "人次", False),
    ],
)
def test_target_parses_as_written(text, comparator, value, unit, is_percent):
    t = parse_target(text)
    assert (t.comparator, t.value, t.unit, t.is_percent, t.qualitative) == (
        comparator,
        Decimal(value),
        unit,
        is_percent,
        False,
    )
    assert t.text == text


def test_target_without_comparator_means_at_least():
    assert parse_target("550批次").comparator == ">="
    assert not parse_target("550批次").lower_is_better


def test_target_bare_zero_means_none_allowed():
    t = parse_target("0起")
    assert t.comparator == "<=" and t.value == 0 and t.lower_is_better


@pytest.mark.parametrize("text", ["有效提升", "明显改善", "逐步完善", "12月底前完成", "2021年底前"])
def test_target_qualitative_text(text):
    t = parse_target(text)
    assert t.qualitative and t.value is None and t.text == text


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("", "为空"),
        ("   ", "为空"),
        ("≥", "缺少数值"),
        ("≤有效", "缺少数值"),
        ("550-600批次", "只能包含一个数值"),
        ("≥70%左右", "百分号后"),
        ("≥abc5", "无法识别"),
    ],
)
def test_target_unreadable_raises_chinese_error(text, fragment):
    with pytest.raises(TargetError) as exc:
        parse_target(text)
    assert fragment in str(exc.value)


# ---- property-based round trips

comparators = st.sampled_from([">=", ">", "=", "<=", "<"])
values = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=2, allow_nan=False, allow_infinity=False
)
units = st.sampled_from(["批次", "人次", "元/人天", "起", "个", "天", "万元", "家", "次", ""])


@st.composite
def targets(draw) -> Target:
    comparator = draw(comparators)
    value = draw(values)
    if draw(st.booleans()):
        return Target(comparator, value, "%", True, False, "")
    return Target(comparator, value, draw(units), False, False, "")


def _same(a: Target, b: Target) -> bool:
    return (a.comparator, a.value, a.unit, a.is_percent, a.qualitative) == (
        b.comparator,
        b.value,
        b.unit,
        b.is_percent,
        b.qualitative,
    )


@given(targets())
def test_target_round_trip_format_then_parse(t: Target):
    assert _same(parse_target(format_target(t)), t)


_FULL_WIDTH = str.maketrans("0123456789%>=<,.", "０１２３４５６７８９％＞＝＜，．")


@given(targets(), st.sampled_from(["", " ", "  "]))
def test_target_round_trip_full_width_and_spaces(t: Target, space: str):
    text = format_target(t).translate(_FULL_WIDTH)
    text = text[:1] + space + text[1:]
    assert _same(parse_target(text), t)


@given(targets())
def test_target_round_trip_thousands_separators(t: Target):
    sym = {">=": ">=", ">": ">", "=": "=", "<=": "<=", "<": "<"}[t.comparator]
    text = f"{sym}{t.value:,.2f}{t.unit}"
    assert _same(parse_target(text), t)


@given(st.text(alphabet="有效提升明显改善逐步完善服务质量", min_size=1, max_size=12))
def test_target_qualitative_round_trip(text: str):
    t = parse_target(text)
    assert t.qualitative and format_target(t) == text
