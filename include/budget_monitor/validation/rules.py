"""The rules table: ``rules/validation_rules.csv`` read into :class:`Rule` rows.

One row per rule (in the spirit of the DATA Act broker's sqlRules.csv):
rule_id, table, severity (fatal/warning), category, column(s), an optional
``prepare`` step, the GX expectation class, its kwargs (JSON; GX's own
``{"$PARAMETER": name}`` syntax for values that come from the fund) and the
Chinese message template.
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
        if self.prepare in ("in_year", "in_year_or_prior", "month_in_year") or "{fund_year}" in self.message_zh:
            out.append("fund_year")
        for p in self.parameters:
            out.append(PARAM_NEEDS.get(p, p))
        return tuple(dict.fromkeys(out))


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
    "goal_weight_milli": "execution_weight",
    "inspection_categories": "inspection_categories",
    "paid_units": "paid_by_unit",
    "paid_doc_nos": "paid_by_doc",
    "paid_pairs": "paid_by_pair",
}
# Prepare steps whose ``:arg`` names a ValidationContext field (the others'
# arg is about the table itself, e.g. the columns of a composite key).
_CONTEXT_ARG_PREPARES = frozenset({"isin", "covers_paid", "pair_in", "within", "cumulative_within"})


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
        )
        if rule.severity not in SEVERITIES:
            raise ValueError(f"validation_rules.csv: {rule.rule_id}: bad severity {rule.severity!r}")
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
