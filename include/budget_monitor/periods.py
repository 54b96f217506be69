"""Period helpers shared by every layer (no I/O, nothing of the package)."""

from __future__ import annotations

import calendar
from datetime import date


def month_bounds(month: str) -> tuple[date, date]:
    """First and last day of 'YYYY-MM'."""
    try:
        year, mon = (int(p) for p in month.split("-"))
        last = calendar.monthrange(year, mon)[1]
        return date(year, mon, 1), date(year, mon, last)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"月份 {month!r} 应为 YYYY-MM 格式") from exc
