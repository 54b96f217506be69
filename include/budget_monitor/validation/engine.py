"""Validating one file: :func:`validate_table`, the rule set a context can
run, and the report built from GX's results.

A good file costs one GX run (``result_format=BASIC``: counts and observed
values only). A bad file gets a second run of the same suite over only the
rows holding the first failing values, with ``SUMMARY`` and
``unexpected_index_column_names=["row"]`` for the row numbers (see
:func:`validate_table` for why).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..ingest import IngestedTable
from .context import ValidationContext
from .messages import collect
from .prepare import check_frame
from .report import MAX_ROWS_PER_RULE, ValidationReport, display_name
from .rules import Rule, rules_for
from .runtime import BASIC_FORMAT, RESULT_FORMAT, GXRuntime, gx_runtime


def validate_table(table: IngestedTable, ctx: ValidationContext) -> ValidationReport:
    """Run the table kind's suite over the file; never raises on bad data.

    A good file costs one GX run (BASIC result format). A bad file gets a
    second run of the same suite over just the rows that carry the first
    failing values of each failed expectation, with SUMMARY and
    ``unexpected_index_column_names=["row"]``: GX 1.x builds its row index
    list with one ``DataFrame.at`` lookup per failing row before truncating
    it, which costs ~20 s on a 1M-row file where every row fails.
    """
    active_t, skipped = active_rules(table.kind, ctx)
    report = clean_report(table, ctx, skipped)
    file = report.file
    if not active_t:
        return report
    frame = check_frame(table, active_t, ctx)
    rt = gx_runtime()
    vd = rt.definition(table.kind, active_t)
    params = parameters_for(ctx, active_t)
    result = vd.run(batch_parameters={"dataframe": frame}, expectation_parameters=params, result_format=BASIC_FORMAT)
    failed = [res for res in result.results if not res.success]
    if not failed:
        return report
    rows_by_key = _failing_rows(rt, table.kind, active_t, frame, failed, params)
    by_id = {r.rule_id: r for r in active_t}
    order = {r.rule_id: i for i, r in enumerate(active_t)}

    def key(res: Any) -> tuple[str, str]:
        return res.expectation_config.meta["rule_id"], res.expectation_config.meta["column"]

    failed.sort(key=lambda res: (order[key(res)[0]], by_id[key(res)[0]].columns.index(key(res)[1])))
    for res in failed:
        rule_id, column = key(res)
        collect(report, by_id[rule_id], column, res, rows_by_key.get((rule_id, column)), table, ctx, file)
    # Row failures in file order within a rule, rules in table order.
    report.failures.sort(key=lambda f: (order[f.rule_id], f.row or 0))
    report.warnings.sort(key=lambda f: (order[f.rule_id], f.row or 0))
    return report


def _is_null(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _failing_rows(
    rt: GXRuntime,
    kind: str,
    rules: tuple[Rule, ...],
    frame: pd.DataFrame,
    failed: list[Any],
    params: dict[str, Any],
) -> dict[tuple[str, str], list[int]]:
    """Second GX pass: the failed row-level expectations only, over the rows
    holding their failing values -> file row numbers per (rule_id, column)."""
    # Column-map expectations judge each value on its own, so the rows that
    # carry the failing values GX listed are failing rows.
    mask = np.zeros(len(frame), dtype=bool)
    wanted: set[tuple[str, str]] = set()
    for res in failed:
        r = res.result or {}
        if "unexpected_count" not in r or (res.exception_info or {}).get("raised_exception"):
            continue
        wanted.add((res.expectation_config.meta["rule_id"], res.expectation_config.meta["column"]))
        s = frame[res.expectation_config.kwargs["column"]]
        values = r.get("partial_unexpected_list") or []
        hit = s.isin([v for v in values if not _is_null(v)]).to_numpy(dtype=bool)
        if any(_is_null(v) for v in values):
            hit |= s.isna().to_numpy(dtype=bool)
        mask[np.flatnonzero(hit)[:MAX_ROWS_PER_RULE]] = True
    if not mask.any():
        return {}
    vd = rt.definition(kind, rules, frozenset(wanted))
    detail = vd.run(
        batch_parameters={"dataframe": frame[mask]}, expectation_parameters=params, result_format=RESULT_FORMAT
    )
    out: dict[tuple[str, str], list[int]] = {}
    for res in detail.results:
        items = (res.result or {}).get("partial_unexpected_index_list")
        if not res.success and items:
            meta = res.expectation_config.meta
            out[(meta["rule_id"], meta["column"])] = [int(i["row"]) for i in items]
    return out


def active_rules(kind: str, ctx: ValidationContext) -> tuple[tuple[Rule, ...], list[str]]:
    """The kind's rules ``ctx`` can run, and a note per rule it cannot."""
    active, skipped = [], []
    for r in rules_for(kind):
        missing = [n for n in r.needs() if not ctx.has(n)]
        if missing:
            skipped.append(f"{r.rule_id}（缺少上下文：{'、'.join(missing)}）")
        else:
            active.append(r)
    return tuple(active), skipped


def clean_report(table: IngestedTable, ctx: ValidationContext, skipped: list[str]) -> ValidationReport:
    """The report of ``table`` before any failure is collected (a file that passed)."""
    return ValidationReport(
        display_name(table.path, ctx.fund_dir), str(table.path), table.kind, table.sha256, table.n_rows, skipped=skipped
    )


def parameters_for(ctx: ValidationContext, rules: Iterable[Rule]) -> dict[str, Any]:
    """The GX expectation parameters ``rules`` use, with ``ctx``'s values."""
    used = {p for r in rules for p in r.parameters}
    return {k: v for k, v in ctx.gx_parameters().items() if k in used}
