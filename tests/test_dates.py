"""dates.py: date / month text and Excel serials -> dates."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budget_monitor.dates import parse_date_text, parse_dates, parse_month_text, parse_months, to_date_objects


@pytest.mark.parametrize(
    "text",
    [
        "2021-06-30",
        "2021/6/30",
        "2021/06/30",
        "2021.6.30",
        "2021年6月30日",
        "2021 年 6 月 30 日",
        "20210630",
        "44377",  # Excel serial
        "44377.75",  # serial with a time of day
        "2021-06-30 00:00:00",  # an XLSX datetime cell read as text
        "2021-06-30 10:05:00",
        "２０２１－０６－３０",
        " 2021-06-30 ",
    ],
)
def test_date_forms(text: str) -> None:
    assert parse_date_text(text) == dt.date(2021, 6, 30)


@pytest.mark.parametrize(
    "text", ["2021-02-30", "2021-13-01", "2021/2/29", "20210231", "abc", "30/06/2021", "0", "六月"]
)
def test_impossible_or_unknown_dates_are_null(text: str) -> None:
    res = parse_dates(pd.Series(["2021-01-01", text], dtype="str"))
    assert res.values.iloc[0] == pd.Timestamp("2021-01-01")
    assert pd.isna(res.values.iloc[1])
    assert bool(res.invalid.iloc[1])
    with pytest.raises(ValueError, match="日期无法识别"):
        parse_date_text(text)


def test_leap_day_is_valid_only_in_leap_years() -> None:
    assert parse_date_text("2020-02-29") == dt.date(2020, 2, 29)
    with pytest.raises(ValueError):
        parse_date_text("2021-02-29")


def test_dates_dtype_empty_and_objects() -> None:
    res = parse_dates(pd.Series(["2021-01-02", "", "2021/1/3"], dtype="str"))
    assert str(res.values.dtype) == "datetime64[s]"
    assert res.empty.tolist() == [False, True, False]
    assert res.invalid.tolist() == [False, False, False]
    assert to_date_objects(res.values.dropna()).tolist() == [dt.date(2021, 1, 2), dt.date(2021, 1, 3)]
    assert len(parse_dates(pd.Series([], dtype="str")).values) == 0


@pytest.mark.parametrize("text", ["2021-06", "2021/6", "2021.6", "2021年6月", "202106", "2021-06-30", "２０２１－０６"])
def test_month_forms(text: str) -> None:
    assert parse_month_text(text) == "2021-06"


@pytest.mark.parametrize("text", ["2021-13", "2021", "六月", "06-2021"])
def test_bad_months(text: str) -> None:
    res = parse_months(pd.Series([text], dtype="str"))
    assert bool(res.invalid.iloc[0])
    with pytest.raises(ValueError, match="月份无法识别"):
        parse_month_text(text)


@settings(max_examples=150, deadline=None)
@given(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2099, 12, 31)))
def test_date_roundtrip_property(d: dt.date) -> None:
    serial = (d - dt.date(1899, 12, 30)).days
    forms = [
        d.isoformat(),
        f"{d.year}/{d.month}/{d.day}",
        f"{d.year}年{d.month}月{d.day}日",
        d.strftime("%Y%m%d"),
        str(serial),
        f"{d.isoformat()} 00:00:00",
    ]
    res = parse_dates(pd.Series(forms, dtype="str"))
    assert [v.date() for v in res.values] == [d] * len(forms)
