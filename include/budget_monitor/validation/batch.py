"""Validating many small files in few Great Expectations runs (:func:`validate_batch`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import pandas as pd

from ..ingest import IngestedTable
from .context import ValidationContext
from .engine import active_rules, clean_report, parameters_for, validate_table
from .prepare import check_frame
from .report import ValidationReport
from .rules import Rule
from .runtime import BASIC_FORMAT, GXRuntime, gx_runtime


# of a batch; a larger file is validated on its own (its GX run is worth it, and
# the batch's row-finding pass must stay small).
BATCH_MAX_ROWS = 50_000
# Which file of the concatenated check frame a row came from.
_FILE_COLUMN = "__file__"
# Finds the files behind a batch's failed row-level expectations.
_FILES_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [_FILE_COLUMN],
    "return_unexpected_index_query": False,
}


def row_level(r: Rule) -> bool:
    """Does the rule judge each row on its own (a column-map expectation, no
    ``mostly``)? Such a rule gives every file of a concatenation the same
    verdict as a run over the file alone."""
    return _row_level_expectation(r.expectation) and "mostly" not in r.kwargs


@cache
def _row_level_expectation(name: str) -> bool:
    from great_expectations.expectations.expectation import ColumnMapExpectation

    return issubclass(getattr(gx_runtime().gx.expectations, name), ColumnMapExpectation)


def validate_batch(items: Sequence[tuple[IngestedTable, ValidationContext]]) -> list[ValidationReport]:
    """Validate many files; the same reports as :func:`validate_table` per file.

    Great Expectations costs ~10 ms per run plus ~12 ms per expectation,
    whatever the row count (bench/RESULTS.md R3): a monthly close of small
    files (three per fund, tens of rows each) spends most of its time there.
    So the small files of one kind that share their rule set and the
    parameters of their row-level rules are validated together:

    1. each file's check frame is prepared with its own context (uniqueness,
       the fund's units ... stay per file) and tagged with its position;
    2. one GX run of the row-level expectations over the concatenated frames
       (BASIC); only if something failed, a second run of the failed ones
       (COMPLETE, indexed by file) names the files holding failing rows;
    3. the table-level expectations (sums, sets a column must contain) run per
       file, with that file's parameters;
    4. a file named in 2 or failing 3 is validated again on its own by
       :func:`validate_table`, which builds the report (rows, messages) exactly
       as for a single file. Every other file passed the full suite.
    """
    reports: list[ValidationReport | None] = [None] * len(items)
    rules = [active_rules(table.kind, ctx) for table, ctx in items]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, ((table, ctx), (active, _)) in enumerate(zip(items, rules, strict=True)):
        if not active or table.n_rows > BATCH_MAX_ROWS:
            continue
        row_params = parameters_for(ctx, (r for r in active if row_level(r)))
        key = (
            table.kind,
            tuple(r.rule_id for r in active),
            json.dumps(row_params, sort_keys=True, ensure_ascii=False, default=str),
        )
        groups.setdefault(key, []).append(i)
    for (kind, _, _), members in groups.items():
        if len(members) < 2:
            continue
        active = rules[members[0]][0]
        for i, passed in zip(members, _batch_verdicts(kind, active, [items[i] for i in members]), strict=True):
            if passed:
                reports[i] = clean_report(*items[i], rules[i][1])
    return [r if r is not None else validate_table(*items[i]) for i, r in enumerate(reports)]


def _batch_verdicts(
    kind: str,
    active: tuple[Rule, ...],
    items: list[tuple[IngestedTable, ValidationContext]],
) -> list[bool]:
    """Per file: did it pass every expectation of ``active`` (steps 1-3 of :func:`validate_batch`)?"""
    rt = gx_runtime()
    frames = [check_frame(t, active, ctx) for t, ctx in items]
    passed = [True] * len(items)
    row_rules = tuple(r for r in active if row_level(r))
    if row_rules:
        tagged = [f.assign(**{_FILE_COLUMN: n}) for n, f in enumerate(frames)]
        batch = pd.concat(tagged, ignore_index=True)
        params = parameters_for(items[0][1], row_rules)  # the same for the whole group
        run = rt.definition(kind, active, _pairs(row_rules)).run(
            batch_parameters={"dataframe": batch}, expectation_parameters=params, result_format=BASIC_FORMAT
        )
        failed = [res for res in run.results if not res.success]
        if failed:
            for n in _failing_files(rt, kind, active, batch, failed, params, len(items)):
                passed[n] = False
    table_rules = tuple(r for r in active if not row_level(r))
    if table_rules:
        for n, (frame, (_, ctx)) in enumerate(zip(frames, items, strict=True)):
            if not passed[n]:
                continue  # validated again on its own anyway
            run = rt.definition(kind, active, _pairs(table_rules)).run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=parameters_for(ctx, table_rules),
                result_format=BASIC_FORMAT,
            )
            passed[n] = bool(run.success)
    return passed


def _pairs(rules: Iterable[Rule]) -> frozenset[tuple[str, str]]:
    return frozenset((r.rule_id, c) for r in rules for c in r.columns)


def _failing_files(
    rt: GXRuntime,
    kind: str,
    active: tuple[Rule, ...],
    batch: pd.DataFrame,
    failed: list[Any],
    params: dict[str, Any],
    n_files: int,
) -> set[int]:
    """The files (positions) holding rows that failed a row-level expectation."""
    if any((res.exception_info or {}).get("raised_exception") for res in failed):
        return set(range(n_files))  # no row verdicts to go by: every file on its own
    wanted = frozenset(
        (res.expectation_config.meta["rule_id"], res.expectation_config.meta["column"]) for res in failed
    )
    run = rt.definition(kind, active, wanted).run(
        batch_parameters={"dataframe": batch}, expectation_parameters=params, result_format=_FILES_FORMAT
    )
    files: set[int] = set()
    for res in run.results:
        if res.success:
            continue
        index = (res.result or {}).get("unexpected_index_list")
        if index is None:
            return set(range(n_files))
        files.update(int(item[_FILE_COLUMN]) for item in index)
    return files


def validate_many(
    items: Iterable[tuple[IngestedTable, ValidationContext]],
) -> list[ValidationReport]:
    """Validate several files in one process (the GX context is shared)."""
    return validate_batch(list(items))
