"""序时进度 (time pace): the share of the year that "should" have been spent by a date.

Policies (``PaceConfig.policy``, rules.md "Execution rate and pace") are the
rows of ``POLICIES`` below: name, the label the finance office reads in the
mails (序时进度口径), the function, and the PaceConfig fields it needs.
config.py's schema, the mail templates (templates/alert_policy.j2) and
``pace_fraction_at`` read the table, so a new policy is a function and a row.

- ``linear_month``: at the end of month m, m / 12 x 100. Inside a month the pace
  grows linearly by day, so that every month end gives exactly m / 12 x 100.
- ``linear_day``: days elapsed (the given day included) / days in the year x 100;
  leap years have 366 days.
- ``milestones``: a table MM-DD -> percent, linear by day between points. The
  start of the year (before 01-01 has elapsed) is 0 and 12-31 is 100 unless the
  table says otherwise. A point at MM-DD means "percent reached at the end of
  that day". 02-29 falls back to 02-28 outside leap years.
- ``workdays``: 工作日 elapsed (the given day included) / 工作日 in the year x 100,
  from the official calendar of the ``chinese_calendar`` package (holidays and
  their weekend make-up days), which covers 2004-2026 in version 1.11.0.

Values are computed exactly as ``fractions.Fraction`` (``pace_fraction_at``) so
that lag decisions and "money still to spend" are exact; ``pace_at`` gives the
same value as a ``Decimal`` (28 significant digits) for presentation.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

from budget_monitor.periods import month_end, quarter_end_month

if TYPE_CHECKING:  # config.py reads POLICIES for its schema: a runtime import would be a cycle
    from budget_monitor.config import PaceConfig

__all__ = [
    "DEFAULT_POLICY",
    "LABELS",
    "POLICIES",
    "Policy",
    "pace_fraction_at",
    "pace_at",
    "month_end_pace",
    "month_end_pace_fraction",
    "quarter_end_pace",
    "fraction_to_decimal",
]

_HUNDRED = Fraction(100)


def fraction_to_decimal(value: Fraction) -> Decimal:
    """An exact Fraction as a Decimal (exact when it terminates, else 28 digits)."""
    return Decimal(value.numerator) / Decimal(value.denominator)


def _days_in_year(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def _linear_month(day: date, cfg: PaceConfig) -> Fraction:
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    months = (day.month - 1) + Fraction(day.day, days_in_month)
    return months * _HUNDRED / 12


def _linear_day(day: date, cfg: PaceConfig) -> Fraction:
    return Fraction(day.timetuple().tm_yday, _days_in_year(day.year)) * _HUNDRED


def _milestone_day(year: int, key: str) -> int:
    """Day of year (1-based) of an MM-DD milestone in ``year``."""
    month, dom = (int(p) for p in key.split("-"))
    last = calendar.monthrange(year, month)[1]
    if dom > last:
        # Only 02-29 in a common year is tolerated: the table is written once
        # for every year, and the end of February is what it means there.
        if not (month == 2 and dom == 29):
            raise ValueError(f"里程碑日期 {key} 不存在")
        dom = last
    return date(year, month, dom).timetuple().tm_yday


def _milestone_points(year: int, milestones: tuple[tuple[str, Decimal], ...]) -> list[tuple[int, Fraction]]:
    points: dict[int, Fraction] = {0: Fraction(0)}
    for key, pct in milestones:
        points[_milestone_day(year, key)] = Fraction(pct)
    last = _days_in_year(year)
    points.setdefault(last, _HUNDRED)
    return sorted(points.items())


def _milestones(day: date, cfg: PaceConfig) -> Fraction:
    x = day.timetuple().tm_yday
    points = _milestone_points(day.year, tuple(sorted(cfg.milestones.items())))
    for (x0, p0), (x1, p1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return p0 + (p1 - p0) * Fraction(x - x0, x1 - x0)
    raise AssertionError("unreachable: the points span the whole year")


@lru_cache(maxsize=64)
def _workday_ordinals(year: int) -> tuple[int, ...]:
    """Cumulative workday counts: element i = workdays among the first i+1 days."""
    import chinese_calendar  # imported lazily: only the workdays policy needs it

    counts: list[int] = []
    total = 0
    day = date(year, 1, 1)
    while day.year == year:
        try:
            total += 1 if chinese_calendar.is_workday(day) else 0
        except NotImplementedError as exc:
            raise ValueError(f"工作日历不包含 {year} 年（chinese_calendar 未提供该年数据）") from exc
        counts.append(total)
        day += timedelta(days=1)
    return tuple(counts)


def _workdays(day: date, cfg: PaceConfig) -> Fraction:
    counts = _workday_ordinals(day.year)
    return Fraction(counts[day.timetuple().tm_yday - 1], counts[-1]) * _HUNDRED


@dataclass(frozen=True)
class Policy:
    """One 序时进度 policy: a row of POLICIES."""

    name: str  # fund.yaml pace.policy
    label: str  # 序时进度口径 as the mails name it
    pace: Callable[[date, PaceConfig], Fraction]  # exact percent at the end of a day
    needs: tuple[str, ...] = ()  # PaceConfig fields the policy cannot go without (config.py checks)


DEFAULT_POLICY = "linear_month"
# THE table of pace policies. A dict so that a test can register a row
# (monkeypatch.setitem) and see it in the config schema and the mails.
POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("linear_month", "按月平均（第m月末为m/12）", _linear_month),
        Policy("linear_day", "按日历天数", _linear_day),
        Policy("milestones", "按里程碑节点", _milestones, needs=("milestones",)),
        Policy("workdays", "按法定工作日", _workdays),
    )
}


class _Labels(Mapping[str, str]):
    """name -> label, read through to POLICIES (a row added later shows at once)."""

    def __getitem__(self, name: str) -> str:
        return POLICIES[name].label

    def __iter__(self) -> Iterator[str]:
        return iter(POLICIES)

    def __len__(self) -> int:
        return len(POLICIES)


LABELS: Mapping[str, str] = _Labels()


def pace_fraction_at(day: date, cfg: PaceConfig) -> Fraction:
    """Exact pace (percent, 0..100) at the end of ``day`` under ``cfg.policy``."""
    policy = POLICIES.get(cfg.policy)
    if policy is None:
        raise ValueError(f"未知的序时进度口径 {cfg.policy!r}")
    return policy.pace(day, cfg)


def pace_at(day: date, cfg: PaceConfig) -> Decimal:
    """Pace (percent) at the end of ``day``, as a Decimal."""
    return fraction_to_decimal(pace_fraction_at(day, cfg))


def month_end_pace_fraction(year: int, month: int, cfg: PaceConfig) -> Fraction:
    return pace_fraction_at(month_end(year, month), cfg)


def month_end_pace(year: int, month: int, cfg: PaceConfig) -> Decimal:
    """Pace at the last day of ``month`` (linear_month: exactly month / 12 x 100)."""
    return fraction_to_decimal(month_end_pace_fraction(year, month, cfg))


def quarter_end_pace(year: int, quarter: int, cfg: PaceConfig) -> Decimal:
    return month_end_pace(year, quarter_end_month(quarter), cfg)
