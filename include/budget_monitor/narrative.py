"""存在问题 and 改进意见, derived from measured facts.

The facts are the year-end model's rows (yearend.py: ``QuarterRow``,
``UnitRow``, ``IndicatorRow``, read by attribute) given to :func:`narrate`;
:func:`build_narrative` takes self_evaluation.json-shaped dicts instead and
reads them into those rows first. Each fact found adds one problem of a type;
the improvement texts are picked from ``rules/narrative.yaml`` by those types,
so the wording is data. With no problem at all the report says so plainly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

from budget_monitor.money_fmt import plain_number
from budget_monitor.periods import QUARTER_ZH

_RULES = Path(__file__).with_name("rules") / "narrative.yaml"


@lru_cache(maxsize=1)
def load_texts() -> dict[str, Any]:
    """The narrative rule table, read once per process."""
    import yaml

    with _RULES.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    data["quarter_names"] = dict(QUARTER_ZH)  # defined once, in periods.py
    return data


@dataclass(frozen=True)
class Narrative:
    problems: list[str]
    improvements: list[str]
    kinds: list[str] = field(default_factory=list)  # problem types found, in order


def quarter_phrase(quarters: Iterable[int]) -> str:
    """[2, 3] -> 第二季度和第三季度; [1, 2, 3] -> 第一季度至第三季度; [1, 3] -> 第一季度和第三季度."""
    texts = load_texts()
    names = texts["quarter_names"]
    qs = sorted(set(int(q) for q in quarters))
    if len(qs) >= 3 and qs == list(range(qs[0], qs[-1] + 1)):
        return texts["quarter_range"].format(first=names[qs[0]], last=names[qs[-1]])
    return join_cn([names[q] for q in qs])


def join_cn(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return "、".join(items[:-1]) + "和" + items[-1]


def _exact(value: Decimal | Fraction | float | int) -> Fraction:
    # A float only comes from a JSON-shaped caller: its decimal text is what it means.
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _unit_rate(u: Any) -> Fraction:
    if u.rate is not None:
        return u.rate
    return Fraction(u.executed_fen * 100, u.budget_fen) if u.budget_fen else Fraction(0)


def _cause_sentence(cause: str, quarter: int) -> str:
    cause = cause.strip()
    if "导致" in cause or cause.endswith("。"):  # already a full sentence
        return cause if cause.endswith("。") else cause + "。"
    names = load_texts()["quarter_names"]
    return load_texts()["problems"]["lagging_cause"].format(cause=cause.rstrip("，,"), quarter=names[quarter])


def _answered_sentence(cause: str, quarter: int) -> str:
    texts = load_texts()
    return texts["problems"]["lagging_cause_answered"].format(
        cause=cause.strip().rstrip("。；;"), quarter=texts["quarter_names"][quarter]
    )


def _unmet_item(ind: Any, p: Mapping[str, str]) -> str:
    from budget_monitor.targets import with_unit, readable_target

    target = readable_target(str(ind.target))
    actual = str(ind.actual)
    levels_like = target is None or target.qualitative or not any(ch.isdigit() for ch in actual)
    if levels_like:
        return p["unmet_indicator_item_qualitative"].format(name=ind.name, actual=actual, target=ind.target)
    return p["unmet_indicator_item"].format(name=ind.name, actual=with_unit(actual, target), target=ind.target)


def build_narrative(
    quarters: Sequence[Mapping[str, Any]],
    indicators: Sequence[Mapping[str, Any]],
    units: Sequence[Mapping[str, Any]] = (),
    *,
    execution_rate: Decimal | float | None = None,
    execution_met: bool | None = None,
    unspent_fen: int | None = None,
    causes: Mapping[int, str] | None = None,
) -> Narrative:
    """:func:`narrate` over self_evaluation.json-shaped dicts (read by yearend.from_json's row readers)."""
    from budget_monitor.yearend import indicator_from_json, quarter_from_json, unit_from_json

    return narrate(
        [quarter_from_json(q) for q in quarters],
        [indicator_from_json(i) for i in indicators],
        [unit_from_json(u) for u in units],
        execution_rate=execution_rate,
        execution_met=execution_met,
        unspent_fen=unspent_fen,
        causes=causes,
    )


def narrate(
    quarters: Sequence[Any],
    indicators: Sequence[Any],
    units: Sequence[Any] = (),
    *,
    execution_rate: Fraction | Decimal | float | None = None,
    execution_met: bool | None = None,
    unspent_fen: int | None = None,
    causes: Mapping[int, str] | None = None,
    measures: Mapping[int, Sequence[str]] | None = None,
    answered: Iterable[int] = (),
) -> Narrative:
    """Problems and improvements from the facts (yearend.QuarterRow, IndicatorRow, UnitRow).

    ``causes`` maps a lagging quarter to its cause ("部分项目启动较晚"), which
    only the people involved know; it is added after the lag sentence. For a
    quarter in ``answered`` the cause is the units' recorded answers (核实反馈,
    feedback.py) and is quoted as such, with their ``measures`` added to the
    improvements; otherwise it is fund.yaml's ``lag_causes``.
    ``execution_rate`` is the fund's rate (exact, or as presented);
    ``execution_met`` the exact verdict (rate ≥ 100 before rounding). Without
    it the rate itself decides.
    """
    texts = load_texts()
    p = texts["problems"]
    answered = set(answered)
    problems: list[str] = []
    kinds: list[str] = []

    lagging = [q.quarter for q in quarters if q.lagging]
    if lagging:
        sentence = p["lagging_execution"].format(quarters=quarter_phrase(lagging))
        for q in sorted(set(lagging)):
            if causes and causes.get(q):
                sentence += _answered_sentence(causes[q], q) if q in answered else _cause_sentence(causes[q], q)
        problems.append(sentence)
        kinds.append("lagging_execution")

    groups: dict[tuple[int, ...], list[str]] = {}
    for u in units:
        if u.lagging_quarters:
            groups.setdefault(tuple(sorted(set(u.lagging_quarters))), []).append(u.unit)
    if groups:
        if len(groups) == 1 and len(units) > 1 and len(next(iter(groups.values()))) == len(units):
            problems.append(p["lagging_units_all"].format(quarters=quarter_phrase(next(iter(groups)))))
        else:
            items = [
                p["lagging_unit_group"].format(units="、".join(names), quarters=quarter_phrase(qs))
                for qs, names in groups.items()
            ]
            problems.append(p["lagging_units"].format(groups="，".join(items)))
        kinds.append("lagging_units")

    unspent_sentences: list[str] = []
    if execution_met is None:
        execution_met = execution_rate is None or _exact(execution_rate) >= 100
    if execution_rate is not None and not execution_met:
        fen = max(unspent_fen or 0, 0)
        wan = plain_number(Decimal(fen) / Decimal(1_000_000))
        # Less than 0.005 万元 left (the rate may even read 100%): say it in 元, not "尚有0万元".
        key, unspent = (
            ("year_end_unspent", wan)
            if wan != "0" or not fen
            else ("year_end_unspent_yuan", plain_number(Decimal(fen) / 100))
        )
        unspent_sentences.append(p[key].format(rate=plain_number(execution_rate), unspent=unspent))
    short_units = [u for u in units if u.short]
    if short_units:
        items = [
            p["year_end_unspent_unit_item"].format(unit=u.unit, rate=plain_number(_unit_rate(u))) for u in short_units
        ]
        unspent_sentences.append(p["year_end_unspent_units"].format(units="、".join(items)))
    if unspent_sentences:
        problems.append("".join(unspent_sentences))
        kinds.append("year_end_unspent")

    unmet = [i for i in indicators if not i.met and i.actual is not None]
    if unmet:
        items = [_unmet_item(i, p) for i in unmet]
        problems.append(p["unmet_indicator"].format(items="；".join(items)))
        kinds.append("unmet_indicator")

    missing = [i for i in indicators if i.actual is None]
    if missing:
        problems.append(p["missing_actual"].format(names="”“".join(i.name for i in missing)))
        kinds.append("missing_actual")

    if not problems:
        return Narrative([p["none"]], [texts["improvements"]["none"]], [])
    improvements = [texts["improvements"][k] for k in kinds]
    if "lagging_execution" in kinds and measures:
        at = kinds.index("lagging_execution") + 1
        said = [
            texts["improvements"]["answered_measures"].format(
                quarter=texts["quarter_names"][q], measures="；".join(m.rstrip("。；;") for m in measures[q])
            )
            for q in sorted(measures)
            if q in answered and measures[q]
        ]
        improvements[at:at] = said
    return Narrative(problems, improvements, kinds)
