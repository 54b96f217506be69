"""Goal target text (指标值) as people write it -> a structured ``Target``.

Accepted forms (after Unicode NFKC, so full-width ＞＜＝％，digits work too):
``≥550批次``, ``>=70%``, ``100%`` (no comparator means ≥), ``=100%``,
``≤400元/人天``, ``<5%``, ``0起`` (a bare zero means ≤0), ``≥ 1,000 人次``, ``不低于90%``, and
qualitative text without a number such as ``有效提升``. Timing phrases such as
``12月底前完成`` are qualitative too (the number there is a date, not a value).
Anything else raises ``TargetError`` with a Chinese message.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from budget_monitor.money_fmt import plain_number

Comparator = Literal[">=", ">", "=", "<=", "<"]

# Spelled comparators -> canonical. Longest first so "<=" wins over "<".
_COMPARATORS: list[tuple[str, Comparator]] = [
    (">=", ">="),
    ("<=", "<="),
    ("=>", ">="),
    ("=<", "<="),
    ("≥", ">="),
    ("≧", ">="),
    ("⩾", ">="),
    ("≤", "<="),
    ("≦", "<="),
    ("⩽", "<="),
    ("大于等于", ">="),
    ("不低于", ">="),
    ("不少于", ">="),
    ("至少", ">="),
    ("达到", ">="),
    ("小于等于", "<="),
    ("不高于", "<="),
    ("不超过", "<="),
    ("不多于", "<="),
    ("控制在", "<="),
    ("大于", ">"),
    ("高于", ">"),
    ("多于", ">"),
    ("超过", ">"),
    ("小于", "<"),
    ("低于", "<"),
    ("少于", "<"),
    ("等于", "="),
    ("==", "="),
    (">", ">"),
    ("<", "<"),
    ("=", "="),
]
_SYMBOL: dict[str, str] = {">=": "≥", ">": ">", "=": "=", "<=": "≤", "<": "<"}

_NUMBER = re.compile(r"^(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
# Words after a number that make the whole target a time limit, not a quantity.
_TIMING = re.compile(r"(年|月|日|号)(底|末|前|内|以前|之前)|月底|年底|前完成|内完成")
_BAD_UNIT = re.compile(r"[\d<>=≥≤≦≧]")


class TargetError(ValueError):
    """The target text cannot be read; the message is for the finance office."""


@dataclass(frozen=True)
class Target:
    comparator: Comparator
    value: Decimal | None
    unit: str
    is_percent: bool
    qualitative: bool
    text: str

    @property
    def lower_is_better(self) -> bool:
        return self.comparator in ("<=", "<")


def _normalize(text: str) -> str:
    # NFKC folds full-width digits/letters/＞＜＝％，to ASCII; ≥/≤ are kept.
    s = unicodedata.normalize("NFKC", text)
    return re.sub(r"\s+", "", s)


def parse_target(text: str) -> Target:
    """Parse one 指标值 cell. Raises TargetError (Chinese) when unreadable."""
    if text is None or not str(text).strip():
        raise TargetError("指标值为空，无法识别")
    original = str(text).strip()
    s = _normalize(original)

    comparator: Comparator | None = None
    for spelled, canon in _COMPARATORS:
        if s.startswith(spelled):
            comparator, s = canon, s[len(spelled) :]
            break

    if not re.search(r"\d", s):
        if comparator is not None and not s:
            raise TargetError(f"指标值「{original}」只有比较符号，缺少数值")
        if comparator is not None and comparator != ">=":
            raise TargetError(f"指标值「{original}」有比较符号但缺少数值")
        return Target(">=", None, "", False, True, original)

    if _TIMING.search(s):
        return Target(">=", None, "", False, True, original)

    m = _NUMBER.match(s)
    if not m:
        raise TargetError(f"指标值「{original}」无法识别：数值应紧跟在比较符号（≥、>、=、≤、<）之后")
    try:
        value = Decimal(m.group(0).replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - regex guarantees digits
        raise TargetError(f"指标值「{original}」中的数值无法识别") from exc
    rest = s[m.end() :]
    # "5%以内", "90%以上": the suffix word carries the direction when no symbol did.
    suffix = re.search(r"(及以上|以上|及以下|以下|以内)$", rest)
    if suffix:
        rest = rest[: suffix.start()]
        if comparator is None:
            comparator = ">=" if suffix.group(1).endswith("以上") else "<="
    is_percent = rest.startswith("%")
    unit = "%" if is_percent else rest
    if is_percent and rest != "%":
        raise TargetError(f"指标值「{original}」无法识别：百分号后不应再有其他内容")
    if _BAD_UNIT.search(unit):
        raise TargetError(f"指标值「{original}」无法识别：只能包含一个数值（区间或多个数值请拆分为多个指标）")
    if len(unit) > 12:
        raise TargetError(f"指标值「{original}」无法识别：计量单位「{unit}」过长")
    if comparator is None:
        # A bare zero ("0起", "0次") is a count of incidents that must stay at
        # zero: lower is better, otherwise any result would trivially meet it.
        comparator = "<=" if value == 0 else ">="
    return Target(comparator, value, unit, is_percent, False, original)


def format_target(target: Target, *, explicit_ge: bool = True) -> str:
    """Canonical text of a target (parse_target(format_target(t)) == t, text aside)."""
    if target.qualitative or target.value is None:
        return target.text
    sym = _SYMBOL[target.comparator]
    if target.comparator == ">=" and not explicit_ge:
        sym = ""
    return f"{sym}{plain_number(target.value, places=None)}{target.unit}"  # every digit: round-trips


_BARE_NUMBER = re.compile(r"^[+-]?\d[\d,]*(\.\d+)?$")


def with_unit(actual_text: str, target: Target) -> str:
    """'320' with target ≥400批次 -> '320批次' for prose; anything else unchanged."""
    if target.qualitative or target.is_percent or not target.unit:
        return actual_text
    return actual_text + target.unit if _BARE_NUMBER.match(actual_text.strip()) else actual_text


def readable_target(text: str) -> Target | None:
    """parse_target, or None when the text cannot be read (for prose only)."""
    try:
        return parse_target(text)
    except TargetError:
        return None
