"""money.py: money text -> integer fen, exactly."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budget_monitor.money import MAX_ABS_FEN, MoneyError, parse_money, parse_money_text
from budget_monitor.money_fmt import fen_to_yuan_str


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("1234.5", 123450),
        ("1234.50", 123450),
        ("1,234.50", 123450),
        ("1234.50元", 123450),
        ("￥1,234.50", 123450),
        ("¥1234.5", 123450),
        ("１２３４．５０", 123450),
        ("１，２３４．５", 123450),
        ("-50.00", -5000),
        ("(50.00)", -5000),
        ("（50.00）", -5000),
        ("+7", 700),
        (" 8 ", 800),
        ("0", 0),
        (".5", 50),
        ("1.230", 123),  # trailing zeros beyond the fen are exact
        ("999999999999.99", 99_999_999_999_999),  # the largest amount accepted (MAX_ABS_FEN)
        ("-999999999999.99", -99_999_999_999_999),
    ],
)
def test_money_forms_parse_to_exact_fen(text: str, fen: int) -> None:
    assert parse_money_text(text) == fen
    res = parse_money(pd.Series([text], dtype="str"))
    assert res.fen.dtype == "Int64"
    assert int(res.fen.iloc[0]) == fen


@pytest.mark.parametrize("text", ["壹仟元", "一千", "1e5", "12.3.45", "--5", "1_000", "0.001", "-", "abc"])
def test_money_unreadable_is_null_and_invalid(text: str) -> None:
    res = parse_money(pd.Series(["1.00", text], dtype="str"))
    assert int(res.fen.iloc[0]) == 100
    assert pd.isna(res.fen.iloc[1])
    assert bool(res.invalid.iloc[1]) and not bool(res.empty.iloc[1])
    with pytest.raises(MoneyError, match="金额无法识别"):
        parse_money_text(text)


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("1,234,567.89", 123456789),
        ("12,345", 1234500),
        ("-1,234", -123400),
        ("+1,234", 123400),
        ("123,456,789", 12345678900),
        ("(1,234.50)", -123450),
        ("￥1,234.50", 123450),
        ("１，２３４．５", 123450),
        ("999,999,999,999.99", 99_999_999_999_999),
    ],
)
def test_money_thousands_separators_in_groups_of_three_are_accepted(text: str, fen: int) -> None:
    # Alone (fast path) and next to a text only the general path reads.
    assert parse_money(pd.Series([text], dtype="str")).fen.tolist() == [fen]
    assert parse_money(pd.Series([text, "7元"], dtype="str")).fen.tolist() == [fen, 700]


@pytest.mark.parametrize(
    "text",
    [
        "1,23,4",
        "12,34",
        "1234,567",
        "1,2345",
        ",123",
        "-,123",
        "1,,234",
        "1,234,",
        "1,234.5,6",
        "1,234.56,",
        "１，２３，４",
        "￥12,34",
        "(12,34)",
        "+12,34",
        "12,34元",
    ],
)
def test_money_thousands_separators_not_in_groups_of_three_are_invalid(text: str) -> None:
    for values in ([text], ["1.00", text], ["7元", text]):
        res = parse_money(pd.Series(values, dtype="str"))
        assert bool(res.invalid.iloc[-1]) and pd.isna(res.fen.iloc[-1]), (values, res.fen.tolist())
    with pytest.raises(MoneyError, match="金额无法识别"):
        parse_money_text(text)


def test_money_chinese_numerals_are_an_error_not_a_number() -> None:
    with pytest.raises(MoneyError, match="壹仟元"):
        parse_money_text("壹仟元")


def test_money_empty_cell_is_empty_not_invalid() -> None:
    res = parse_money(pd.Series(["", "  ", "3"], dtype="str"))
    assert res.empty.tolist() == [True, True, False]
    assert res.invalid.tolist() == [False, False, False]
    assert res.fen.isna().tolist() == [True, True, False]
    with pytest.raises(MoneyError, match="为空"):
        parse_money_text("")


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("37.5", 37_500_000),
        ("1.234567", 1_234_567),
        ("1.2345670", 1_234_567),
        ("372.09", 372_090_000),
        ("1,000", 1_000_000_000),
    ],
)
def test_money_wanyuan_scale(text: str, fen: int) -> None:
    assert parse_money_text(text, scale=10_000) == fen


def test_money_wanyuan_more_than_two_decimals_after_scaling_is_error() -> None:
    res = parse_money(pd.Series(["0.0000001", "1.2345678"], dtype="str"), scale=10_000)
    assert res.invalid.tolist() == [True, True]


def test_money_fast_and_general_paths_agree() -> None:
    plain = ["1", "2.5", "3.45", "-6.70", "1,000.00"]
    fast = parse_money(pd.Series(plain, dtype="str")).fen.tolist()
    mixed = parse_money(pd.Series(plain + ["7元"], dtype="str")).fen.tolist()
    assert mixed[:-1] == fast == [100, 250, 345, -670, 100000]
    assert mixed[-1] == 700


def test_money_keeps_index_and_handles_empty_series() -> None:
    s = pd.Series(["1", "2"], index=[10, 11], dtype="str")
    assert parse_money(s).fen.index.tolist() == [10, 11]
    assert parse_money(pd.Series([], dtype="str")).fen.tolist() == []


def test_fen_to_yuan_str() -> None:
    assert fen_to_yuan_str(372_090_000) == "3720900.00"
    assert fen_to_yuan_str(-5) == "-0.05"
    assert fen_to_yuan_str(0) == "0.00"


_FULL = str.maketrans("0123456789.,-", "０１２３４５６７８９．，－")


def _forms(fen: int) -> list[str]:
    sign = "-" if fen < 0 else ""
    q, r = divmod(abs(fen), 100)
    plain = f"{sign}{q}.{r:02d}"
    grouped = f"{sign}{q:,}.{r:02d}"
    forms = [plain, grouped, plain + "元", f"￥{grouped}", plain.translate(_FULL), grouped.translate(_FULL)]
    if r % 10 == 0:
        forms.append(f"{sign}{q}.{r // 10}")
    if r == 0:
        forms.append(f"{sign}{q}")
    if fen < 0:
        forms.append(f"({q:,}.{r:02d})")
    return forms


@pytest.mark.parametrize(
    "text",
    [
        "1000000000000",
        "1,000,000,000,000.00",
        "-1000000000000",
        "9999999999999999.99",
        "12345678901234567890",
        "￥9,999,999,999,999,999.99",
        "（1000000000000）",
        "100000000万元",
    ],
)
def test_money_of_1_wanyi_yuan_or_more_is_out_of_range_not_invalid(text: str) -> None:
    """Issue #13: absurd magnitudes are refused at parse (their own rule, PAY-013/BUD-014),
    so no sum of accepted amounts can wrap int64 (ten 9999999999999999.99 rows once did)."""
    scale = 10_000 if text.endswith("万元") else 1
    res = parse_money(pd.Series(["1.00", text.removesuffix("万元")], dtype="str"), scale)
    assert int(res.fen.iloc[0]) == 100 * scale and pd.isna(res.fen.iloc[1])
    assert bool(res.out_of_range.iloc[1]) and not bool(res.invalid.iloc[1])
    with pytest.raises(MoneyError, match="超出可受理范围"):
        parse_money_text(text.removesuffix("万元"), scale)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-MAX_ABS_FEN, max_value=MAX_ABS_FEN))
def test_money_roundtrip_property(fen: int) -> None:
    forms = _forms(fen)
    res = parse_money(pd.Series(forms, dtype="str"))
    assert res.fen.tolist() == [fen] * len(forms)
    assert fen_to_yuan_str(fen) == forms[0]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_money_wanyuan_roundtrip_property(fen: int) -> None:
    # fen -> 万元 text with up to 6 decimals -> back to the same fen.
    q, r = divmod(fen, 1_000_000)
    text = f"{q}.{r:06d}"
    assert parse_money_text(text, scale=10_000) == fen
