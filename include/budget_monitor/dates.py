"""Date and month text → dates, vectorised.

Dates: ``2021-06-30``, ``2021/6/30``, ``2021.6.30``, ``2021年6月30日``,
``20210630``, a time part after the date (``2021-06-30 00:00:00``, which is how
an XLSX datetime cell reads as text), full-width digits, and Excel serial
numbers (``44377`` → 2021-06-30; 1900 date system, days since 1899-12-30,
a fraction is a time of day and is dropped). Impossible dates (2021-02-30)
and anything else are null; the caller reports them with the raw text.

The Series API returns ``datetime64[s]`` at midnight (fast to compare and
group); :func:`parse_date_text` returns a ``datetime.date``.

Months: ``2021-06``, ``2021/6``, ``2021.6``, ``2021年6月``, ``202106`` and a full
date (its month is taken) → ``'YYYY-MM'`` text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

_FULLWIDTH = {ord(c): ord(c) - 0xFEE0 for c in "０１２３４５６７８９－／．："}
_FULLWIDTH[0x3000] = 0x20

_DATE_RE = (
    r"^(?:(?P<y>\d{4})(?:[-/.]|\s*年\s*)(?P<m>\d{1,2})(?:[-/.]|\s*月\s*)(?P<d>\d{1,2})\s*日?"
    r"|(?P<y8>\d{4})(?P<m8>\d{2})(?P<d8>\d{2})"
    r"|(?P<serial>\d{1,5})(?:\.\d+)?)"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_MONTH_RE = (
    r"^(?:(?P<y>\d{4})(?:[-/.]|\s*年\s*)(?P<m>\d{1,2})\s*月?"
    r"|(?P<y6>\d{4})(?P<m6>\d{2}))"
    r"(?:(?:[-/.]|\s*月\s*)\d{1,2}\s*日?)?(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$"
)
_EXCEL_EPOCH = np.datetime64("1899-12-30", "D")
# Serial numbers below 61 fall before Excel's phantom 1900-02-29; no real
# budget data is dated in early 1900, so they are treated as invalid.
_SERIAL_MIN, _SERIAL_MAX = 61, 2_958_465  # 1900-03-01 .. 9999-12-31


@dataclass(frozen=True)
class DateParse:
    values: pd.Series  # datetime64[s] (dates) or str 'YYYY-MM' (months), null when bad
    empty: pd.Series  # bool
    invalid: pd.Series  # bool: non-empty but not a valid date/month


def _clean(values: pd.Series) -> pd.Series:
    s = values.astype("str").fillna("")
    return s.str.translate(_FULLWIDTH).str.strip()


def _ymd(y: pd.Series, m: pd.Series, d: pd.Series) -> pd.Series:
    """Vectorised, strict: impossible dates (02-30, month 13) become NaT."""
    frame = pd.DataFrame(
        {
            "year": pd.to_numeric(y, errors="coerce"),
            "month": pd.to_numeric(m, errors="coerce"),
            "day": pd.to_numeric(d, errors="coerce"),
        }
    )
    ok = frame.notna().all(axis=1) & frame["month"].between(1, 12) & frame["day"].between(1, 31)
    frame = frame.where(ok, other=pd.NA)
    out = pd.Series(pd.NaT, index=y.index, dtype="datetime64[s]")
    if ok.any():
        sub = frame[ok].astype("int64")
        out[ok] = pd.to_datetime(sub, errors="coerce").astype("datetime64[s]")
    return out


def parse_dates(values: pd.Series) -> DateParse:
    """Parse a Series of date text (or XLSX datetime text) into datetime64[s].

    ISO dates (the usual export) are parsed by numpy in C; the other rows go
    through the regex path (row subset only).
    """
    index = values.index
    obj = values.to_numpy(dtype=object, na_value="")
    u = np.strings.strip(np.asarray(obj, dtype="U")) if len(obj) else np.asarray(obj, dtype="U1")
    empty = np.strings.str_len(u) == 0
    out = np.full(len(u), np.datetime64("NaT"), dtype="datetime64[s]")
    if len(u) == 0:
        return DateParse(pd.Series(out, index=index), pd.Series(empty, index=index), pd.Series(empty, index=index))
    iso = (
        (np.strings.str_len(u) == 10)
        & (np.strings.slice(u, 4, 5) == "-")
        & (np.strings.slice(u, 7, 8) == "-")
        & np.strings.isdigit(np.strings.replace(u, "-", ""))
    )
    if iso.any():
        try:
            out[iso] = u[iso].astype("datetime64[D]")
        except ValueError:  # an impossible date somewhere: leave all to the regex path
            iso[:] = False
    todo = ~empty & ~iso
    if todo.any():
        out[todo] = _general_dates(pd.Series(u[todo], dtype="str")).to_numpy(dtype="datetime64[s]")
    res = pd.Series(out, index=index, dtype="datetime64[s]")
    invalid = ~empty & np.isnat(out)
    return DateParse(res, pd.Series(empty, index=index), pd.Series(invalid, index=index))


def _general_dates(s: pd.Series) -> pd.Series:
    s = s.str.translate(_FULLWIDTH).str.strip()
    m = s.str.extract(_DATE_RE)
    y = m["y"].fillna(m["y8"])
    mo = m["m"].fillna(m["m8"])
    d = m["d"].fillna(m["d8"])
    out = _ymd(y, mo, d)
    serial = pd.to_numeric(m["serial"], errors="coerce")
    is_serial = serial.between(_SERIAL_MIN, _SERIAL_MAX)
    if bool(is_serial.any()):
        days = serial[is_serial].astype("int64").to_numpy().astype("timedelta64[D]")
        out[is_serial] = (_EXCEL_EPOCH + days).astype("datetime64[s]")
    return out


def parse_months(values: pd.Series) -> DateParse:
    """Parse month text into ``'YYYY-MM'`` strings (null when invalid)."""
    s = _clean(values)
    empty = s == ""
    m = s.str.extract(_MONTH_RE)
    y = pd.to_numeric(m["y"].fillna(m["y6"]), errors="coerce")
    mo = pd.to_numeric(m["m"].fillna(m["m6"]), errors="coerce")
    ok = y.between(1900, 9999) & mo.between(1, 12)
    text = y.astype("Int64").astype("str").str.zfill(4) + "-" + mo.astype("Int64").astype("str").str.zfill(2)
    out = text.where(ok).astype("str")
    invalid = (~empty & ~ok).astype(bool)
    return DateParse(out, empty.astype(bool), invalid)


def parse_date_text(text: str) -> dt.date:
    """One date text → datetime.date; ValueError (Chinese) when invalid."""
    res = parse_dates(pd.Series([text], dtype="str"))
    if bool(res.empty.iloc[0]) or bool(res.invalid.iloc[0]):
        raise ValueError(f"日期无法识别：“{text}”")
    return res.values.iloc[0].date()


def parse_month_text(text: str) -> str:
    """One month text → 'YYYY-MM'; ValueError (Chinese) when invalid."""
    res = parse_months(pd.Series([text], dtype="str"))
    if bool(res.empty.iloc[0]) or bool(res.invalid.iloc[0]):
        raise ValueError(f"月份无法识别：“{text}”")
    return str(res.values.iloc[0])


def to_date_objects(values: pd.Series) -> pd.Series:
    """datetime64 Series → object Series of ``datetime.date`` (for SQL/JSON)."""
    return values.dt.date
