"""The rules table: ``rules/validation_rules.csv`` read into :class:`Rule` rows.

One row per rule (in the spirit of the DATA Act broker's sqlRules.csv):
rule_id, table, severity (fatal/warning), category, column(s) (the first is
where a failure is reported), ``engine``, an optional ``prepare`` step, the GX
expectation class, its kwargs (JSON), the Chinese message template, the
Chinese description Data Docs show (``description_zh``) and ``why``.

- ``engine=native``: GX's expectation judges the column as ingest typed it
  (value sets, bounds, uniqueness, lengths, not-null, ``row_condition``).
  Values that come from the fund use GX's own ``{"$PARAMETER": name}``
  (:meth:`ValidationContext.gx_parameters`); ``"$STORE_LENGTH"`` is the
  store column's declared length, filled in when the suite is built.
- ``engine=prepared``: a ``prepare`` step (prepare.py) computes the column GX
  checks, because GX has no expectation for it; ``why`` says why.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

SEVERITIES = ("fatal", "warning")
ENGINES = ("native", "prepared")
# A kwargs value filled in per column when the suite is built (runtime.py).
STORE_LENGTH = "$STORE_LENGTH"


@dataclass(frozen=True)
class Rule:
    rule_id: str
    table: str
    severity: str
    category: str
    columns: tuple[str, ...]
    prepare: str
    expectation: str
    kwargs: dict[str, Any]
    message_zh: str
    engine: str = "native"
    why: str = ""
    # What the rule asks for, in Chinese, for the Data Docs ({header}: the column's header).
    description_zh: str = ""

    @property
    def parameters(self) -> tuple[str, ...]:
        """GX $PARAMETER names used by the kwargs."""
        return tuple(_params(self.kwargs))

    def needs(self) -> tuple[str, ...]:
        """ValidationContext fields this rule needs (skipped when missing)."""
        out: list[str] = []
        name, _, arg = self.prepare.partition(":")
        if name in _CONTEXT_ARG_PREPARES:
            out.append(arg)
        if "{fund_year}" in self.message_zh:
            out.append("fund_year")
        for p in self.parameters:
            out.append(PARAM_NEEDS.get(p, p))
        return tuple(dict.fromkeys(out))

    def condition_columns(self) -> tuple[str, ...]:
        """Columns a native expectation reads besides its own: the key of a
        compound-unique rule, the columns of its ``row_condition`` (GX's
        Condition objects as JSON: ``{"type": "comparison", "column":
        {"name": ...}, "operator": ..., "parameter": ...}``, and/or lists)."""
        out = [c for c in self.kwargs.get("column_list", ()) if c not in self.columns]
        out += [c for c in _condition_columns(self.kwargs.get("row_condition")) if c not in self.columns]
        return tuple(dict.fromkeys(out))


def _condition_columns(cond: Any) -> Iterable[str]:
    if isinstance(cond, dict):
        column = cond.get("column")
        if isinstance(column, dict) and "name" in column:
            yield column["name"]
        for sub in cond.get("conditions", ()):
            yield from _condition_columns(sub)


def _params(obj: Any) -> Iterable[str]:
    if isinstance(obj, dict):
        if set(obj) == {"$PARAMETER"}:
            yield obj["$PARAMETER"]
        else:
            for v in obj.values():
                yield from _params(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _params(v)


# GX parameter -> the ValidationContext field it is computed from.
PARAM_NEEDS = {
    "units": "units",
    "doc_nos": "doc_nos",
    "goal_names": "goal_names",
    "fund_months": "fund_year",
    "year_first_day": "fund_year",
    "prior_year_first_day": "fund_year",
    "year_last_day": "fund_year",
    "budget_fen": "adjusted_budget_fen",
    "budget_fen_negated": "adjusted_budget_fen",
    "goal_weight_milli": "execution_weight",
    "inspection_categories": "inspection_categories",
    "paid_units": "paid_by_unit",
    "paid_doc_nos": "paid_by_doc",
    "paid_pairs": "paid_by_pair",
}
# Prepare steps whose ``:arg`` names a ValidationContext field (the others'
# arg is about the table itself, e.g. the columns of a composite key).
_CONTEXT_ARG_PREPARES = frozenset({"covers_paid", "pair_in", "cumulative_within"})


def prepare_names() -> frozenset[str]:
    from .prepare import PREPARES  # the steps import Rule: imported when the table is read

    return frozenset(PREPARES)


@cache
def load_rules() -> tuple[Rule, ...]:
    text = resources.files("budget_monitor").joinpath("rules/validation_rules.csv").read_text(encoding="utf-8")
    rules = []
    for rec in csv.DictReader(text.splitlines()):
        rule = Rule(
            rule_id=rec["rule_id"],
            table=rec["table"],
            severity=rec["severity"],
            category=rec["category"],
            columns=tuple(c for c in rec["column"].split("|") if c),
            prepare=rec["prepare"],
            expectation=rec["expectation"],
            kwargs=json.loads(rec["kwargs"] or "{}"),
            message_zh=rec["message_zh"],
            engine=rec["engine"] or "native",
            why=rec["why"],
            description_zh=rec["description_zh"],
        )
        if rule.severity not in SEVERITIES:
            raise ValueError(f"validation_rules.csv: {rule.rule_id}: bad severity {rule.severity!r}")
        if rule.engine not in ENGINES or (rule.engine == "prepared") != bool(rule.prepare):
            raise ValueError(
                f"validation_rules.csv: {rule.rule_id}: engine {rule.engine!r} with prepare {rule.prepare!r}"
            )
        if not rule.description_zh:
            raise ValueError(f"validation_rules.csv: {rule.rule_id}: no description_zh")
        if rule.engine == "prepared" and not rule.why:
            raise ValueError(f"validation_rules.csv: {rule.rule_id}: a prepared rule says why GX cannot check it")
        if rule.prepare and rule.prepare.split(":")[0] not in prepare_names():
            raise ValueError(f"validation_rules.csv: {rule.rule_id}: unknown prepare {rule.prepare!r}")
        rules.append(rule)
    ids = [r.rule_id for r in rules]
    if len(ids) != len(set(ids)):
        raise ValueError("validation_rules.csv: duplicate rule_id")
    return tuple(rules)


def rules_for(kind: str) -> tuple[Rule, ...]:
    return tuple(r for r in load_rules() if r.table == kind and r.expectation)


def rule(rule_id: str) -> Rule:
    for r in load_rules():
        if r.rule_id == rule_id:
            return r
    raise KeyError(rule_id)
