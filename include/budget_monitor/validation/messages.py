"""The Chinese failure messages: a failed GX result -> :class:`Failure` rows
naming file, row, column (as headed in the file) and rule, from the rule's
``message_zh`` template."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np

from ..ingest import IngestedTable
from ..money_fmt import fen_to_yuan_str
from .context import ValidationContext
from .prepare import fen_values, group_budget, store_length
from .report import MAX_ROWS_PER_RULE, Failure, ValidationReport
from .rules import PARAM_NEEDS, Rule


def _where(file: str, row: int | None, header: str | None) -> str:
    at = file
    if row is not None:
        at += f" 第{row}行"
    if header:
        at += f" 列“{header}”"
    return at


def _fmt(template: str, values: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), template)


def collect(
    report: ValidationReport,
    r: Rule,
    column: str,
    res: Any,
    rows: list[int] | None,
    table: IngestedTable,
    ctx: ValidationContext,
    file: str,
) -> None:
    header = table.header_of(column)
    target = report.failures if r.severity == "fatal" else report.warnings
    values: dict[str, Any] = {
        "fund_year": ctx.fund_year,
        "execution_weight": _points(int(ctx.execution_weight * 1000)) if ctx.execution_weight is not None else "",
        "stored_yuan": fen_to_yuan_str(ctx.stored_net_fen),
        "budget_yuan": fen_to_yuan_str(ctx.adjusted_budget_fen) if ctx.adjusted_budget_fen is not None else "",
        "header": header,
    }
    info = res.exception_info or {}
    if info.get("raised_exception"):
        msg = f"{_where(file, None, header)}: 校验规则执行出错：{info.get('exception_message')}（规则 {r.rule_id}）"
        target.append(Failure(r.rule_id, r.severity, r.category, column, header, None, None, msg))
        report.counts[r.rule_id] = report.counts.get(r.rule_id, 0) + 1
        return
    result = res.result or {}
    if "partial_missing_list" in result:
        # A set the column must contain (e.g. every unit with stored payments):
        # one failure per missing value, with its amount where the set comes
        # from a {value: fen} context field.
        count = int(result.get("missing_count") or 0)
        report.counts[r.rule_id] = report.counts.get(r.rule_id, 0) + count
        amounts: Mapping[str, int] = {}
        for p in r.parameters:
            src = getattr(ctx, PARAM_NEEDS.get(p, p), None)
            if isinstance(src, Mapping):
                amounts = src
        for missing in (result.get("partial_missing_list") or [])[:MAX_ROWS_PER_RULE]:
            fen = amounts.get(missing)
            extra = {"value": missing, "paid_yuan": fen_to_yuan_str(fen) if fen is not None else ""}
            detail = _fmt(r.message_zh, {**values, **extra})
            msg = f"{_where(file, None, header)}: {detail}（规则 {r.rule_id}）"
            target.append(Failure(r.rule_id, r.severity, r.category, column, header, None, str(missing), msg))
        return
    if "unexpected_count" not in result:
        # Table-level (aggregate) expectation: no row, the observed value.
        observed = result.get("observed_value")
        values["observed"] = observed
        if isinstance(observed, (int, np.integer)):
            values["observed_yuan"] = fen_to_yuan_str(int(observed))
            values["observed_points"] = _points(int(observed))
        detail = _fmt(r.message_zh, values)
        msg = f"{_where(file, None, header)}: {detail}（规则 {r.rule_id}）"
        target.append(Failure(r.rule_id, r.severity, r.category, column, header, None, str(observed), msg))
        report.counts[r.rule_id] = report.counts.get(r.rule_id, 0) + 1
        return
    count = int(result.get("unexpected_count") or 0)
    report.counts[r.rule_id] = report.counts.get(r.rule_id, 0) + count
    if not rows:
        # Never let a failed expectation pass silently for want of row numbers.
        values["value"] = "、".join(str(v) for v in (result.get("partial_unexpected_list") or [])[:3])
        detail = _fmt(r.message_zh, values)
        msg = f"{_where(file, None, header)}: {detail}（共 {count} 行，规则 {r.rule_id}）"
        target.append(Failure(r.rule_id, r.severity, r.category, column, header, None, values["value"], msg))
        return
    row_values = _ROW_VALUES.get(r.prepare.partition(":")[0] or r.expectation)
    extra_cols = re.findall(r"\{raw_(\w+)\}", r.message_zh)
    for row in rows[:MAX_ROWS_PER_RULE]:
        raw = table.raw_value(column, row)
        more = {f"raw_{c}": table.raw_value(c, row) for c in extra_cols}
        if row_values is not None:
            more.update(row_values(table, r, column, row, ctx))
        detail = _fmt(r.message_zh, {**values, **more, "value": raw})
        msg = f"{_where(file, row, header)}: {detail}（规则 {r.rule_id}）"
        target.append(Failure(r.rule_id, r.severity, r.category, column, header, row, raw, msg))


def _paid_values(table: IngestedTable, r: Rule, column: str, row: int, ctx: ValidationContext) -> dict[str, str]:
    """{group_budget_yuan} and {paid_yuan} of a covers_paid failure's row."""
    key = table.df.at[row, column]
    paid: Mapping[str, int] = getattr(ctx, r.prepare.partition(":")[2]) or {}
    totals = group_budget(table, column)
    out = {"group_budget_yuan": "", "paid_yuan": ""}
    if key in totals.index:
        out["group_budget_yuan"] = fen_to_yuan_str(int(totals[key]))
    if key in paid:
        out["paid_yuan"] = fen_to_yuan_str(int(paid[key]))
    return out


def _running_values(table: IngestedTable, r: Rule, column: str, row: int, ctx: ValidationContext) -> dict[str, str]:
    """{running_yuan} (this file's net up to ``row``) and {file_yuan} of a PAY-011 failure."""
    running = np.cumsum(fen_values(table, column))  # exact: int64 only where no sum can wrap
    at = int(np.flatnonzero(table.df["row"].to_numpy() == row)[0])
    facts = ctx.file_facts
    before = facts.running_before.get(column, 0) if facts is not None else 0
    total = facts.file_net[column] if facts is not None else int(running[-1])
    return {"running_yuan": fen_to_yuan_str(before + int(running[at])), "file_yuan": fen_to_yuan_str(total)}


def _length_values(table: IngestedTable, r: Rule, column: str, row: int, ctx: ValidationContext) -> dict[str, str]:
    value = table.df.at[row, column]
    return {
        "length": str(len(value)) if isinstance(value, str) else "",
        "max_length": str(store_length(table.kind, column) or ""),
    }


# Per-row message values that a rule needs beyond the cell itself, by its
# prepare step (or, for a native rule, its expectation).
_ROW_VALUES: dict[str, Callable[[IngestedTable, Rule, str, int, ValidationContext], dict[str, str]]] = {
    "covers_paid": _paid_values,
    "cumulative_within": _running_values,
    "ExpectColumnValueLengthsToBeBetween": _length_values,
}


def _points(milli: int) -> str:
    return format(Decimal(milli) / 1000, "f").rstrip("0").rstrip(".") if milli % 1000 else str(milli // 1000)
