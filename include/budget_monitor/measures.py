"""Each goal's actual value (实际完成值), measured as fund.yaml declares.

Inputs are plain pandas DataFrames in the canonical shapes of
docs/architecture.md (inspections, outputs) plus the fund's execution rate, so
the same code serves files, SQLite and PostgreSQL sources.

``where`` / ``denominator_where`` filters compare a column with a value;
``"a|b"`` in a value means either (e.g. ``{category: 药品|药包材}``).
For ``source: outputs, agg: latest`` (and ``source: qualitative``) the row of
the latest month is used; when several units reported that month a fund-level
row (unit '') wins. Several units and no fund-level row is an error (which unit
would be a guess): the fund declares ``unit`` or uses ``agg: sum``/``mean``.
Errors in the measure settings are ``ValueError`` with a Chinese message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING

from budget_monitor.config import FundConfig, Measure
from budget_monitor.money_fmt import plain_number

if TYPE_CHECKING:  # pandas is imported by callers; keep this module cheap to import
    import pandas as pd

_PERCENT = re.compile(r"^\s*([+-]?\d[\d,]*(?:\.\d+)?)\s*%\s*$")
# A number followed by its unit as people write it: "550批次", "1,000 人次", "0起".
_WITH_UNIT = re.compile(r"^\s*([+-]?\d[\d,]*(?:\.\d+)?)\s*([^\d\s%]{1,8})?\s*$")
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Actual:
    """A measured actual. ``value`` is numeric (percent points for percents)."""

    value: Decimal | None
    text: str
    missing: bool = False
    is_percent: bool = False

    @classmethod
    def none(cls) -> Actual:
        return cls(None, "", missing=True)

    @classmethod
    def number(cls, value: Decimal, *, percent: bool = False) -> Actual:
        q = value.quantize(_CENT, rounding=ROUND_HALF_UP)
        text = plain_number(q) + ("%" if percent else "")
        return cls(q, text, missing=False, is_percent=percent)


def actual_from_text(text: str, value_num: Decimal | None = None) -> Actual:
    """An outputs cell as written -> Actual. '70%' -> 70 (points), '372' -> 372."""
    raw = "" if text is None else unicodedata.normalize("NFKC", str(text)).strip()
    m = _PERCENT.match(raw)
    if m:
        return Actual(Decimal(m.group(1).replace(",", "")), raw, is_percent=True)
    num = _to_decimal(value_num)
    if num is None and raw:
        m = _WITH_UNIT.match(raw)
        num = _to_decimal(m.group(1).replace(",", "")) if m else None
    if num is None and not raw:
        return Actual.none()
    return Actual(num, raw or plain_number(num, places=None))  # type: ignore[arg-type]


def _to_decimal(v: object) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, Decimal):
        return None if v.is_nan() else v
    if isinstance(v, float):
        if v != v:  # NaN from pandas
            return None
        return Decimal(str(v))
    try:
        return Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None


def _filter(df: pd.DataFrame, where: Mapping[str, str], name: str) -> pd.DataFrame:
    for col, wanted in where.items():
        if col not in df.columns:
            raise ValueError(
                f"指标「{name}」的取数设置有误：筛选条件中的字段「{col}」不存在"
                f"（可用字段：{'、'.join(map(str, df.columns))}），请修改 fund.yaml 中该指标的 measures 设置。"
            )
        choices = [w.strip() for w in str(wanted).split("|")]
        df = df[df[col].astype(str).str.strip().isin(choices)]
    return df


def _count(df: pd.DataFrame) -> int:
    return int(df["sample_no"].nunique()) if "sample_no" in df.columns else len(df)


def _latest_row(rows: pd.DataFrame, name: str, measure: Measure) -> pd.Series:
    """The row of the latest month: the fund-level one, or the only unit's; never a guess among units."""
    month = rows["month"].astype(str).max()
    latest = rows[rows["month"].astype(str) == month]
    units = latest["unit"].fillna("").astype(str).str.strip()
    if (units == "").any():
        return latest[units == ""].iloc[-1]
    distinct = list(dict.fromkeys(units))
    if len(distinct) > 1:
        fix = "设置 unit 指定取哪个单位"
        if measure.source != "qualitative":
            fix += "，或改用 agg: sum / mean 汇总各单位"
        raise ValueError(
            f"指标「{name}」{month}有{len(distinct)}个单位填报（{'、'.join(distinct)}），且没有全市汇总行（单位为空），"
            f"无法确定取哪个单位的数值；请在 fund.yaml 中为该指标的 measures {fix}。"
        )
    return latest.iloc[-1]  # one unit (a correction later in the file wins)


def measure_one(
    name: str,
    measure: Measure | None,
    inspections: pd.DataFrame | None,
    outputs: pd.DataFrame | None,
    execution_rate: Decimal | None,
) -> Actual:
    """Measure one indicator; no data means ``Actual.none()`` (never a guess)."""
    if measure is None:
        measure = Measure(source="outputs", agg="latest")
    if measure.source == "execution":
        return Actual.none() if execution_rate is None else Actual.number(execution_rate, percent=True)
    if measure.source == "inspections":
        if inspections is None or inspections.empty:
            return Actual.none()
        num = _count(_filter(inspections, measure.where, name))
        if measure.agg == "count":
            return Actual.number(Decimal(num))
        den = _count(_filter(inspections, measure.denominator_where, name))
        if den == 0:
            return Actual.none()
        return Actual.number(Decimal(num) * 100 / Decimal(den), percent=True)

    if outputs is None or outputs.empty:
        return Actual.none()
    rows = outputs[outputs["name"].astype(str).str.strip() == (measure.indicator or name)]
    if measure.unit is not None:
        rows = rows[rows["unit"].fillna("").astype(str).str.strip() == measure.unit]
    if rows.empty:
        return Actual.none()
    if measure.source == "qualitative" or measure.agg == "latest":
        row = _latest_row(rows, name, measure)
        if measure.source == "qualitative":
            text = unicodedata.normalize("NFKC", str(row["value"] or "")).strip()
            return Actual(None, text) if text else Actual.none()
        return actual_from_text(row["value"], row.get("value_num"))

    values = [actual_from_text(v, n) for v, n in zip(rows["value"], rows.get("value_num", [None] * len(rows)))]
    nums = [a.value for a in values if a.value is not None]
    if not nums:
        return Actual.none()
    percent = all(a.is_percent for a in values if a.value is not None)
    if measure.agg == "sum":
        result = sum(nums, Decimal(0))
    elif measure.agg == "max":
        result = max(nums)
    else:  # mean
        result = sum(nums, Decimal(0)) / Decimal(len(nums))
    return Actual.number(result, percent=percent)


def measure_actuals(
    cfg: FundConfig,
    goals: pd.DataFrame,
    inspections: pd.DataFrame | None,
    outputs: pd.DataFrame | None,
    execution_rate: Decimal | None,
) -> dict[str, Actual]:
    """Indicator name -> Actual for every goals row, per ``cfg.measures``."""
    return {
        str(name): measure_one(str(name), cfg.measures.get(str(name)), inspections, outputs, execution_rate)
        for name in goals["name"]
    }
