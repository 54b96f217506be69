"""自评得分 and grade, per rules.md "Self-evaluation score".

Shares (actual / target, 执行率 / 100) are exact Fractions; each score is
rounded once, to 2 decimals (ROUND_HALF_UP), and the total is the sum of the
rounded scores, so the 自评表 adds up exactly. Nothing is computed from an
already rounded figure: the 执行率 comes in exact (integer fen ratio), and
``met`` is decided on the exact share, never on the rounded score (9999 of
≥10000批次 scores 10.00 but is not met).

Strict comparators (>, <) score like ≥ / ≤: the rules give one formula per
direction, and ``met`` means "got the full weight" before rounding.

Pure: the deviation texts (the ``deviation`` section of rules/narrative.yaml,
``narrative.load_texts()["deviation"]``) are passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from budget_monitor.config import GradeBand, ScoringConfig
from budget_monitor.measures import Actual
from budget_monitor.money_fmt import plain_number, round2
from budget_monitor.targets import Target, TargetError, parse_target, with_unit

if TYPE_CHECKING:
    import pandas as pd

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


class ScoringError(ValueError):
    """The goals table cannot be scored; the message is for the finance office."""


@dataclass(frozen=True)
class IndicatorScore:
    level1: str
    level2: str
    name: str
    target: str
    actual: str | None  # None when missing
    weight: Decimal
    score: Decimal
    met: bool
    deviation: str
    missing: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "level1": self.level1,
            "level2": self.level2,
            "name": self.name,
            "target": self.target,
            "actual": self.actual,
            "weight": float(round2(self.weight)),
            "score": float(self.score),
            "met": self.met,
            "deviation": self.deviation,
        }


@dataclass(frozen=True)
class ScoreSheet:
    indicators: list[IndicatorScore]
    execution_rate: Decimal
    execution_weight: Decimal
    execution_score: Decimal
    total: Decimal
    grade: str
    execution_met: bool  # 执行率 ≥ 100 exactly (99.996 presents as 100.00 but is not met)


def execution_score(rate: Decimal | Fraction, weight: Decimal) -> Decimal:
    """预算执行率 score: weight × min(rate / 100, 1), never below 0.

    ``rate`` must be the exact rate (e.g. ``Fraction(executed_fen * 100,
    adjusted_fen)``), not the 2-decimal figure shown in the report: rounding
    the rate first and the score again can be off by 0.01.
    """
    share = min(max(Fraction(rate) / 100, Fraction(0)), Fraction(1))
    return _score(weight, share)


def execution_met(rate: Decimal | Fraction) -> bool:
    """The 预算执行率 indicator is met only when the exact rate reaches 100."""
    return Fraction(rate) >= 100


def _score(weight: Decimal, share: Fraction) -> Decimal:
    """weight × share, rounded once."""
    return round2(Fraction(Decimal(weight)) * share)


def grade_for(total: Decimal, grades: Sequence[GradeBand]) -> str:
    """The first band (highest min_score first) whose min_score the total reaches."""
    for band in sorted(grades, key=lambda b: b.min_score, reverse=True):
        if total >= band.min_score:
            return band.grade
    return sorted(grades, key=lambda b: b.min_score)[0].grade


def check_weights(weights: Iterable[Decimal], execution_weight: Decimal) -> None:
    """Goals' 分值 plus the 预算执行率 分值 must be exactly 100."""
    goals_sum = sum((Decimal(w) for w in weights), _ZERO)
    total = goals_sum + Decimal(execution_weight)
    if total != _HUNDRED:
        raise ScoringError(
            f"绩效目标表分值合计为{plain_number(goals_sum)}分，加上预算执行率分值{plain_number(Decimal(execution_weight))}分，"
            f"共{plain_number(total)}分，应为100分，请核对绩效目标表的分值。"
        )


def score_indicator(
    target: Target, actual: Actual, weight: Decimal, levels: Mapping[str, Decimal], *, texts: Mapping[str, str]
) -> tuple[Decimal, bool, str]:
    """(score, met, deviation) of one indicator. deviation is '' when met, else
    the entry of ``texts`` (rules/narrative.yaml ``deviation``) the facts pick."""
    weight = Decimal(weight)
    fmt = {"actual": with_unit(actual.text, target), "target": target.text, "levels": "、".join(levels)}

    if actual.missing:
        return _ZERO, False, texts["missing"]

    full = round2(weight)
    if actual.text in levels:
        share = Fraction(Decimal(levels[actual.text]))
        if share >= 1:
            return _score(weight, share), True, ""
        return _score(weight, share), False, texts["qualitative_partial"].format(**fmt)

    if target.qualitative or target.value is None:
        if actual.text == target.text:  # the outputs restate the target: achieved
            return full, True, ""
        return _ZERO, False, texts["qualitative_unknown"].format(**fmt)

    if actual.value is None:
        return _ZERO, False, texts["not_numeric"].format(**fmt)

    # Exact comparisons decide ``met``; only the score is rounded.
    a, t = Fraction(actual.value), Fraction(target.value)
    if target.lower_is_better:
        if t == 0:
            if a <= 0:
                return full, True, ""
            return _ZERO, False, texts["above_zero"].format(**fmt)
        if a <= t:
            return full, True, ""
        # a > t > 0: the share t / a is below 1 even when the score rounds to the full weight.
        return _score(weight, t / a), False, texts["above_limit"].format(**fmt)

    if t == 0:  # ≥0 is met by any non-negative result
        ok = a >= 0
        return (full, True, "") if ok else (_ZERO, False, texts["below_target"].format(**fmt))
    if target.comparator == "=" and a == t:
        return full, True, ""
    share = min(max(a / t, Fraction(0)), Fraction(1))
    if share == 1:  # a ≥ t: full weight (also "=" above target, per min(actual / target, 1))
        return full, True, ""
    key = "not_equal" if target.comparator == "=" else "below_target"
    return _score(weight, share), False, texts[key].format(**fmt)


def _rows(goals: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if hasattr(goals, "to_dict"):
        return goals.to_dict("records")  # type: ignore[union-attr]
    return list(goals)


def score_fund(
    goals: pd.DataFrame | Iterable[Mapping[str, Any]],
    actuals: Mapping[str, Actual],
    execution_rate: Decimal | Fraction,
    scoring: ScoringConfig,
    *,
    texts: Mapping[str, str],
) -> ScoreSheet:
    """Score every goals row (level1, level2, name, target, weight) and the execution rate.

    ``texts`` are the deviation texts (rules/narrative.yaml ``deviation``).

    ``execution_rate`` is the exact rate (Fraction or full-precision Decimal);
    the sheet carries it rounded to 2 decimals for presentation.
    """
    rows = _rows(goals)
    weights = [Decimal(str(r["weight"])) for r in rows]
    check_weights(weights, scoring.execution_weight)
    out: list[IndicatorScore] = []
    for row, weight in zip(rows, weights):
        name = str(row["name"])
        try:
            target = parse_target(str(row["target"]))
        except TargetError as exc:
            raise ScoringError(f"三级指标「{name}」的{exc}") from exc
        actual = actuals.get(name, Actual.none())
        score, met, deviation = score_indicator(target, actual, weight, scoring.qualitative_levels, texts=texts)
        out.append(
            IndicatorScore(
                level1=str(row.get("level1", "")),
                level2=str(row.get("level2", "")),
                name=name,
                target=str(row["target"]),
                actual=None if actual.missing else actual.text,
                weight=weight,
                score=score,
                met=met,
                deviation=deviation,
                missing=actual.missing,
            )
        )
    exec_score = execution_score(execution_rate, scoring.execution_weight)
    total = exec_score + sum((i.score for i in out), _ZERO)
    return ScoreSheet(
        indicators=out,
        execution_rate=round2(Fraction(execution_rate)),
        execution_weight=Decimal(scoring.execution_weight),
        execution_score=exec_score,
        total=total,
        grade=grade_for(total, scoring.grades),
        execution_met=execution_met(execution_rate),
    )
