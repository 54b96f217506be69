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
from .runtime import (
    BASIC_FORMAT,
    RESULT_FORMAT,
    UNIQUENESS,
    GXRuntime,
    Spec,
    condition_filter,
    gx_runtime,
    spec_key,
    specs_for,
)


def validate_table(table: IngestedTable, ctx: ValidationContext) -> ValidationReport:
    """Run the table kind's suite over the file; never raises on bad data.

    A good file costs one GX run (BASIC result format). A bad file gets a
    second run of the failed expectations over just the rows that carry their
    first failing values, with SUMMARY and
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
    specs, extra = file_specs(active_t, ctx)
    params = {**parameters_for(ctx, active_t), **extra}
    rt = gx_runtime()
    result = rt.run(table.kind, specs, frame, params, BASIC_FORMAT)
    failed = [res for res in result.results if not res.success]
    if not failed:
        return report
    rows_by_key = _failing_rows(rt, table.kind, specs, frame, failed, params)
    by_id = {r.rule_id: r for r in active_t}
    order = {r.rule_id: i for i, r in enumerate(active_t)}
    failed.sort(key=lambda res: (order[spec_key(res)[0]], by_id[spec_key(res)[0]].columns.index(spec_key(res)[1])))
    for res in failed:
        rule_id, column = spec_key(res)
        collect(report, by_id[rule_id], column, res, rows_by_key.get((rule_id, column)), table, ctx, file)
    # Row failures in file order within a rule, rules in table order.
    report.failures.sort(key=lambda f: (order[f.rule_id], f.row or 0))
    report.warnings.sort(key=lambda f: (order[f.rule_id], f.row or 0))
    return report


def file_specs(rules: tuple[Rule, ...], ctx: ValidationContext) -> tuple[tuple[Spec, ...], dict[str, Any]]:
    """The expectations of ``rules`` for one file, and the suite parameters they add.

    A chunk of a file read in chunks (``ctx.file_facts.duplicates`` set) is
    not the whole file: a key the WHOLE file holds twice fails in every row
    holding it, so a uniqueness rule there reads "not in the file's
    duplicates" (GX's not-in-set, the duplicates found by ChunkedFile).
    """
    specs = specs_for(rules)
    facts = ctx.file_facts
    if facts is None or facts.duplicates is None:
        return specs, {}
    out: list[Spec] = []
    params: dict[str, Any] = {}
    for spec in specs:
        if spec.expectation == "ExpectColumnValuesToBeUnique":
            name = f"file_duplicates__{spec.column}"
            params[name] = sorted(facts.duplicates.get(spec.column, ()))
            kwargs = {"column": spec.kwargs["column"], "value_set": {"$PARAMETER": name}}
            spec = spec.replace("ExpectColumnValuesToNotBeInSet", kwargs)
        out.append(spec)
    return tuple(out), params


def _is_null(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _failing_rows(
    rt: GXRuntime,
    kind: str,
    specs: tuple[Spec, ...],
    frame: pd.DataFrame,
    failed: list[Any],
    params: dict[str, Any],
) -> dict[tuple[str, str], list[int]]:
    """Second GX pass: the failed row-level expectations only, over the rows
    holding their failing values -> file row numbers per (rule_id, column)."""
    by_key = {(s.rule_id, s.column): s for s in specs}
    mask = np.zeros(len(frame), dtype=bool)
    wanted: set[Spec] = set()
    for res in failed:
        r = res.result or {}
        if "unexpected_count" not in r or (res.exception_info or {}).get("raised_exception"):
            continue
        spec = by_key[spec_key(res)]
        wanted.add(spec)
        mask[_candidate_rows(frame, spec, r.get("partial_unexpected_list") or [])] = True
    if not mask.any():
        return {}
    detail = rt.run(kind, tuple(s for s in specs if s in wanted), frame[mask], params, RESULT_FORMAT)
    out: dict[tuple[str, str], list[int]] = {}
    for res in detail.results:
        items = (res.result or {}).get("partial_unexpected_index_list")
        if not res.success and items:
            out[spec_key(res)] = [int(i["row"]) for i in items]
    return out


def _candidate_rows(frame: pd.DataFrame, spec: Spec, values: list[Any]) -> np.ndarray:
    """Positions of the first MAX_ROWS_PER_RULE rows that fail ``spec``, found
    from the first failing values GX listed (``values``), so that a run over
    just them gives GX's row numbers.

    A map expectation judges each value on its own: every row in the
    expectation's domain (its ``row_condition``) holding a listed value fails,
    and the first of them are the first failing rows. A uniqueness
    expectation judges a value against the other rows, so each listed key
    also brings its second row, wherever it is: the run over the subset sees
    the same duplicates first.
    """
    kwargs = spec.kwargs
    columns = kwargs.get("column_list") or [kwargs["column"]]
    if len(columns) == 1:
        s = frame[columns[0]]
        hit = np.array(s.isin([v for v in values if not _is_null(v)]), dtype=bool)
        if any(_is_null(v) for v in values):
            hit |= np.array(s.isna(), dtype=bool)
    else:
        listed = [tuple(v[c] for c in columns) for v in values if isinstance(v, dict)]
        hit = np.array(pd.MultiIndex.from_frame(frame[columns]).isin(listed), dtype=bool)
    if kwargs.get("row_condition"):
        hit &= np.array(frame.eval(condition_filter(kwargs["row_condition"])), dtype=bool)
    rows = np.flatnonzero(hit)
    first = rows[:MAX_ROWS_PER_RULE]
    if spec.expectation not in UNIQUENESS or len(rows) == len(first):
        return first
    keys = pd.Series(list(zip(*(frame[c].to_numpy()[rows] for c in columns), strict=True)), dtype=object)
    first_two = (keys.groupby(keys, sort=False).cumcount() < 2).to_numpy()
    partners = first_two & keys.isin(set(keys.iloc[: len(first)])).to_numpy()
    return np.union1d(first, rows[partners])


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
