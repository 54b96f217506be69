"""Periods shared by every layer: the zone, months, quarters (no I/O, nothing of the package).

The one place that says which zone the finance office's clock is in and what
its quarters are called; every other module imports these.
"""

from __future__ import annotations

import calendar
from datetime import date
from types import MappingProxyType
from zoneinfo import ZoneInfo

__all__ = ["TZ", "TZ_NAME", "QUARTER_ZH", "month_bounds", "month_end", "quarter_end_month"]

TZ_NAME = "Asia/Shanghai"
TZ = ZoneInfo(TZ_NAME)

# Read-only: a module that wrote into it would rename a quarter everywhere.
QUARTER_ZH = MappingProxyType({1: "第一季度", 2: "第二季度", 3: "第三季度", 4: "第四季度"})


def month_bounds(month: str) -> tuple[date, date]:
    """First and last day of 'YYYY-MM'."""
    try:
        year, mon = (int(p) for p in month.split("-"))
        last = calendar.monthrange(year, mon)[1]
        return date(year, mon, 1), date(year, mon, last)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"月份 {month!r} 应为 YYYY-MM 格式") from exc


def month_end(year: int, month: int) -> date:
    """Last day of ``month`` of ``year``."""
    return date(year, month, calendar.monthrange(year, month)[1])


def quarter_end_month(quarter: int) -> int:
    """The month (3, 6, 9, 12) that closes ``quarter``; ValueError outside 1-4."""
    if quarter not in QUARTER_ZH:
        raise ValueError(f"季度应为 1-4，而不是 {quarter}")
    return quarter * 3
